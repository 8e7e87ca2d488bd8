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
from ..core.rows import NO_LABEL, count_rows, runners_up
from ..errors import DestinationError, PlacementError
from ..options import MANIFEST_FILE_NAME, UNCERTAIN_FOLDER
from ..storage.journal import Journal, journal_path, read_journal
from ..storage.layout import remove_empty_folders
from ..storage.organising import relocate
from ..storage.tables import CsvLog, read_manifest, write_manifest

CORRECTIONS_FILE_NAME = "corrections.csv"
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
    state = read_journal(journal_path(destination))
    manifest = read_manifest(destination)
    if state.settings is None or not manifest:
        raise DestinationError(f"No smart-sorter run is recorded in {str(destination)!r}; nothing to correct.")
    categories = list(manifest.get("labels", []))
    rows = {row["file"]: row for row in state.done_rows}
    result = ApplyResult()
    journal = Journal(journal_path(destination))
    emptied = set()
    try:
        for file, decision in decisions.items():
            row = rows.get(file)
            if row is None or not row.get("destination") or row.get("action") not in ("copied", "moved"):
                continue  # not placed by this run (an error row, or identical bytes that were already there)
            label = decision["label"]
            if label != NO_LABEL and label not in categories:
                result.problems.append(f"{file}: {label!r} is not one of the run's labels; left where it is")
                continue
            folder = destination / (UNCERTAIN_FOLDER if label == NO_LABEL else label_folder(label))
            corrected = _corrected_row(row, label)
            if (destination / row["destination"]).parent == folder:
                result.already_right += 1
            else:
                try:
                    corrected = relocate(journal, destination, corrected, folder)
                except PlacementError as error:
                    result.problems.append(f"{row['destination']}: {error}; left where it is")
                    continue
                emptied.add((destination / row["destination"]).parent)
                result.moved += 1
            journal.write("done", file=file, row=corrected)
            rows[file] = corrected
    finally:
        journal.close()
    remove_empty_folders(emptied)
    _rewrite_tables(destination, manifest, list(rows.values()), categories)
    return result


def _corrected_row(row: dict[str, Any], label: str) -> dict[str, Any]:
    if label == row["label"] and row["status"] == "sorted":
        return row
    sorter_said = row.get("corrected_from") or (NO_LABEL if row["status"] == "uncertain" else row["label"])
    corrected = {**row, "label": "" if label == NO_LABEL else label, "corrected_from": sorter_said}
    corrected["status"] = "uncertain" if label == NO_LABEL else "sorted"
    corrected["score"] = dict(runners_up(row)).get(label) if label != row["label"] else row["score"]
    return corrected


def _rewrite_tables(destination: Path, manifest: dict[str, Any], rows: list[dict[str, Any]], categories: list[str]):
    output = Path(manifest.get("output_file") or destination / "output.csv")
    with open(output, newline="", encoding="utf-8") as handle:
        columns = tuple(next(csv.reader(handle)))
    if any("corrected_from" in row for row in rows) and "corrected_from" not in columns:
        columns += ("corrected_from",)
    CsvLog(output, columns, resumed_rows=rows).close()
    label_counts, status_counts = count_rows(rows, tuple(categories))
    manifest.update(label_counts=label_counts, status_counts=status_counts)
    manifest["corrected"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_manifest(destination / MANIFEST_FILE_NAME, manifest)
