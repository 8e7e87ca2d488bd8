"""Find the images under a source folder: recursive, in a stable order, by content as well as name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    [".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"]
    + [".heic", ".heif", ".avif"]
)
_SNIFF_BYTES = 16


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


@dataclass(frozen=True)
class FoundFile:
    """One candidate image: its path and its path relative to the source with `/` separators."""

    path: Path
    relative: str


@dataclass(frozen=True)
class Scan:
    """What a walk of the source found: the image files, and how many other files it passed over."""

    files: tuple[FoundFile, ...]
    skipped_other: int


def _looks_like_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            return sniff_image_format(handle.read(_SNIFF_BYTES)) is not None
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def find_images(source: Path, *, exclude: tuple[Path, ...] = ()) -> Scan:
    """Walk `source` recursively and return its image files in sorted order.

    A file counts when its extension is an image extension or its first bytes are an image
    signature, so a JPEG saved as `.bin` is found and a text file named `.jpg` becomes an error
    row later rather than vanishing. Hidden files and folders, the folders in `exclude` (the
    destination when it lies inside the source), and symlinks that lead outside the source are
    skipped; symlinked folders are not entered, so loops cannot hang the walk.
    """
    root = source.resolve()
    excluded = tuple(folder.resolve() for folder in exclude)
    found: list[FoundFile] = []
    skipped = 0
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        folder_path = Path(folder)
        dirnames[:] = sorted(
            name
            for name in dirnames
            if not name.startswith(".") and not any(_inside(folder_path / name, ex) for ex in excluded)
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = folder_path / name
            if path.is_symlink():
                target = path.resolve()
                if not _inside(target, root) or not target.is_file():
                    skipped += 1
                    continue
            if _looks_like_image(path):
                found.append(FoundFile(path, path.relative_to(root).as_posix()))
            else:
                skipped += 1
    found.sort(key=lambda item: item.relative)
    return Scan(tuple(found), skipped)
