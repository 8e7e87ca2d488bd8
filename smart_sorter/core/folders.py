"""Label -> folder name: safe on every file system, never leading outside the destination."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LabelError

MAX_FOLDER_BYTES = 120
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{name}{n}" for name in ("COM", "LPT") for n in range(1, 10)}


def _cap_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")  # drops a character cut in half


def label_folder(label: str) -> str:
    """The folder name for `label`: NFC, unsafe characters replaced, length capped in bytes.

    Path separators, control characters and characters Windows forbids become `_`; trailing
    dots and spaces go; `.`, `..`, empty names and Windows device names (CON, COM1...) get a
    `_` so they are ordinary names. The result is one path component on every platform.
    """
    name = _UNSAFE.sub("_", unicodedata.normalize("NFC", label)).strip()
    name = _cap_bytes(name, MAX_FOLDER_BYTES).rstrip(". ")
    if not name or set(name) == {"."}:
        name = "_" + name
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name


def folder_key(name: str) -> str:
    """Two folder names that a case-insensitive or normalising file system would merge share a key."""
    return unicodedata.normalize("NFKC", name).casefold()


def label_folders(labels: Sequence[str], reserved: Sequence[str] = ()) -> dict[str, str]:
    """Each label's folder name, refusing before anything is touched labels that would share one."""
    folders: dict[str, str] = {}
    owners: dict[str, str] = {folder_key(name): f"the {name!r} folder the sorter uses" for name in reserved}
    for label in labels:
        name = label_folder(label)
        key = folder_key(name)
        if key in owners:
            raise LabelError(
                f"The labels {label!r} and {owners[key]} would share the folder {name!r}"
                " (folder names ignore case and unsafe characters); rename one of them."
            )
        owners[key] = repr(label)
        folders[label] = name
    return folders


def target_folder(row: dict[str, Any], folder_paths: dict[str, Path], uncertain_name: str) -> Path:
    """A scored file's folder: its label's, or the uncertain bucket when its best label was too weak."""
    return folder_paths[uncertain_name if row["status"] == "uncertain" else row["label"]]
