"""Retry file operations that fail for passing reasons, as network mounts (Google Drive) often do."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TRANSIENT_ERRNOS = frozenset(
    code
    for code in (
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ETIMEDOUT,
        getattr(errno, "ENOTCONN", None),
        getattr(errno, "ESTALE", None),
        getattr(errno, "ECONNRESET", None),
        getattr(errno, "ECONNABORTED", None),
    )
    if code is not None
)
DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds before each further try; a module constant so tests can shorten it


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TimeoutError) or (isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS)


def retry_io(operation: Callable[[], T]) -> T:
    """Run `operation`, trying again after transient I/O errors with growing pauses; others raise at once."""
    for delay in DELAYS:
        try:
            return operation()
        except OSError as error:
            if not is_transient(error):
                raise
        time.sleep(delay)
    return operation()
