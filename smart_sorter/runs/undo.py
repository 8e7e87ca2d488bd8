"""`smart-sorter undo`: put moved files back and remove the copies a run made, verified by hash.

It never deletes a file the run did not create, nor a copy whose source is gone or changed: such
files are kept and listed. A destination holding no sorting but a coding that placed files (`code
--sort-by`) has that coding undone the same way: its copies removed, its moved files put back, and
coding.csv, its manifest and journal kept, renamed as undone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.detections import NOTHING_FOUND
from ..errors import DestinationError, PlacementError
from ..options import UNCERTAIN_FOLDER
from ..storage.finished import CODING_RUN, SORTING_RUN, FinishedRun, RunFiles
from ..storage.journal import FileRecord
from ..storage.organising import recover
from ..storage.placing import holds_same_bytes, place_file
from ..storage.retrying import retry_io


@dataclass
class UndoResult:
    """What undo did, file by file."""

    restored: int = 0
    removed_copies: int = 0
    kept: list[str] = field(default_factory=list)

    kind: str = "sorting"

    def summary(self) -> str:
        table = "coding.csv" if self.kind == "coding" else "output.csv"
        lines = [
            f"Put back {self.restored} moved file(s) and removed {self.removed_copies} copy(ies). The run's"
            f" {table} and manifest stay in the destination, renamed as undone, as its record."
        ]
        if self.kept:
            lines.append(f"Kept {len(self.kept)} file(s) in the destination:")
            lines.extend(f"  {reason}" for reason in self.kept)
        return "\n".join(lines)


def _undo_copies(record: FileRecord, row: dict[str, Any], destination: Path, result: UndoResult) -> set[Path]:
    """Remove the copies made into a file's other tag folders, while another copy of its bytes (the
    source or the placed file) remains; returns their folders."""
    claim = record.claiming or {}
    if not record.copy_claims or not claim:
        return set()
    sha256 = claim["sha256"]
    original_kept = holds_same_bytes(Path(claim["source"]), sha256) or (
        bool(row.get("destination")) and holds_same_bytes(destination / row["destination"], sha256)
    )
    folders = set()
    for folder_name, claimed in record.copy_claims.items():
        folder = destination / folder_name
        folders.add(folder)
        if claimed.get("temp"):
            (folder / claimed["temp"]).unlink(missing_ok=True)
        made = record.copies.get(folder_name)
        if made is not None:
            if made["action"] != "copied":
                continue  # identical bytes were there before: not ours
            target = destination / made["destination"]
        elif claimed.get("name") and claimed.get("action") == "copied":
            target = folder / claimed["name"]  # claimed, and perhaps published, before a kill
        else:
            continue  # no name claimed yet, or the claim of a file that was there before: not ours
        if not holds_same_bytes(target, sha256):
            if made is not None:
                result.kept.append(f"{made['destination']}: missing or changed since it was copied; nothing done")
        elif original_kept:
            retry_io(target.unlink)
            result.removed_copies += 1
        else:
            result.kept.append(f"{target.relative_to(destination).as_posix()}: the only copy left, so it is kept")
    return folders


def _undo_one(record: FileRecord, row: dict[str, Any], destination: Path, result: UndoResult) -> None:
    claim = record.claiming or {}
    action, placed = row.get("action", ""), row.get("destination", "")
    if not placed or action not in ("copied", "moved", "duplicate") or not claim:
        return
    if action == "duplicate" and claim["operation"] == "copy":
        return  # identical bytes were there before the run: not ours to remove, and the source is intact
    target, source, sha256 = destination / placed, Path(claim["source"]), claim["sha256"]
    if not holds_same_bytes(target, sha256):
        result.kept.append(f"{placed}: missing or changed since it was sorted; nothing done")
        return
    if action == "copied":
        if holds_same_bytes(source, sha256):
            retry_io(target.unlink)
            result.removed_copies += 1
        else:
            result.kept.append(f"{placed}: its source {source} is gone or changed, so this copy is kept")
        return
    # moved, or a move whose source was removed because identical bytes were already here
    operation = "copy" if action == "duplicate" else "move"
    try:
        back = place_file(target, source.parent, operation, sha256, name=source.name)
    except PlacementError as error:
        result.kept.append(f"{placed}: could not be put back ({error})")
        return
    result.restored += 1
    if back.path != source:
        result.kept.append(f"{placed}: put back as {back.path.name}, since {source.name} holds other bytes now")


def _run_to_undo(destination: Path) -> RunFiles:
    """A sorting, or else a coding that placed files (--sort-by); a coding that placed none is said so."""
    destination = Path(destination).expanduser().resolve()
    if SORTING_RUN.journal_path(destination).is_file() or not CODING_RUN.journal_path(destination).is_file():
        return SORTING_RUN
    from ..storage.journal import read_journal

    state = read_journal(CODING_RUN.journal_path(destination))
    if state.settings is not None and not state.settings.get("sort_by") and state.retiring is None:
        raise DestinationError(
            f"The coding in {str(destination)!r} placed no file (it was run without --sort-by), so there is nothing"
            " to undo; coding.csv only records the answers and may be deleted."
        )
    return CODING_RUN


def undo_run(destination: Path) -> UndoResult:
    """Undo the run recorded in `destination`'s journal (finished, stopped or killed)."""
    files = _run_to_undo(destination)
    with FinishedRun.open(destination, purpose="undo", require_finished=False, files=files) as run:
        recovery = recover(run.state, run.destination)  # a killed run's last files: finished first, then undone
        finished = {row["file"]: row for row in recovery.finished}
        result = UndoResult(kind=files.kind)
        for record in reversed(list(run.state.files.values())):
            row = finished.get(record.file) or run.rows.get(record.file)
            if record.undone or row is None:
                continue
            run.touched_folders |= _undo_copies(record, row, run.destination, result)
            _undo_one(record, row, run.destination, result)
            run.journal.write("undone", file=record.file)
            if record.claiming:
                run.touched_folders.add(run.destination / record.claiming["folder"])
        folders = run.manifest.get("folders", {}).values()
        run.touched_folders |= {run.destination / name for name in [*folders, UNCERTAIN_FOLDER, NOTHING_FOUND]}
        run.retire(time.strftime("%Y%m%d-%H%M%S"))
    return result
