"""One run per destination: an OS lock held while sort, resort, undo, corrections or a report work on it.

The lock is `flock` on `DESTINATION/.smart-sorter/lock`, so the kernel releases it when the process
dies, however it dies: a stale lock never blocks a later run. Whoever holds it writes who they are
into the file, so a second process can say what it waits for. Where the file system has no locks at
all (some network mounts), the run goes on unlocked rather than not at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..errors import BusyError, DestinationError
from .journal import STATE_FOLDER

LOCK_NAME = "lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


def _holder(purpose: str) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "purpose": purpose,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv[:1] + sys.argv[1:6]),
    }


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"a {holder['purpose']} (process {holder['pid']}, started {holder['started']})"
    except (ValueError, KeyError, TypeError):
        return "another smart-sorter process"


class DestinationLock:
    """Held for the whole of one piece of work on a destination; a context manager."""

    def __init__(self, destination: Path, purpose: str) -> None:
        self.destination = Path(destination)
        self.purpose = purpose
        self.path = self.destination / STATE_FOLDER / LOCK_NAME
        self._descriptor: int | None = None

    def acquire(self) -> DestinationLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise DestinationError(
                f"Cannot use the destination {str(self.destination)!r}: {error.strerror or error}. Check that it is"
                " a folder you can write to, or choose another."
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 4096, 0).decode("utf-8", "replace")
            os.close(descriptor)
            raise BusyError(
                f"The destination {str(self.destination)!r} is in use by {_describe_holder(holder)}. Wait for it to"
                f" end (or stop it), then start the {self.purpose} again; nothing was changed."
            ) from None
        except OSError as error:
            if error.errno not in _NO_LOCKS:
                os.close(descriptor)
                raise
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, json.dumps(_holder(self.purpose)).encode(), 0)
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        if self._descriptor is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._descriptor, 0)
        os.close(self._descriptor)  # closing the last descriptor releases the flock
        self._descriptor = None

    def __enter__(self) -> DestinationLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
