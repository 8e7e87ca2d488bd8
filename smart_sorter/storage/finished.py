"""A destination holding a recorded run, opened for work after the run: re-sorting, applying
corrections, undoing. One object knows its journal, manifest and rows, holds the destination's lock,
moves placed files between label folders with claims journaled first, and rewrites the tables, so
that each of those operations holds only its own logic.

A file is moved in three journaled steps: `relocating` (where from, the claimed name, the new row),
the verified move itself, then `placed` and `done`. Opening a destination finishes a move that a kill
interrupted: if the new name holds the file's bytes the move is completed, otherwise it is undone, so
each row always names where its bytes are.

A coding run that placed files (`code --sort-by`) is opened the same way, with its own journal, manifest and
table (`CODING_RUN`), so that undo reverses it as it reverses a sorting.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.coding import CODING_FILE_NAME, CODING_JOURNAL_NAME, CODING_MANIFEST_NAME
from ..core.rows import count_rows
from ..errors import DestinationError
from ..options import MANIFEST_FILE_NAME, OUTPUT_FILE_NAME, PLAN_FILE_NAME, STATE_FOLDER_NAME, SortOptions
from .frame_table import frames_path
from .journal import JOURNAL_NAME, FileRecord, Journal, JournalState, read_journal
from .layout import remove_empty_folders
from .lock import DestinationLock
from .organising import is_empty_file
from .placing import TEMP_PREFIX, holds_same_bytes, place_file
from .retrying import retry_io
from .tables import CsvLog, read_manifest, write_manifest

PLACED_BY_RUN = ("copied", "moved")  # a `duplicate` row names a file that was there before the run


@dataclass(frozen=True)
class RunFiles:
    """The names of one kind of run's record in its destination: journal (in the state folder), manifest, table."""

    kind: str
    journal: str
    manifest: str
    table: str

    def journal_path(self, destination: Path) -> Path:
        return destination / STATE_FOLDER_NAME / self.journal

    def read_manifest(self, destination: Path) -> dict[str, Any]:
        return read_manifest(destination, self.manifest)


SORTING_RUN = RunFiles("sorting", JOURNAL_NAME, MANIFEST_FILE_NAME, OUTPUT_FILE_NAME)
CODING_RUN = RunFiles("coding", CODING_JOURNAL_NAME, CODING_MANIFEST_NAME, CODING_FILE_NAME)


def interrupted_undo_message(destination: Path) -> str:
    return (
        f"An undo of the run in {str(destination)!r} was interrupted after it had put every file back;"
        f" run `smart-sorter undo {destination}` again to finish it (it only renames the run's tables"
        " as undone). Nothing was changed."
    )


class FinishedRun:
    """The run recorded in `destination`; use `FinishedRun.open(...)` as a context manager."""

    def __init__(
        self, destination: Path, state: JournalState, manifest: dict[str, Any], lock: DestinationLock,
        files: RunFiles = SORTING_RUN,
    ) -> None:  # fmt: skip
        self.destination = destination
        self.files = files
        self.state = state
        self.manifest = manifest
        self._lock = lock
        self._journal: Journal | None = None
        self.rows: dict[str, dict[str, Any]] = {row["file"]: row for row in state.done_rows}
        self.touched_folders: set[Path] = set()

    @classmethod
    def open(
        cls, destination: str | Path, *, purpose: str, require_finished: bool = True, files: RunFiles = SORTING_RUN
    ) -> FinishedRun:
        """Lock the destination and read its run; a sentence when there is none (or it is unfinished)."""
        destination = Path(destination).expanduser().resolve()
        if not (destination / STATE_FOLDER_NAME).is_dir():
            raise DestinationError(_no_run_message(destination, purpose))
        lock = DestinationLock(destination, purpose).acquire()
        try:
            state = read_journal(files.journal_path(destination))
            manifest = files.read_manifest(destination)
            if state.settings is None:
                raise DestinationError(_no_run_message(destination, purpose))
            if state.retiring is not None and purpose != "undo":
                raise DestinationError(interrupted_undo_message(destination))
            if require_finished and (manifest.get("status") != "finished" or not state.done_rows):
                raise DestinationError(
                    f"The run in {str(destination)!r} is not finished (status {manifest.get('status', 'unknown')!r});"
                    f" run its command again to finish it before the {purpose}."
                )
        except BaseException:
            lock.release()
            raise
        run = cls(destination, state, manifest, lock, files)
        run._finish_relocations()
        return run

    def __enter__(self) -> FinishedRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.files.journal_path(self.destination))
        return self._journal

    @property
    def options(self) -> SortOptions:
        """The options of the run, as recorded in its manifest."""
        return SortOptions.from_record(self.manifest.get("options", {}))

    @property
    def output_path(self) -> Path:
        return Path(self.state.settings.get("output_file") or self.destination / self.files.table)

    def placed_by_run(self) -> dict[str, dict[str, Any]]:
        """The rows of the files this run put into the destination (copied or moved there)."""
        return {
            file: row
            for file, row in self.rows.items()
            if row.get("destination") and row.get("action") in PLACED_BY_RUN
        }

    def record(self, row: dict[str, Any]) -> None:
        """Make `row` the file's row (in the journal at once)."""
        self.journal.write("done", file=row["file"], row=row)
        self.rows[row["file"]] = row

    def record_with_twins(self, row: dict[str, Any], named: str | None = None) -> None:
        """Make `row` the file's row, and the row of each file recorded as its duplicate (the same bytes, whose
        row names the same placed file, `named`, by default `row`'s own destination): a duplicate's label,
        scores and destination follow the file it names; its own name and action stay."""
        named = named or row["destination"]
        for other in list(self.rows.values()):
            if named and other["file"] != row["file"] and other.get("destination") == named:
                self.record({**row, "file": other["file"], "action": other["action"]})
        self.record(row)

    def relocate(self, row: dict[str, Any], folder: Path) -> dict[str, Any]:
        """Move a file the run placed into `folder` under a name of its own (never onto a file that
        was already there), journaled before and after; rows that name the same file (a move run's
        duplicates of it) follow it. Returns `row` with its new destination; raises PlacementError and
        changes nothing when the file cannot be moved."""
        origin = row["destination"]
        journal = self.journal

        def announce(name: str, temp: str, action: str) -> None:
            journal.write("relocating", file=row["file"], origin=origin, folder=self._relative(folder),
                          name=name, temp=temp, row=row)  # fmt: skip
            journal.sync()

        placement = place_file(
            self.destination / origin, folder, "move", row["sha256"], announce=announce, dedupe=False
        )
        moved = {**row, "destination": self._relative(placement.path)}
        self._follow(origin, moved)
        self.touched_folders |= {(self.destination / origin).parent, folder}
        return moved

    def _follow(self, origin: str, moved: dict[str, Any]) -> None:
        """Record a completed move: rows naming the same file first, then the file's own row, then `placed`,
        which closes its `relocating` claim: a kill at any point before it leaves the claim, which opening
        finishes, and never a row naming where the file no longer is."""
        self.record_with_twins(moved, named=origin)
        self.journal.write("placed", file=moved["file"], destination=moved["destination"], action=moved["action"])

    def rewrite_tables(self, *, columns: tuple[str, ...] | None = None, categories: Iterable[str] = (), **manifest):
        """Write output.csv anew from the rows (in the journal's order) and update the manifest."""
        rows = list(self.rows.values())
        output = self.output_path
        if columns is None:
            with open(output, newline="", encoding="utf-8") as handle:
                columns = tuple(handle.readline().strip().split(","))
        CsvLog(output, columns, resumed_rows=rows).close()
        label_counts, status_counts = count_rows(rows, tuple(categories or self.manifest.get("labels", [])))
        self.manifest.update(label_counts=label_counts, status_counts=status_counts, **manifest)
        write_manifest(self.destination / self.files.manifest, self.manifest)

    def retire(self, stamp: str) -> None:
        """After an undo: output.csv (frames.csv), the manifest and the journal are kept under names marked undone,
        so the destination holds no run any more and the record of what was undone stays. The journal says
        `retiring` first and is renamed last: an undo killed on the way, run again, finishes the renaming
        under the same stamp."""
        stamp = self.state.retiring or stamp
        if self.state.retiring is None:
            self.journal.write("retiring", stamp=stamp)
            self.journal.sync()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        for table in (self.output_path, frames_path(self.output_path), self.destination / self.files.manifest):
            if table.exists():
                table.rename(table.with_name(f"{table.stem}-undone-{stamp}{table.suffix}"))
        path = self.files.journal_path(self.destination)
        path.rename(path.with_name(f"{path.stem}-undone-{stamp}{path.suffix}"))

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        remove_empty_folders(self.touched_folders - {self.destination})
        self._lock.release()

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.destination).as_posix()

    def _finish_relocations(self) -> None:
        """Complete or cancel each move between label folders that a kill interrupted."""
        for record in self.state.files.values():
            if record.relocating is not None:
                self._finish_relocation(record)

    def _finish_relocation(self, record: FileRecord) -> None:
        claim = record.relocating
        folder = self.destination / claim["folder"]
        origin = self.destination / claim["origin"]
        sha256 = claim["row"]["sha256"]
        if claim.get("temp", "").startswith(TEMP_PREFIX):
            (folder / claim["temp"]).unlink(missing_ok=True)  # our own partial copy
        target = folder / claim["name"] if claim.get("name") else None
        if target is not None and holds_same_bytes(target, sha256):
            if os.path.lexists(origin) and holds_same_bytes(origin, sha256):
                retry_io(origin.unlink)  # the move's second half: the old name goes
            self._follow(claim["origin"], {**claim["row"], "destination": self._relative(target)})
        else:
            if target is not None and claim.get("temp") and is_empty_file(target):
                target.unlink()  # the name we had claimed, still empty: ours
            self.journal.write("placed", file=record.file, destination=claim["origin"], action=claim["row"]["action"])
        self.touched_folders |= {origin.parent, folder}
        record.relocating = None


def _no_run_message(destination: Path, purpose: str) -> str:
    if (destination / PLAN_FILE_NAME).is_file() and not (destination / MANIFEST_FILE_NAME).is_file():
        return (
            f"{str(destination)!r} holds only a dry run (plan.csv): no file was placed, so there is nothing for the"
            f" {purpose}. Sort for real first (the same settings without the dry run)."
        )
    return f"No smart-sorter run is recorded in {str(destination)!r}; nothing for the {purpose}."
