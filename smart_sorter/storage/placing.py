"""Put one file into a label folder without ever replacing a file or losing the source's bytes.

The destination side never follows a symbolic link: the label folder is opened once with
O_NOFOLLOW (each folder below `root` too, when the caller gives it) and every later step names
files relative to that open folder, so a folder swapped for a link mid-run cannot send a file, or a
deletion, elsewhere. The source is opened with O_NOFOLLOW as well and must be a regular file.

A copy is written under a temporary name in the label folder, flushed to disk, checked against the
expected hash, and only then published under its final name, by a step that fails rather than
replace an existing file: a hard link, or where the file system has none (exFAT, FAT, some network
mounts) `renameat2(RENAME_NOREPLACE)`, or where that is missing too an empty placeholder created
exclusively under the final name and then replaced by the complete temporary file. A move on one
file system gives the source itself a second name by a hard link and then unlinks the old name;
otherwise (another file system, no hard links) it is a copy as above, read back and verified,
followed by deleting the source. A name already taken gets `name__2.ext`, `name__3.ext`... (not
Google Drive's `name (1).ext`, so the two can be told apart), unless the file there is a regular
file (not a link, not the source itself) that already holds the same bytes: then it is recorded as
a duplicate and not copied again (never with `dedupe=False`).

What a kill leaves, step by step (`announce` is journaled before each step that claims a name):
1. announce("", temp): nothing yet, or a partial `.smart-sorter-partial-*` temporary file.
2. temp written, fsynced and verified; announce(name, temp): the complete temporary file only.
3. published by hard link: the complete file under `name` and the temporary file (same inode).
   By renameat2: either the temporary file alone or the complete file under `name`.
   By placeholder: an EMPTY regular file under `name` next to the complete temporary file, until
   the replace; after it, the complete file under `name` and no temporary file. Recovery may treat
   "the claimed name is an empty regular file and the claim had a temp" as our placeholder (for an
   empty source file the placeholder and the copy are the same bytes anyway).
4. the temporary file is removed; for a move the copy is read back and verified, then the source
   name is unlinked. A move by hard link leaves the source and `name` as two names of one file.
So a final name holds either nothing, our empty placeholder, or the complete verified bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import stat
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFullError, PlacementError
from ..options import PARTIAL_FILE_PREFIX as TEMP_PREFIX
from .retrying import is_transient, retry_io

_CHUNK = 1 << 20
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES, errno.ENOSYS}
_NO_RENAMEAT2 = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # so opening a FIFO put in a file's place does not hang
_NUMBERED = re.compile(r"(.+?)__\d+", re.DOTALL)  # a clash's name: stem__2
# Where names can be resolved relative to an open folder (not on Windows), every step does so.
_AT = {os.open, os.link, os.unlink, os.stat, os.rename, os.mkdir} <= os.supports_dir_fd

# Called before a name in the folder is claimed, with that name (empty while a copy is still
# being written), the temporary file (if any) and the action (copied, moved or duplicate), so a
# journal can tell after a crash which file in the folder is ours and which only matched it.
Announce = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Placement:
    """Where a file ended and how: `copied`, `moved`, or `duplicate` (identical bytes were already there)."""

    path: Path
    action: str


def _hash_descriptor(descriptor: int) -> str:
    digest = hashlib.sha256()
    os.lseek(descriptor, 0, os.SEEK_SET)
    while chunk := os.read(descriptor, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    def read() -> str:
        descriptor = os.open(path, os.O_RDONLY | _BINARY | _CLOEXEC)
        try:
            return _hash_descriptor(descriptor)
        finally:
            os.close(descriptor)

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


def clash_key(name: str) -> str:
    """What two file names share when placing one could change the name the other gets: the name without
    its `__N` endings, case-folded (FAT, exFAT and macOS ignore case). `a.jpg`, `A__2.jpg` and
    `a__2__3.jpg` share a key, so files placed in parallel that have different keys never compete
    for a name."""
    path = Path(unicodedata.normalize("NFC", name).casefold())
    stem, suffix = (path.stem, path.suffix) if path.stem else (path.name, "")
    while (numbered := _NUMBERED.fullmatch(stem)) is not None:
        stem = numbered.group(1)
    return stem + suffix


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class _Folder:
    """A folder opened once; files in it are named relative to it, never through a link."""

    def __init__(self, path: Path, descriptor: int | None) -> None:
        self.path, self.descriptor = path, descriptor

    @classmethod
    def open(cls, path: Path, *, follow: bool) -> _Folder:
        if not _AT:
            if not follow and (path.is_symlink() or not path.is_dir()):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path))
            return cls(path, None)
        flags = os.O_RDONLY | _DIRECTORY | _CLOEXEC | (0 if follow else _NOFOLLOW)
        return cls(path, os.open(path, flags))

    def child(self, name: str, *, create: bool) -> _Folder:
        """The sub-folder `name`, made if missing; OSError (ELOOP, ENOTDIR) if it is a link or a file."""
        if create:
            try:
                where, at = self._at(name)
                os.mkdir(where, **at)
            except FileExistsError:
                pass
        if not _AT:
            return _Folder.open(self.path / name, follow=False)
        flags = os.O_RDONLY | _DIRECTORY | _CLOEXEC | _NOFOLLOW
        return _Folder(self.path / name, os.open(name, flags, dir_fd=self.descriptor))

    def _at(self, name: str) -> tuple[str | Path, dict]:
        if self.descriptor is None:
            return self.path / name, {}
        return name, {"dir_fd": self.descriptor}

    def lstat(self, name: str) -> os.stat_result:
        where, at = self._at(name)
        return os.stat(where, follow_symlinks=False, **at)

    def lstat_or_none(self, name: str) -> os.stat_result | None:
        try:
            return self.lstat(name)
        except FileNotFoundError:
            return None

    def open_file(self, name: str, flags: int, mode: int = 0o666) -> int:
        where, at = self._at(name)
        return os.open(where, flags | _NOFOLLOW | _CLOEXEC | _BINARY, mode, **at)

    def unlink(self, name: str) -> None:
        where, at = self._at(name)
        os.unlink(where, **at)

    def unlink_if_present(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.unlink(name)

    def link_here(self, source: _Folder, source_name: str, name: str) -> None:
        """A second name for the file `source_name` (a link itself is not followed); FileExistsError if taken."""
        if self.descriptor is None or source.descriptor is None:
            os.link(source.path / source_name, self.path / name)
            return
        os.link(source_name, name, src_dir_fd=source.descriptor, dst_dir_fd=self.descriptor, follow_symlinks=False)

    def replace(self, old: str, new: str) -> None:
        if self.descriptor is None:
            os.replace(self.path / old, self.path / new)
        else:
            os.replace(old, new, src_dir_fd=self.descriptor, dst_dir_fd=self.descriptor)

    def sync(self) -> None:
        if self.descriptor is None:
            return
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder; the file was synced
            os.fsync(self.descriptor)

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


_renameat2: Callable[..., int] | None | bool = False  # False: not looked up yet


def _rename_noreplace(folder: _Folder, old: str, new: str) -> bool:
    """Rename `old` to `new` in `folder` unless `new` exists (FileExistsError); False where the OS or
    the file system cannot do that atomically (then nothing was done)."""
    global _renameat2
    if _renameat2 is False:
        _renameat2 = None
        if sys.platform.startswith("linux"):
            try:
                function = ctypes.CDLL(None, use_errno=True).renameat2
            except (OSError, AttributeError):
                function = None
            if function is not None:
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
                _renameat2 = function
    if _renameat2 is None or folder.descriptor is None:
        return False
    descriptor = folder.descriptor
    if _renameat2(descriptor, os.fsencode(old), descriptor, os.fsencode(new), 1) == 0:  # RENAME_NOREPLACE
        return True
    code = ctypes.get_errno()
    if code in _NO_RENAMEAT2:
        return False
    raise OSError(code, os.strerror(code), new)  # EEXIST becomes FileExistsError


def _publish_without_links(folder: _Folder, temp: str, name: str) -> None:
    """Give the complete temporary file the final `name` where hard links are missing; FileExistsError
    if the name is taken. The name only ever holds nothing, our empty placeholder, or the whole file."""
    if _rename_noreplace(folder, temp, name):
        return
    placeholder = folder.open_file(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        ours = os.fstat(placeholder)
    finally:
        os.close(placeholder)
    try:
        folder.replace(temp, name)
    except BaseException:
        now = folder.lstat_or_none(name)
        if now is not None and _same_file(now, ours) and now.st_size == 0:
            folder.unlink(name)  # our own empty placeholder, so the name is free again for a retry
        raise


def _publish(folder: _Folder, temp: str, name: str, times: os.stat_result) -> None:
    """Give the complete temporary file the final `name`; FileExistsError if taken, never a replacement."""
    try:
        folder.link_here(folder, temp, name)
    except OSError as error:
        if error.errno not in _NO_LINKS or isinstance(error, FileExistsError):
            raise
        _publish_without_links(folder, temp, name)
        _keep_times(folder, name, times)  # FAT via FUSE stamps a renamed file with the time of the rename
    else:
        folder.unlink_if_present(temp)


def _regular_with_bytes(folder: _Folder, name: str, sha256: str, size: int | None) -> bool:
    """Whether `name` in `folder` is a regular file (never through a link) holding these bytes."""
    try:
        descriptor = folder.open_file(name, os.O_RDONLY | _NONBLOCK)
    except OSError:
        return False
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or (size is not None and status.st_size != size):
            return False
        return retry_io(lambda: _hash_descriptor(descriptor)) == sha256
    except OSError:
        return False  # unreadable: not the same bytes as far as anyone can tell, so the name stays taken
    finally:
        os.close(descriptor)


def holds_same_bytes(path: Path, sha256: str, size: int | None = None) -> bool:
    """Whether `path` is a regular file (not a link to one) with these bytes; a known `size` skips
    hashing files that differ in it."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        folder = _Folder.open(path.parent, follow=True)
    except OSError:
        return False
    try:
        return _regular_with_bytes(folder, path.name, sha256, size)
    finally:
        folder.close()


@dataclass
class _Source:
    """The file being placed, opened once without following a link."""

    folder: _Folder
    name: str
    descriptor: int
    status: os.stat_result

    @classmethod
    def open(cls, path: Path) -> _Source:
        folder = _Folder.open(path.parent, follow=True)
        try:
            descriptor = folder.open_file(path.name, os.O_RDONLY | _NONBLOCK)
        except OSError as error:
            folder.close()
            if error.errno in (errno.ELOOP, errno.EMLINK):
                raise PlacementError(
                    f"{path.name} is now a symbolic link, not the file that was scanned; it was not placed."
                    " Run again to sort what it is now."
                ) from error
            raise
        try:
            status = os.fstat(descriptor)
        except OSError:
            os.close(descriptor)
            folder.close()
            raise
        if not stat.S_ISREG(status.st_mode):
            os.close(descriptor)
            folder.close()
            raise PlacementError(f"{path.name} is no longer a regular file; it was not placed. Run again to sort it.")
        return cls(folder, path.name, descriptor, status)

    def still_named(self) -> bool:
        current = self.folder.lstat_or_none(self.name)
        return current is not None and _same_file(current, self.status)

    def close(self) -> None:
        os.close(self.descriptor)
        self.folder.close()


class _Temp:
    """A temporary file being written in a label folder (what `_write_temp_copy` fills)."""

    def __init__(self, folder: _Folder) -> None:
        self.folder, self.name = folder, f"{TEMP_PREFIX}{secrets.token_hex(8)}"

    def remove(self) -> None:
        self.folder.unlink_if_present(self.name)


def _keep_times(folder: _Folder, name: str, status: os.stat_result) -> None:
    """The source's times, where the file system takes them; set by name after the file is closed,
    since some FUSE file systems stamp a file's time when it is closed or renamed."""
    where, at = folder._at(name)
    with contextlib.suppress(OSError, NotImplementedError):
        os.utime(where, ns=(status.st_atime_ns, status.st_mtime_ns), **at)


def _write_all(descriptor: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[os.write(descriptor, view) :]


def _write_temp_copy(source: _Source, temp: _Temp, expected_sha256: str) -> None:
    digest = hashlib.sha256()
    try:
        out = temp.folder.open_file(temp.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            os.lseek(source.descriptor, 0, os.SEEK_SET)
            while chunk := os.read(source.descriptor, _CHUNK):
                digest.update(chunk)
                _write_all(out, chunk)
            with contextlib.suppress(OSError, AttributeError):  # FAT via FUSE has no chmod, Windows no fchmod
                os.fchmod(out, stat.S_IMODE(source.status.st_mode))
            os.fsync(out)
        finally:
            os.close(out)
        _keep_times(temp.folder, temp.name, source.status)
    except BaseException:
        temp.remove()
        raise
    if digest.hexdigest() != expected_sha256:
        temp.remove()
        raise PlacementError(f"{source.name} changed while it was being sorted; run again to sort its new content")


def _open_label_folder(folder: Path, root: Path | None) -> _Folder:
    """Open (making it if missing) the label folder without following a link at it, or at any
    folder between `root` and it when `root` is given."""
    if root is None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        parent, parts = _Folder.open(folder.parent, follow=True), [folder.name]
    else:
        try:
            parts = list(folder.relative_to(root).parts)
        except ValueError:
            raise PlacementError(f"{str(folder)!r} is not inside the destination {str(root)!r}") from None
        parent = _Folder.open(root, follow=True)
    try:
        for part in parts:
            try:
                child = parent.child(part, create=True)
            except OSError as error:
                if error.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise
                raise PlacementError(
                    f"{str(parent.path / part)!r} is a symbolic link or a file, not a folder; nothing was placed"
                    " there. Remove or rename it, then run again."
                ) from error
            parent.close()
            parent = child
    except BaseException:
        parent.close()
        raise
    return parent


def _user_error(error: OSError, source: Path, folder: Path) -> Exception:
    if error.errno in DiskFullError.ERRNOS:
        return DiskFullError.at(folder)
    reason = error.strerror or str(error)
    if is_transient(error):
        reason += " (still failing after several tries)"
    return PlacementError(f"could not place {source.name}: {reason}")


def _read_only(source: _Source, moved: bool) -> PlacementError:
    done = "its copy was removed again, so nothing was moved" if moved else "so nothing was moved"
    return PlacementError(
        f"{source.name} could not be removed from {str(source.folder.path)!r}, which is read-only; {done}."
        " Make that folder writable, or copy instead of moving."
    )


class _Placer:
    """One file's placement: walks the candidate names, claims the first free one."""

    def __init__(
        self, source: _Source, folder: _Folder, sha256: str, announce: Announce, name: str, dedupe: bool
    ) -> None:
        self.source, self.folder, self.sha256, self.announce = source, folder, sha256, announce
        self.name, self.dedupe = name, dedupe

    def placement(self, name: str, action: str) -> Placement:
        return Placement(self.folder.path / name, action)

    def free_names(self) -> Iterator[str | Placement]:
        """Candidate names not yet taken; a Placement instead when identical bytes are already there
        in a regular file that is not the source itself."""
        for name in candidate_names(self.name):
            status = self.folder.lstat_or_none(name)
            if status is None:
                yield name
            elif (
                self.dedupe
                and stat.S_ISREG(status.st_mode)
                and not _same_file(status, self.source.status)
                and status.st_size == self.source.status.st_size
                and _regular_with_bytes(self.folder, name, self.sha256, self.source.status.st_size)
            ):
                yield self.placement(name, "duplicate")
                return

    def check_source(self) -> None:
        if retry_io(lambda: _hash_descriptor(self.source.descriptor)) != self.sha256:
            raise PlacementError(
                f"{self.source.name} changed while it was being sorted; run again to sort its new content"
            )

    def copy(self, action: str = "copied") -> Placement:
        for name in self.free_names():  # a duplicate needs no copy at all
            if isinstance(name, Placement):
                if action == "moved":
                    self.check_source()
                self.announce(name.path.name, "", "duplicate")
                return name
            break
        temp = _Temp(self.folder)
        self.announce("", temp.name, action)
        retry_io(lambda: _write_temp_copy(self.source, temp, self.sha256))
        try:
            for name in self.free_names():
                if isinstance(name, Placement):
                    self.announce(name.path.name, temp.name, "duplicate")
                    return name
                self.announce(name, temp.name, action)
                try:
                    retry_io(lambda name=name: _publish(self.folder, temp.name, name, self.source.status))
                except FileExistsError:
                    continue  # taken since we looked: try the next name
                return self.placement(name, action)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            temp.remove()
            self.folder.sync()

    def link_source(self) -> Placement | None:
        """Give the source a second name in the folder; None where hard links cannot do it."""
        for name in self.free_names():
            if isinstance(name, Placement):
                self.check_source()
                self.announce(name.path.name, "", "duplicate")
                return name
            self.announce(name, "", "moved")
            try:
                retry_io(lambda name=name: self.folder.link_here(self.source.folder, self.source.name, name))
            except FileExistsError:
                continue
            except OSError as error:
                if error.errno == errno.EXDEV or error.errno in _NO_LINKS:
                    return None
                raise
            made = self.folder.lstat(name)
            if not (stat.S_ISREG(made.st_mode) and _same_file(made, self.source.status)):
                self.folder.unlink(name)  # the source name was swapped after we opened it: not our file
                raise PlacementError(
                    f"{self.source.name} was replaced while it was being sorted; it was not moved. Run again."
                )
            try:
                self.check_source()
            except PlacementError:
                self.folder.unlink(name)  # a second name of the source, just made: the source keeps its bytes
                raise
            return self.placement(name, "moved")
        raise AssertionError("unreachable")  # pragma: no cover

    def move(self) -> Placement:
        placement = self.link_source()
        linked = placement is not None
        if placement is None:  # another file system, or none of hard links: a verified copy
            placement = self.copy("moved")
            if placement.action == "moved" and not _regular_with_bytes(
                self.folder, placement.path.name, self.sha256, self.source.status.st_size
            ):
                self.folder.unlink(placement.path.name)
                raise PlacementError(f"the copy of {self.source.name} did not verify; the source was kept")
        made = self.folder.lstat(placement.path.name)
        self.folder.sync()
        if not self.source.still_named():
            return placement  # the source name now holds another file: ours is placed, theirs is left alone
        try:
            retry_io(lambda: self.source.folder.unlink_if_present(self.source.name))
        except OSError as error:
            if error.errno not in _READ_ONLY:
                raise
            if placement.action == "moved":
                now = self.folder.lstat_or_none(placement.path.name)
                if now is not None and _same_file(now, made) and (linked or not _same_file(now, self.source.status)):
                    self.folder.unlink(placement.path.name)  # only the name we just made
                    self.folder.sync()
            raise _read_only(self.source, placement.action == "moved") from error
        self.source.folder.sync()
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
    root: Path | None = None,
) -> Placement:
    """Copy or move `source` into `folder` (created if needed), as `name` (its own by default).

    With `dedupe=False` a file already there with the same bytes is never taken as the placement:
    the file always gets a name of its own. With `root` (the destination), every folder from `root`
    down to `folder` is opened without following a link, not only `folder` itself."""
    source, folder = Path(source), Path(folder)
    announce = announce or (lambda name, temp, action: None)
    try:
        label_folder = _open_label_folder(folder, None if root is None else Path(root))
        try:
            opened = _Source.open(source)
            try:
                placer = _Placer(opened, label_folder, expected_sha256, announce, name or source.name, dedupe)
                return placer.move() if operation == "move" else placer.copy()
            finally:
                opened.close()
        finally:
            label_folder.close()
    except OSError as error:
        raise _user_error(error, source, folder) from error
