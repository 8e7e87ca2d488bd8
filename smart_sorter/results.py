"""What a run did: output.csv rows written as the run goes, the JSON run manifest, the result object."""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DestinationError, DiskFullError
from .labels import LabelSet
from .options import MANIFEST_FILE_NAME
from .scoring import Ranking, is_uncertain

BASE_COLUMNS = ("file", "label", "score", "destination", "status", "error", "sha256", "prompt", "action")
STATUSES = ("sorted", "uncertain", "error")
MULTI_LABEL_THRESHOLD = 0.5  # a category's own score at or above it makes a tag, unless a threshold is given


def csv_columns(top_k: int, tag_categories: tuple[str, ...] = (), *, copies: bool = False) -> tuple[str, ...]:
    """output.csv's columns: the chosen label, then `label_2, score_2, ...` up to `top_k`; in
    multi-label mode also `tags`, `copies` (when files are copied into each tag's folder) and a
    `score:<category>` column per category."""
    runners_up = tuple(f"{name}_{rank}" for rank in range(2, top_k + 1) for name in ("label", "score"))
    tags = ("tags", *(("copies",) if copies else ()), *(f"score:{category}" for category in tag_categories))
    return BASE_COLUMNS + runners_up + (tags if tag_categories else ())


class CsvLog:
    """output.csv, opened once and appended to as files are done, so a crash keeps what was done.

    A new run never writes over an existing file. A resumed run (`rows` from its journal) writes
    its own output.csv anew from those rows, whole, then appends.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], *, resumed_rows: list[dict[str, Any]] | None = None):
        self.path = path
        self.columns = columns
        try:
            if resumed_rows is not None:
                partial = path.with_name(path.name + ".partial")
                with open(partial, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                    writer.writeheader()
                    writer.writerows(resumed_rows)
                os.replace(partial, path)
                self._handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - open for the run
            else:
                self._handle = open(path, "x", newline="", encoding="utf-8")  # noqa: SIM115 - open for the run
        except FileExistsError:
            raise DestinationError(
                f"{str(path)!r} already exists from an earlier run; choose another destination or --output_file,"
                " or move that file away."
            ) from None
        except OSError as error:
            raise DestinationError(f"Cannot write {str(path)!r}: {error.strerror or error}.") from None
        self._writer = csv.DictWriter(self._handle, fieldnames=columns, extrasaction="ignore")
        if resumed_rows is None:
            self._writer.writeheader()
        self._handle.flush()

    def write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self._writer.writerows(rows)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            if error.errno in DiskFullError.ERRNOS:
                raise DiskFullError.at(self.path.parent) from error
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk was already reported; the rows written are kept
            self._handle.close()


def read_manifest(destination: Path) -> dict[str, Any]:
    """The run manifest of a destination, or {} when there is none."""
    path = Path(destination) / MANIFEST_FILE_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the run manifest whole: a new name first, then renamed over the previous version of itself."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


@dataclass(frozen=True)
class Progress:
    """How far a run is, given to an observer after each batch: files done of all found, files per
    label so far, and the pace of the files scored by this run (resumed ones cost nothing)."""

    done: int
    total: int
    label_counts: dict[str, int]
    seconds: float
    scored: int = 0  # files this run scored or read: the pace counts only these

    @property
    def rate(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 and self.scored else 0.0

    @property
    def seconds_left(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None


@dataclass
class SortResult:
    """The outcome of `sort_images`: the table of output.csv and where things were written."""

    table: Any  # pandas.DataFrame with the columns of output.csv
    csv_path: Path
    manifest_path: Path
    destination: Path
    seconds: float
    model_seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False
    resumed_files: int = 0

    @property
    def errors(self) -> int:
        return self.status_counts.get("error", 0)

    def summary(self) -> str:
        """A short human summary: files per label, errors, time and where the table is."""
        total = sum(self.status_counts.values())
        timing = f"{self.seconds:.1f} s"
        sorting = self.seconds - self.model_seconds
        if self.model_seconds and sorting > 0:
            new = total - self.resumed_files
            timing += f" ({self.model_seconds:.1f} s loading the model, then {new / sorting:.1f} images/s)"
        lines = [f"Sorted {self.status_counts.get('sorted', 0)} of {total} files in {timing}."]
        lines += count_lines(self.label_counts)
        if self.errors:
            lines.append(f"  {self.errors} file(s) could not be read or placed: see the 'error' column.")
        if self.resumed_files:
            lines.append(f"  {self.resumed_files} file(s) were done by the interrupted run this one finished.")
        if self.stopped_early:
            lines.append("  The run stopped early; output.csv lists the files done so far.")
        lines.append(f"Table: {self.csv_path}")
        return "\n".join(lines)


def count_lines(label_counts: dict[str, int]) -> list[str]:
    """Files per label as aligned summary lines."""
    width = max((len(label) for label in label_counts), default=0)
    return [f"  {label:<{width}}  {count}" for label, count in label_counts.items()]


def count_rows(rows: list[dict[str, Any]], categories: tuple[str, ...]) -> tuple[dict[str, int], dict[str, int]]:
    """Files per label (in the user's order, then `uncertain` if any) and per status."""
    labels = Counter(row["label"] for row in rows if row["status"] == "sorted")
    statuses = Counter(row["status"] for row in rows)
    counts = {label: labels.get(label, 0) for label in categories}
    if statuses.get("uncertain"):
        counts["uncertain"] = statuses["uncertain"]
    return counts, dict(statuses)


def make_row(
    relative: str,
    sha256: str,
    *,
    categories: tuple[str, ...] = (),
    order: tuple[int, ...] = (),
    probabilities: tuple[float, ...] = (),
    prompt: str = "",
    destination: str = "",
    status: str = "sorted",
    error: str = "",
    action: str = "",
) -> dict[str, Any]:
    """One output.csv row; `order`/`probabilities` are the ranked categories (empty for an error)."""
    row: dict[str, Any] = {
        "file": relative,
        "label": categories[order[0]] if order else "",
        "score": probabilities[0] if order else None,
        "destination": destination,
        "status": status,
        "error": error,
        "sha256": sha256,
        "prompt": prompt,
        "action": action,
    }
    for rank, (index, probability) in enumerate(zip(order[1:], probabilities[1:]), start=2):
        row[f"label_{rank}"] = categories[index]
        row[f"score_{rank}"] = probability
    return row


def scored_row(
    relative: str,
    sha256: str,
    ranking: Ranking,
    best_prompt: Any,
    labels: LabelSet,
    *,
    threshold: float | None,
    margin: float | None,
    tag_scores: Any = None,
) -> dict[str, Any]:
    """A scored file's row: its ranked labels, the prompt that matched, and `uncertain` when its best
    label is negative or below its threshold or margin. With `tag_scores` (multi-label mode: each
    category scored on its own) every category at or above its threshold is a tag, best first; the
    label is the best tag, and a file with no tag is uncertain."""
    top = ranking.order[0]
    weak = is_uncertain(
        ranking, threshold=labels.threshold_of(top, threshold), margin=margin, negative=labels.is_negative(top)
    )
    row = make_row(
        relative,
        sha256,
        categories=labels.categories,
        order=ranking.order,
        probabilities=ranking.probabilities,
        prompt=labels.all_prompts[best_prompt[top]],
        status="uncertain" if weak else "sorted",
    )
    if tag_scores is not None:
        tags = _tags(tag_scores, labels, MULTI_LABEL_THRESHOLD if threshold is None else threshold)
        row["tags"] = "; ".join(tags)
        row.update({f"score:{category}": float(value) for category, value in zip(labels.categories, tag_scores)})
        row["status"] = "sorted" if tags else "uncertain"
        if tags:
            row["label"] = tags[0]
            row["score"] = float(tag_scores[labels.categories.index(tags[0])])
    return row


def _tags(tag_scores: Any, labels: LabelSet, default: float) -> list[str]:
    order = sorted(range(len(labels.categories)), key=lambda index: -tag_scores[index])
    return [
        labels.categories[index]
        for index in order
        if tag_scores[index] >= labels.threshold_of(index, default) and not labels.is_negative(index)
    ]


def runners_up(row: Any) -> list[tuple[str, float]]:
    """A row's ranked labels after its first (`label_2, score_2, ...`), as (label, score) pairs."""
    pairs, rank = [], 2
    while row.get(f"label_{rank}"):
        pairs.append((row[f"label_{rank}"], float(row[f"score_{rank}"])))
        rank += 1
    return pairs


def row_tags(row: dict[str, Any]) -> list[str]:
    """The tags of a multi-label row, best first."""
    return [tag for tag in str(row.get("tags") or "").split("; ") if tag]
