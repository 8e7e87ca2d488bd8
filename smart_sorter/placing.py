"""Put one file into a label folder without ever replacing a file or losing the source's bytes.

A copy is written under a temporary name in the target folder, flushed to disk, checked against
the source's hash, and only then given its final name by a hard link, which fails rather than
replace an existing file. A move on one file system links the source itself to its new name and
then unlinks the old one; across file systems it is a verified copy followed by deleting the
source. A name already taken gets `name__2.ext`, `name__3.ext`... (not Google Drive's
`name (1).ext`, so the two can be told apart).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import DiskFullError, PlacementError

TEMP_PREFIX = ".smart-sorter-partial-"
_CHUNK = 1 << 20
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES, errno.ENOSYS}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def candidate_names(name: str) -> Iterator[str]:
    """`name`, then `stem__2.ext`, `stem__3.ext`, ... for clashes."""
    yield name
    path = Path(name)
    stem, suffix = (path.stem, path.suffix) if path.stem else (name, "")
    number = 2
    while True:
        yield f"{stem}__{number}{suffix}"
        number += 1


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a folder; the file itself was synced
    finally:
        os.close(descriptor)


def _claim_exclusive(temp: Path, target: Path) -> None:
    """Copy `temp` to `target` where links are not supported: exclusive create, removed if it fails."""
    with open(target, "xb") as out:
        try:
            with open(temp, "rb") as handle:
                shutil.copyfileobj(handle, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            out.close()
            target.unlink(missing_ok=True)
            raise
    shutil.copystat(temp, target)


def claim_name(existing: Path, folder: Path, name: str) -> Path:
    """Give the file at `existing` a new name in `folder` that no file has yet, never replacing one."""
    links = True
    for candidate in candidate_names(name):
        target = folder / candidate
        try:
            if links:
                os.link(existing, target)
            else:
                _claim_exclusive(existing, target)
            return target
        except FileExistsError:
            continue
        except OSError as error:
            if not links or error.errno not in _NO_LINKS:
                raise
            links = False
            if not target.exists():
                _claim_exclusive(existing, target)
                return target
    raise AssertionError("unreachable")  # pragma: no cover


def _write_temp_copy(source: Path, folder: Path, expected_sha256: str) -> Path:
    temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as handle, open(temp, "xb") as out:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(source, temp)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != expected_sha256:
        temp.unlink(missing_ok=True)
        raise PlacementError(f"{source.name} changed while it was being sorted; run again to sort its new content")
    return temp


def _user_error(error: OSError, source: Path, folder: Path) -> Exception:
    if error.errno in _DISK_FULL:
        return DiskFullError(
            f"The disk holding {str(folder)!r} is full; nothing was left half-written. Free some space or choose"
            " another destination, then run the same command again."
        )
    return PlacementError(f"could not place {source.name}: {error.strerror or error}")


def copy_into(source: Path, folder: Path, expected_sha256: str) -> Path:
    """Copy `source` into `folder`, keeping its timestamps; returns the new file's path."""
    try:
        temp = _write_temp_copy(source, folder, expected_sha256)
        try:
            target = claim_name(temp, folder, source.name)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_folder(folder)
        return target
    except OSError as error:
        raise _user_error(error, source, folder) from error


def move_into(source: Path, folder: Path, expected_sha256: str) -> Path:
    """Move `source` into `folder`; the source is deleted only once its bytes are safe at the target."""
    try:
        if sha256_of(source) != expected_sha256:
            raise PlacementError(f"{source.name} changed while it was being sorted; run again to sort its new content")
        try:
            target = claim_name(source, folder, source.name)  # same file system: a second name, no copy
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            target = copy_into(source, folder, expected_sha256)
        if not os.path.samefile(source, target) and sha256_of(target) != expected_sha256:
            target.unlink()
            raise PlacementError(f"the copy of {source.name} did not verify; the source was kept")
        _fsync_folder(folder)
        source.unlink()
        return target
    except OSError as error:
        raise _user_error(error, source, folder) from error


def place_file(source: Path, folder: Path, operation: str, expected_sha256: str) -> Path:
    """Copy or move `source` into `folder` (created if needed); the path it ended at."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _user_error(error, source, folder) from error
    if operation == "move":
        return move_into(source, folder, expected_sha256)
    return copy_into(source, folder, expected_sha256)
