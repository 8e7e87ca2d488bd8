"""One run per destination: an OS lock held while sort, resort, undo, corrections or a report work on it.

The lock is `flock` on `DESTINATION/.smart-sorter/lock`, so the kernel releases it when the process
dies, however it dies: a stale lock never blocks a later run. Whoever holds it writes who they are
into the file, so a second process can say what it waits for. A run checks that the lock is free
before it reads the destination or loads its model (`check_free`), so a busy destination is said as
such at once, never as "another run's settings". Where the file system has no locks at all (some
network mounts), the run goes on unlocked rather than not at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import BusyError, DestinationError
from .journal import STATE_FOLDER

LOCK_NAME = "lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}
_PROBE_SECONDS = 0.2  # a run that holds the lock holds it for seconds at least; a check holds it for microseconds


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


def _flock_soon(descriptor: int, operation: int) -> None:
    """flock without waiting for a holder, but through the instant another process's `check_free` holds it."""
    import fcntl

    deadline = time.monotonic() + _PROBE_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


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
            _flock_soon(descriptor, fcntl.LOCK_EX)
        except BlockingIOError:
            raise self._busy(descriptor) from None
        except OSError as error:
            if error.errno not in _NO_LOCKS:
                os.close(descriptor)
                raise
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, json.dumps(_holder(self.purpose)).encode(), 0)
        self._descriptor = descriptor
        return self

    def check_free(self) -> None:
        """BusyError at once if another process holds the destination, before anything is read or loaded;
        this takes no lock and creates nothing."""
        import fcntl

        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return  # no lock file: no run ever held it (anything else is said when the lock is taken)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # held for an instant: see _flock_soon
        except BlockingIOError:
            raise self._busy(descriptor) from None
        except OSError:
            pass
        os.close(descriptor)

    def _busy(self, descriptor: int) -> BusyError:
        holder = os.pread(descriptor, 4096, 0).decode("utf-8", "replace")
        os.close(descriptor)
        return BusyError(
            f"The destination {str(self.destination)!r} is in use by {_describe_holder(holder)}. Wait for it to"
            f" end (or stop it), then start the {self.purpose} again; nothing was changed."
        )

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
