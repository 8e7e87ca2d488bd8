"""Corrections made by a person reviewing a sorting: saved one by one to a CSV, and applied by moving
the files to their corrected folders through the safe, journaled placement.

corrections.csv (in the destination) has the columns `file, predicted, label, verdict, reviewed`:
`label` is the right label as the reviewer saw it (`none` when no label fits), `verdict` is `right`,
`corrected` or `wrong`. It is also a truth file for `evaluate`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.folders import label_folder
from ..core.rows import NO_LABEL, runners_up
from ..errors import DestinationError, PlacementError
from ..options import CORRECTIONS_FILE_NAME, UNCERTAIN_FOLDER
from ..storage.finished import FinishedRun
from ..storage.tables import shown_text

COLUMNS = ("file", "predicted", "label", "verdict", "reviewed")
VERDICTS = ("right", "corrected", "wrong")


class CorrectionLog:
    """Appends each decision to corrections.csv as it is made (flushed and synced: nothing is lost
    if the notebook dies); the latest decision about a file counts."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.decisions = read_corrections(self.path)

    def record(self, file: str, predicted: str, label: str) -> str:
        verdict = "right" if label == predicted else "wrong" if label == NO_LABEL else "corrected"
        file = shown_text(file)  # as output.csv shows it: a name that is not UTF-8 with `\xNN`
        row = {"file": file, "predicted": predicted, "label": label, "verdict": verdict,
               "reviewed": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        new_file = not self.path.exists()
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                if new_file:
                    writer.writeheader()
                writer.writerow(row)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise DestinationError(f"Cannot save the correction to {str(self.path)!r}: {error.strerror}.") from None
        self.decisions[file] = row
        return verdict


def read_corrections(path: Path) -> dict[str, dict[str, str]]:
    """The latest decision per file of a corrections.csv ({} when there is none yet)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle) if row.get("file")}


@dataclass
class ApplyResult:
    moved: int = 0
    already_right: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Moved {self.moved} corrected file(s); {self.already_right} were already in the right folder."]
        return "\n".join(lines + [f"  {problem}" for problem in self.problems])


def apply_corrections(destination: Path, corrections: Path | None = None) -> ApplyResult:
    """Move each corrected file into its right label's folder (`none`: uncertain/), verified and
    journaled, then rewrite output.csv and the manifest's counts. A corrected row keeps what the
    sorter said in `corrected_from` (`none` for uncertain), which `evaluate` goes on measuring."""
    destination = Path(destination).resolve()
    decisions = read_corrections(corrections or destination / CORRECTIONS_FILE_NAME)
    result = ApplyResult()
    with FinishedRun.open(destination, purpose="applying of corrections", require_finished=False) as run:
        categories = list(run.manifest.get("labels", []))
        placed = {shown_text(file): row for file, row in run.placed_by_run().items()}  # as output.csv names them
        for file, decision in decisions.items():
            row = placed.get(file)
            if row is None:
                continue  # not placed by this run (an error row, or identical bytes that were already there)
            row = run.rows[row["file"]]  # as it is now: an earlier correction may have moved it
            label = decision["label"]
            if label != NO_LABEL and label not in categories:
                result.problems.append(f"{file}: {label!r} is not one of the run's labels; left where it is")
                continue
            folder = run.destination / (UNCERTAIN_FOLDER if label == NO_LABEL else label_folder(label))
            corrected = _corrected_row(row, label)
            if (run.destination / row["destination"]).parent == folder:
                result.already_right += 1
                run.record_with_twins(corrected)
                continue
            try:
                run.relocate(corrected, folder)
            except PlacementError as error:
                result.problems.append(f"{row['destination']}: {error}; left where it is")
                continue
            result.moved += 1
        columns = _columns_with_corrections(run)
        run.rewrite_tables(columns=columns, categories=categories,
                           corrected=datetime.now(timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
    return result


def _columns_with_corrections(run: FinishedRun) -> tuple[str, ...]:
    with open(run.output_path, newline="", encoding="utf-8") as handle:
        columns = tuple(next(csv.reader(handle)))
    if any("corrected_from" in row for row in run.rows.values()) and "corrected_from" not in columns:
        columns += ("corrected_from",)
    return columns


def _corrected_row(row: dict[str, Any], label: str) -> dict[str, Any]:
    if label == row["label"] and row["status"] == "sorted":
        return row
    sorter_said = row.get("corrected_from") or (NO_LABEL if row["status"] == "uncertain" else row["label"])
    corrected = {**row, "label": "" if label == NO_LABEL else label, "corrected_from": sorter_said}
    corrected["status"] = "uncertain" if label == NO_LABEL else "sorted"
    corrected["score"] = dict(runners_up(row)).get(label) if label != row["label"] else row["score"]
    return corrected
