"""Find the images and videos under a source folder: recursive, in a stable order, by content as well as name.

Only regular files are opened, and never in a way that can block: a FIFO or a device named
`.jpg` is listed as skipped, not read. What is passed over for a reason the user should know (a
folder that cannot be read, a path too long for the system, a link out of the source) is listed
in `Scan.skipped`; other files are only counted; hidden files and folders stay out silently.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .video import SNIFF_BYTES, VIDEO_EXTENSIONS, VIDEO_EXTRA, sniff_video_format, video_support

IMAGE_EXTENSIONS = frozenset(
    [".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"]
    + [".heic", ".heif", ".avif"]
)
_SNIFF_BYTES = SNIFF_BYTES
NO_VIDEO_SUPPORT = f"a video; sorting videos needs the video extra: {VIDEO_EXTRA}"
# Opening never follows a last-component symlink, never waits for a FIFO's writer, never leaks.
OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def sniff_image_format(head: bytes) -> str | None:
    """The image format that a file's first bytes announce, or None when they announce none."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIF"
        if brand in (b"avif", b"avis"):
            return "AVIF"
    return None


def not_regular(mode: int) -> str:
    """Why a file of this st_mode is not read, e.g. "not a regular file (a FIFO)"."""
    kind = next((name for test, name in _KINDS if test(mode)), "of an unknown kind")
    return f"not a regular file ({kind})"


def os_reason(error: OSError) -> str:
    """An OSError as a short phrase: "permission denied", "path too long for the system"."""
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENAMETOOLONG:
        return "path longer than the operating system allows"
    return (error.strerror or str(error)).lower()


@dataclass(frozen=True)
class FoundFile:
    """One candidate image: its path and its path relative to the source with `/` separators.

    `link_to` is set for a symlink inside the source: the (device, inode) of the regular file it
    led to when found, so reading can refuse it if it has been pointed elsewhere since.
    """

    path: Path
    relative: str
    link_to: tuple[int, int] | None = None
    kind: str = "image"  # or "video": found by its extension or its container's signature


@dataclass(frozen=True)
class Skip:
    """A file or folder passed over, with the reason the user is told."""

    relative: str
    reason: str


@dataclass(frozen=True)
class Scan:
    """What a walk of the source found: the image files, the listed skips, and how many other files."""

    files: tuple[FoundFile, ...]
    skipped_other: int
    skipped: tuple[Skip, ...] = ()


def _kind_by_name(name: str) -> str | None:
    """ "image" or "video" by the file's extension, else None."""
    extension = os.path.splitext(name)[1].lower()
    return "image" if extension in IMAGE_EXTENSIONS else "video" if extension in VIDEO_EXTENSIONS else None


def _sniff(path: Path) -> str | None:
    """ "image" or "video" by a regular file's first bytes, else None; OSError when it cannot be opened."""
    descriptor = os.open(path, OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # swapped since lstat: not ours to read
            return None
        head = os.read(descriptor, _SNIFF_BYTES)
    finally:
        os.close(descriptor)
    return "image" if sniff_image_format(head[:16]) else "video" if sniff_video_format(head) else None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _relative(path: str | Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


class _Walk:
    """The state of one walk: what is found, listed and counted."""

    def __init__(self, root: Path, excluded: tuple[Path, ...]) -> None:
        self.videos = video_support()
        self.root = root
        self.excluded = excluded
        self.found: list[FoundFile] = []
        self.skipped: list[Skip] = []
        self.other = 0

    def folder_error(self, error: OSError) -> None:
        relative = _relative(error.filename, self.root) if error.filename is not None else "?"
        self.skipped.append(Skip(relative, f"folder cannot be read ({os_reason(error)})"))

    def folders(self, folder: Path, names: list[str]) -> list[str]:
        """The subfolders to enter; symlinked ones are listed instead, so loops cannot hang the walk."""
        entered = []
        for name in sorted(names):
            path = folder / name
            if name.startswith(".") or any(_inside(path, excluded) for excluded in self.excluded):
                continue
            try:
                is_link = stat.S_ISLNK(os.lstat(path).st_mode)
            except OSError as error:
                error.filename = str(path)
                self.folder_error(error)
                continue
            if is_link:
                self.skipped.append(Skip(_relative(path, self.root), "symbolic link to a folder; not entered"))
                continue
            entered.append(name)
        return entered

    def file(self, path: Path) -> None:
        relative = _relative(path, self.root)
        kind = _kind_by_name(path.name)
        by_name = kind is not None
        try:
            mode = os.lstat(path).st_mode
        except OSError as error:
            self.skipped.append(Skip(relative, f"cannot be examined ({os_reason(error)})"))
            return
        link_to = None
        if stat.S_ISLNK(mode):
            target = Path(os.path.realpath(path))
            try:
                target_stat = os.stat(path)
            except OSError:
                self._skip_or_count(by_name, relative, "broken symbolic link")
                return
            if not _inside(target, self.root):
                self._skip_or_count(by_name, relative, "symbolic link leading outside the source")
                return
            mode, link_to = target_stat.st_mode, (target_stat.st_dev, target_stat.st_ino)
        if not stat.S_ISREG(mode):
            self._skip_or_count(by_name, relative, not_regular(mode))
            return
        if not by_name:
            try:
                kind = _sniff(path)
            except OSError as error:
                reason = f"cannot be read to see whether it is an image or a video ({os_reason(error)})"
                self.skipped.append(Skip(relative, reason))
                return
            if kind is None:
                self.other += 1
                return
        if kind == "video" and not self.videos:
            self.skipped.append(Skip(relative, NO_VIDEO_SUPPORT))
            return
        self.found.append(FoundFile(path, relative, link_to, kind))

    def _skip_or_count(self, listed: bool, relative: str, reason: str) -> None:
        """Files named like images are listed with the reason; any other such file is only counted."""
        if listed:
            self.skipped.append(Skip(relative, reason))
        else:
            self.other += 1


def find_images(source: Path, *, exclude: tuple[Path, ...] = ()) -> Scan:
    """Walk `source` recursively and return its image and video files in sorted order.

    A regular file counts when its extension is an image or video extension or its first bytes are
    an image signature or a video container's, so a JPEG saved as `.bin` is found and a text file
    named `.jpg` becomes an error row later rather than vanishing. Hidden files and folders and the folders in `exclude`
    (the destination when it lies inside the source) are left out silently. Folders that cannot be
    read, paths too long for the system, symlinked folders, and image-named files that are not
    regular files or are links out of the source are listed in `skipped` with the reason, and so
    are videos when PyAV (the video extra) is missing; symlinks to regular files inside the source
    are found.
    """
    root = Path(os.path.realpath(source))
    walk = _Walk(root, tuple(Path(os.path.realpath(folder)) for folder in exclude))
    for folder, dirnames, filenames in os.walk(root, onerror=walk.folder_error, followlinks=False):
        folder_path = Path(folder)
        dirnames[:] = walk.folders(folder_path, dirnames)
        for name in sorted(filenames):
            if not name.startswith("."):
                walk.file(folder_path / name)
    walk.found.sort(key=lambda item: item.relative)
    walk.skipped.sort(key=lambda item: item.relative)
    return Scan(tuple(walk.found), walk.other, tuple(walk.skipped))
