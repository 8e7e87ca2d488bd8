"""The journal: an append-only record, in the destination, of what a run intends and has done.

One JSON object per line, flushed as written (so a killed process loses nothing it did) and
synced to disk at the end of every batch. Events, per source file (`file` is its path relative
to the source):
- `claiming`: a name in a label folder is about to become this file (or a temporary file is
  being written), with the scored row, so a resumed run neither re-scores nor loses track of it;
- `placed`: the file is in its label folder (`destination`, `action`: copied, moved, duplicate);
- `removed`: a moved file's source was deleted after the placed copy verified;
- `claiming_copy` / `copy`: in multi-label mode with copies, the same for each further tag's folder
  (a copy of the placed file; `copy` has its `destination` and `action`: copied or duplicate);
- `relocating`: resort or applied corrections are about to move a placed file (`origin`, its
  destination so far) to `name` in `folder`, with its new row; a `placed` event follows once moved;
- `done`: the file's final output.csv row;
- `undone`: `smart-sorter undo` reversed the placement.
Run-wide events: `run` (the settings a run started with) and `retiring` (an undo has reversed every
file and is renaming the run's tables as undone, with the `stamp` of their new names: a killed undo
run again finishes the renaming under the same names).
output.csv is rebuilt from the `done` rows, so the journal alone says what a run did.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..options import STATE_FOLDER_NAME as STATE_FOLDER

JOURNAL_NAME = "journal.jsonl"


def journal_path(destination: Path) -> Path:
    return destination / STATE_FOLDER / JOURNAL_NAME


class Journal:
    """Appends events to the journal file; opened for the whole run."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A file name that is not UTF-8 reaches Python with surrogate escapes; written as `\udcXX` JSON
        # escapes they read back as the same name, and the journal stays valid UTF-8.
        self._handle = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - whole run
        self._lock = threading.Lock()  # files are placed in several threads: one whole line at a time
        if self._handle.tell() and not path.read_bytes().endswith(b"\n"):
            self._handle.write("\n")  # a line torn by a crash stays alone and is skipped when read

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def sync(self) -> None:
        with self._lock:
            self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle.closed:
            return
        with contextlib.suppress(OSError):  # a full disk was already reported; the lines written are kept
            self.sync()
        with contextlib.suppress(OSError):
            self._handle.close()


@dataclass
class FileRecord:
    """Everything the journal says about one source file, latest event last."""

    file: str
    claiming: dict[str, Any] | None = None
    placed: dict[str, Any] | None = None
    removed: bool = False
    done: dict[str, Any] | None = None
    retry: bool = False  # its `done` row is an error that may pass: a rerun tries the file again
    undone: bool = False
    copy_claims: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag folder -> its latest claim
    copies: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag folder -> the copy made there
    relocating: dict[str, Any] | None = None  # a move between label folders not yet confirmed by `placed`


@dataclass
class JournalState:
    """The journal read back: the run settings it was started with and a record per file."""

    settings: dict[str, Any] | None = None
    files: dict[str, FileRecord] = field(default_factory=dict)
    torn_lines: int = 0
    done_order: list[str] = field(default_factory=list)  # files in the order of their first `done`
    retiring: str | None = None  # an undo's stamp once it is renaming the run's tables as undone

    def record(self, file: str) -> FileRecord:
        return self.files.setdefault(file, FileRecord(file))

    @property
    def done_rows(self) -> list[dict[str, Any]]:
        """Each file's latest row, in the order files were first done (output.csv's order, whichever of
        several placing threads wrote its other events first)."""
        return [self.files[file].done for file in self.done_order]

    def to_retry(self) -> set[str]:
        """Files whose row is an error that may pass: the file changed while sorted, it could not be
        read, a placement failed; a rerun of the same run tries them again."""
        return {
            file
            for file, record in self.files.items()
            if record.done is not None
            and record.done.get("status") == "error"
            and (record.retry or not record.done.get("sha256"))
        }


def read_journal(path: Path) -> JournalState:
    """Read a journal, skipping a last line torn by a crash."""
    state = JournalState()
    if not path.exists():
        return state
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                state.torn_lines += 1
                continue
            event = entry.get("event")
            if event == "run":
                state.settings = entry.get("settings")  # the latest run's; they agree once files were done
                continue
            if event == "retiring":
                state.retiring = entry.get("stamp")
                continue
            if "file" not in entry:
                continue
            record = state.record(entry["file"])
            if event == "claiming":
                record.claiming = entry
            elif event == "placed":
                record.placed, record.relocating = entry, None
            elif event == "relocating":
                record.relocating = entry
            elif event == "removed":
                record.removed = True
            elif event == "claiming_copy":
                record.copy_claims[entry["folder"]] = entry
            elif event == "copy":
                record.copies[entry["folder"]] = entry
            elif event == "done":
                if record.done is None:
                    state.done_order.append(record.file)
                record.done, record.retry = entry["row"], bool(entry.get("retry"))
            elif event == "undone":
                record.undone = True
    return state
