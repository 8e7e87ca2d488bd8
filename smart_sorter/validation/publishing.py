"""Files that checking a run writes (reports, sample sheets, sample folders): never over an existing
file unless asked to, never into the run's source folder, and never half-written under their name.

A text is written under a temporary name beside its target, flushed to disk, and then given its
final name by a hard link, which fails rather than replace a file that appeared meanwhile (where
hard links are not supported: an exclusive create). Only `force` replaces, by an atomic rename.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from ..errors import DestinationError
from ..storage.tables import read_manifest

_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES, errno.ENOSYS}


def refuse_existing(path: Path, *, force: bool = False, replaceable: bool = True) -> None:
    """Refuse early (before any work) a target that exists, unless `force`; `replaceable=False` for
    what is never replaced (a sample: its copies beside it would no longer match)."""
    if not replaceable and os.path.lexists(path):
        raise DestinationError(f"{str(path)!r} already exists and is not replaced; give a new name for the sample.")
    if not force and os.path.lexists(path):
        raise DestinationError(
            f"{str(path)!r} already exists and is not replaced; give another name, or add --force"
            " (force=True in Python) to replace it."
        )


def refuse_source_folder(path: Path, destination: Path) -> None:
    """Refuse `path` when it lies in the source folder of the run in `destination` (the manifest's `source`)."""
    source = read_manifest(Path(destination)).get("source")
    if not source:
        return
    target, source_folder = Path(path).resolve(), Path(source).resolve()
    if target == source_folder or target.is_relative_to(source_folder):
        raise DestinationError(
            f"{str(path)!r} is inside the run's source folder {str(source_folder)!r}; nothing is ever written"
            " there, so the originals stay as they were. Choose a place outside it."
        )


def _write_exclusive(path: Path, text: str) -> None:
    """Create `path` (refused when it exists) and write `text`; removed again if writing fails."""
    try:
        handle = open(path, "x", encoding="utf-8", newline="")  # noqa: SIM115 - closed below, removed on failure
    except FileExistsError:
        refuse_existing(path)
        raise
    with handle:
        try:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)  # ours, created just now: never left half-written
            raise


def publish_text(path: Path, text: str, *, force: bool = False) -> Path:
    """Write `text` to `path` whole; an existing file is replaced only with `force`."""
    path = Path(path)
    refuse_existing(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    try:
        with open(temp, "x", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temp, path)
            return path
        try:
            os.link(temp, path)
        except FileExistsError:
            refuse_existing(path)  # appeared since we looked: still never replaced
            raise
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            _write_exclusive(path, text)
    finally:
        temp.unlink(missing_ok=True)
    return path
