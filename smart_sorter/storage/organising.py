"""Placing scored files into label folders with a journal, and finishing what a killed run left."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PlacementError
from .journal import FileRecord, Journal, JournalState
from .placing import candidate_names, clash_key, holds_same_bytes, place_file
from .retrying import retry_io

# Files placed at once. Placing mostly waits (opening, reading and syncing files; on Google Drive tens of
# milliseconds per call), so files placed in parallel hide that wait where one at a time would add it up.
PLACERS = 16  # on the 30 ms latency mount: 9 files/s one at a time, 60 with 8 threads, 80-90 with 16


@dataclass(frozen=True)
class ToPlace:
    """One scored file to place: its source, its label folder (None for an error row, only recorded),
    its row, and the folders of its other tags to copy it into."""

    source: Path
    folder: Path | None
    row: dict[str, Any]
    copies_to: Sequence[Path] = ()


class Organiser:
    """Places files for one run and journals each step; `dry_run` places nothing."""

    def __init__(self, destination: Path, operation: str, journal: Journal | None, *, dry_run: bool = False) -> None:
        self.destination = destination
        self.operation = operation
        self.journal = journal
        self.dry_run = dry_run
        self._planned_names: set[Path] = set()  # a dry run's names, so two files never plan the same one
        self._held = threading.local()  # a placing thread's `done` events, written later in the files' order

    def _write(self, event: str, **fields: Any) -> None:
        held = getattr(self._held, "events", None)
        if event == "done" and held is not None:
            held.append(fields)
            return
        if self.journal is not None:
            self.journal.write(event, **fields)

    def finish(
        self,
        row: dict[str, Any],
        copies_to: Sequence[Path] = (),
        earlier: FileRecord | None = None,
        *,
        retry: bool = False,
    ) -> dict:
        """Record a file's final row, after copying the placed file into each folder of `copies_to`
        (multi-label mode: its other tags). `earlier` is what an interrupted run journaled of it;
        `retry`: the failure may pass (the file changed, the disk hiccuped), so a rerun tries it again."""
        if copies_to and row.get("destination") and not self.dry_run:
            row = self._copy(row, copies_to, earlier)
        self._write("done", file=row["file"], row=row, **({"retry": True} if retry else {}))
        return row

    def _copy(self, row: dict[str, Any], folders: Sequence[Path], earlier: FileRecord | None) -> dict[str, Any]:
        placed, relative, sha256 = self.destination / row["destination"], row["file"], row["sha256"]
        made, problems = [], []
        for folder in folders:
            claimed = earlier.copy_claims.get(folder.name) if earlier else None
            if claimed and claimed.get("temp"):
                (folder / claimed["temp"]).unlink(missing_ok=True)  # an interrupted copy's partial file

            def announce(name: str, temp: str, action: str, folder: Path = folder) -> None:
                self._write("claiming_copy", file=relative, folder=folder.name, name=name, temp=temp, action=action)

            try:
                copy = place_file(placed, folder, "copy", sha256, announce=announce, root=self.destination)
            except PlacementError as error:
                problems.append(f"not copied to {folder.name}/: {error}")
                continue
            action = copy.action
            ours = claimed and claimed.get("name") == copy.path.name and claimed.get("action") != "duplicate"
            if action == "duplicate" and ours:
                action = "copied"  # our own copy, made before an interruption (not a file that was there)
            destination = copy.path.relative_to(self.destination).as_posix()
            self._write("copy", file=relative, folder=folder.name, destination=destination, action=action)
            made.append(destination)
        error = "; ".join(filter(None, [row.get("error", ""), *problems]))
        return {**row, "copies": "; ".join(made), "error": error}

    def place(self, source: Path, folder: Path, row: dict[str, Any], copies_to: Sequence[Path] = ()) -> dict[str, Any]:
        """Place one scored file (its row names it and holds its hash), then its copies, and return
        its final row."""
        if self.dry_run:
            return self.finish({**row, "destination": self._planned(source, folder), "action": "planned"})
        relative, sha256 = row["file"], row["sha256"]

        def announce(name: str, temp: str, action: str) -> None:
            self._write(
                "claiming", file=relative, sha256=sha256, source=str(source), folder=folder.name, name=name,
                temp=temp, action=action, operation=self.operation, row=row,
            )  # fmt: skip

        try:
            placement = place_file(source, folder, self.operation, sha256, announce=announce, root=self.destination)
        except PlacementError as error:
            return self.finish({**row, "status": "error", "error": str(error), "action": ""}, retry=True)
        destination = placement.path.relative_to(self.destination).as_posix()
        self._write("placed", file=relative, destination=destination, action=placement.action)
        if self.operation == "move":
            self._write("removed", file=relative)
        return self.finish({**row, "destination": destination, "action": placement.action}, copies_to)

    def place_all(self, files: Sequence[ToPlace], *, workers: int = PLACERS) -> list[dict[str, Any]]:
        """Place several files at once and return their final rows in order.

        Files whose names could clash (`placing.clash_key`: the same name up to case and `__N`) are
        placed one after another, in order, by one thread, so every file gets the name a serial run
        would give it; each file's claim is journaled before its step, as for `place`, and the `done`
        events follow in the files' order once all are placed (a kill before then leaves placed files
        that a resumed run finishes). After an error (a full disk) no further file is started, and the
        first error is raised once the others stop."""
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(files):
            groups.setdefault(clash_key(item.source.name), []).append(index)
        rows: list[dict[str, Any] | None] = [None] * len(files)
        done_events: list[list[dict[str, Any]]] = [[] for _ in files]
        failed = threading.Event()

        def place_group(indexes: list[int]) -> None:
            for index in indexes:
                if failed.is_set():
                    return
                self._held.events = done_events[index]
                try:
                    rows[index] = self._place_one(files[index])
                except BaseException:
                    failed.set()
                    raise
                finally:
                    self._held.events = None

        try:
            if workers <= 1 or len(groups) <= 1:
                place_group(list(range(len(files))))
            else:
                threads = min(workers, len(groups))
                with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="smart-sorter-place") as pool:
                    futures = [pool.submit(place_group, indexes) for indexes in groups.values()]
                for future in futures:
                    future.result()  # raises the first group's error
        except BaseException:
            with contextlib.suppress(OSError):  # a full disk: a resumed run finishes the files placed
                self._write_done(done_events)  # the files placed are recorded, also when one failed
            raise
        self._write_done(done_events)
        return [row for row in rows if row is not None]

    def _write_done(self, done_events: list[list[dict[str, Any]]]) -> None:
        for events in done_events:
            for fields in events:
                self._write("done", **fields)

    def _place_one(self, item: ToPlace) -> dict[str, Any]:
        if item.folder is None:
            return self.finish(item.row)
        return self.place(item.source, item.folder, item.row, item.copies_to)

    def _planned(self, source: Path, folder: Path) -> str:
        """Where a dry run would put `source`: the first name free in its folder and in the plan."""
        for name in candidate_names(source.name):
            target = folder / name
            if target not in self._planned_names and not os.path.lexists(target):
                self._planned_names.add(target)
                return target.relative_to(self.destination).as_posix()
        raise AssertionError("unreachable")  # pragma: no cover

    def sync(self) -> None:
        if self.journal is not None:
            self.journal.sync()


@dataclass
class Recovery:
    """What a resumed run found: rows finished now, and scored files still to place."""

    finished: list[dict[str, Any]]
    to_place: dict[str, dict[str, Any]]


def _finish_interrupted(record: FileRecord, destination: Path) -> dict[str, Any] | None:
    """The final row of a file whose placement a crash interrupted, or None if it did not arrive
    (then whatever of ours it left under a final name, an empty placeholder, is removed)."""
    claim = record.claiming
    folder = destination / claim["folder"]
    if claim.get("temp"):
        (folder / claim["temp"]).unlink(missing_ok=True)  # our own partial copy, never under a final name
    if record.placed:
        target = destination / record.placed["destination"]
    elif claim.get("name"):
        target = folder / claim["name"]
    else:
        return None  # it was still being copied to a temporary name
    sha256, source = claim["sha256"], Path(claim["source"])
    if not holds_same_bytes(target, sha256):
        if not record.placed and claim.get("temp") and claim["action"] != "duplicate" and is_empty_file(target):
            target.unlink()  # the placeholder we had claimed where there are no hard links: never the user's
        return None
    action = record.placed["action"] if record.placed else claim["action"]
    if claim["operation"] == "move" and os.path.lexists(source):
        if not (same_file(source, target) or holds_same_bytes(source, sha256)):
            return None  # the source changed since: sort it again rather than delete anything
        try:
            retry_io(source.unlink)
        except PermissionError:
            if not same_file(source, target):
                return None  # a copy where the source cannot go: sort it again, which explains why
            target.unlink()  # our second name of a source that cannot be removed: nothing was moved
            return None
    return {**claim["row"], "destination": target.relative_to(destination).as_posix(), "action": action}


def is_empty_file(path: Path) -> bool:
    try:
        status = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode) and status.st_size == 0


def same_file(first: Path, second: Path) -> bool:
    """Two names of one file (a hard link), never through a symbolic link."""
    try:
        a, b = os.lstat(first), os.lstat(second)
    except OSError:
        return False
    return stat.S_ISREG(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def recover(state: JournalState, destination: Path) -> Recovery:
    """Finish each file a killed run was placing: verify what reached its folder, complete moves,
    remove our temporary files; files that did not arrive are returned to be placed again."""
    finished, to_place = [], {}
    for record in state.files.values():
        if record.done is not None or record.claiming is None:
            continue
        row = _finish_interrupted(record, destination)
        if row is None:
            to_place[record.file] = record.claiming["row"]
        else:
            finished.append(row)
    return Recovery(finished, to_place)
