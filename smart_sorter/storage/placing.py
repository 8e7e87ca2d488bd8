"""Put one file into a label folder without ever replacing a file or losing the source's bytes.

A copy is written under a temporary name in the target folder, flushed to disk, checked against
the source's hash, and only then given its final name by a hard link, which fails rather than
replace an existing file. A move on one file system links the source itself to its new name and
then unlinks the old one; across file systems it is a verified copy followed by deleting the
source. A name already taken gets `name__2.ext`, `name__3.ext`... (not Google Drive's
`name (1).ext`, so the two can be told apart), unless the file there already holds the same
bytes: then it is recorded as a duplicate and not copied again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFullError, PlacementError
from .retrying import is_transient, retry_io

TEMP_PREFIX = ".smart-sorter-partial-"
_CHUNK = 1 << 20
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES, errno.ENOSYS}

# Called before a name in the folder is claimed, with that name (empty while a copy is still
# being written), the temporary file (if any) and the action (copied, moved or duplicate), so a
# journal can tell after a crash which file in the folder is ours and which only matched it.
Announce = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Placement:
    """Where a file ended and how: `copied`, `moved`, or `duplicate` (identical bytes were already there)."""

    path: Path
    action: str


def sha256_of(path: Path) -> str:
    def read() -> str:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest()

    return retry_io(read)


def candidate_names(name: str) -> Iterator[str]:
    """`name`, then `stem__2.ext`, `stem__3.ext`, ... for clashes."""
    yield name
    path = Path(name)
    stem, suffix = (path.stem, path.suffix) if path.stem else (name, "")
    number = 2
    while True:
        yield f"{stem}__{number}{suffix}"
        number += 1


def holds_same_bytes(path: Path, sha256: str, size: int | None = None) -> bool:
    """Whether `path` is a file with these bytes; a known `size` skips hashing files that differ in it."""
    try:
        if not path.is_file() or (size is not None and path.stat().st_size != size):
            return False
        return sha256_of(path) == sha256
    except OSError:
        return False


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


def _copy_exclusive(existing: Path, target: Path) -> None:
    """Copy to `target` where hard links are not supported: exclusive create, removed if it fails."""
    with open(target, "xb") as out:
        try:
            with open(existing, "rb") as handle:
                shutil.copyfileobj(handle, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            out.close()
            target.unlink(missing_ok=True)
            raise
    shutil.copystat(existing, target)


def _claim(existing: Path, target: Path) -> None:
    """Give `existing` the name `target`; FileExistsError if the name is taken, never a replacement."""
    try:
        os.link(existing, target)
    except OSError as error:
        if error.errno not in _NO_LINKS or isinstance(error, FileExistsError):
            raise
        _copy_exclusive(existing, target)


def _write_temp_copy(source: Path, temp: Path, expected_sha256: str) -> None:
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


def _user_error(error: OSError, source: Path, folder: Path) -> Exception:
    if error.errno in DiskFullError.ERRNOS:
        return DiskFullError.at(folder)
    reason = error.strerror or str(error)
    if is_transient(error):
        reason += " (still failing after several tries)"
    return PlacementError(f"could not place {source.name}: {reason}")


class _Placer:
    """One file's placement: walks the candidate names, claims the first free one."""

    def __init__(
        self, source: Path, folder: Path, sha256: str, announce: Announce, name: str, dedupe: bool = True
    ) -> None:
        self.source, self.folder, self.sha256, self.announce, self.name = source, folder, sha256, announce, name
        self.dedupe = dedupe
        self.size = source.stat().st_size

    def free_names(self) -> Iterator[Path | Placement]:
        """Candidate paths not yet taken; a Placement instead when identical bytes are already there."""
        for name in candidate_names(self.name):
            target = self.folder / name
            if not os.path.lexists(target):
                yield target
            elif self.dedupe and holds_same_bytes(target, self.sha256, self.size):
                yield Placement(target, "duplicate")
                return

    def claim_first_free(self, existing: Path, temp_name: str, action: str) -> Placement:
        for target in self.free_names():
            if isinstance(target, Placement):
                self.announce(target.path.name, temp_name, "duplicate")
                return target
            self.announce(target.name, temp_name, action)
            try:
                retry_io(lambda target=target: _claim(existing, target))
            except FileExistsError:
                continue  # taken since we looked: try the next name
            return Placement(target, action)
        raise AssertionError("unreachable")  # pragma: no cover

    def copy(self, action: str = "copied") -> Placement:
        for target in self.free_names():  # a duplicate needs no copy at all
            if isinstance(target, Placement):
                self.announce(target.path.name, "", "duplicate")
                return target
            break
        temp = self.folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        self.announce("", temp.name, action)
        retry_io(lambda: _write_temp_copy(self.source, temp, self.sha256))
        try:
            placement = self.claim_first_free(temp, temp.name, action)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_folder(self.folder)
        return placement

    def move(self) -> Placement:
        if sha256_of(self.source) != self.sha256:
            raise PlacementError(
                f"{self.source.name} changed while it was being sorted; run again to sort its new content"
            )
        try:
            placement = self.claim_first_free(self.source, "", "moved")  # same file system: a second name
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            placement = self.copy("moved")
        if not os.path.samefile(self.source, placement.path) and sha256_of(placement.path) != self.sha256:
            if placement.action != "duplicate":
                placement.path.unlink()
            raise PlacementError(f"the copy of {self.source.name} did not verify; the source was kept")
        _fsync_folder(self.folder)
        retry_io(self.source.unlink)
        return placement


def place_file(
    source: Path,
    folder: Path,
    operation: str,
    expected_sha256: str,
    *,
    announce: Announce | None = None,
    name: str | None = None,
    dedupe: bool = True,
) -> Placement:
    """Copy or move `source` into `folder` (created if needed), as `name` (its own by default)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        announce = announce or (lambda name, temp, action: None)
        placer = _Placer(source, folder, expected_sha256, announce, name or source.name, dedupe)
        return placer.move() if operation == "move" else placer.copy()
    except OSError as error:
        raise _user_error(error, source, folder) from error
