"""Label folders on disk: their paths, checked to stay inside the destination, and removing the
ones a run, re-sort or undo left empty."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core.folders import label_folders
from ..errors import LabelError


def folder_path(destination: Path, name: str) -> Path:
    """destination/name, checked to stay inside the destination."""
    root = destination.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise LabelError(f"The folder name {name!r} would lead outside the destination; rename the label.")
    return path


def plan_folders(
    categories: Sequence[str], destination: Path, *, uncertain_bucket: bool, uncertain_name: str
) -> tuple[dict[str, str], dict[str, Path]]:
    """Each label's folder name and path, plus the uncertain bucket's path (reserved when in use)."""
    folders = label_folders(categories, reserved=(uncertain_name,) if uncertain_bucket else ())
    paths = {label: folder_path(destination, name) for label, name in folders.items()}
    paths[uncertain_name] = folder_path(destination, uncertain_name)
    return folders, paths


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove those of `folders` that are empty (label folders a run, re-sort or undo left empty);
    a folder that still holds anything stays."""
    for folder in set(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()  # fails unless empty
