"""Label -> folder name: safe on every file system, never leading outside the destination."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import LabelError
from ..options import SORTER_NAMES, SORTER_PREFIXES

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


def sorter_name(name: str) -> bool:
    """Whether a folder called `name` would take a name the sorter writes into the destination."""
    key = folder_key(name)
    return key in {folder_key(own) for own in SORTER_NAMES} or key.startswith(
        tuple(folder_key(prefix) for prefix in SORTER_PREFIXES)
    )


def label_folders(labels: Sequence[str], reserved: Sequence[str] = ()) -> dict[str, str]:
    """Each label's folder name, refusing before anything is touched labels that would share one, or
    take a name the sorter writes itself (output.csv, .smart-sorter, ...: `options.SORTER_NAMES`).
    `reserved` names the other folders the run uses (the uncertain bucket)."""
    folders: dict[str, str] = {}
    owners: dict[str, str] = {folder_key(name): f"the {name!r} folder the sorter uses" for name in reserved}
    for label in labels:
        name = label_folder(label)
        if sorter_name(name):
            raise LabelError(
                f"The label {label!r} would get the folder {name!r}, a name the sorter keeps for its own files"
                f" ({', '.join(SORTER_NAMES[:5])}, {', '.join(SORTER_NAMES[-2:])}, and names starting with"
                f" {SORTER_PREFIXES[0]}); rename the label."
            )
        key = folder_key(name)
        if key in owners:
            raise LabelError(
                f"The labels {label!r} and {owners[key]} would share the folder {name!r}"
                " (folder names ignore case and unsafe characters); rename one of them."
            )
        owners[key] = repr(label)
        folders[label] = name
    return folders


@lru_cache(maxsize=1)
def _glyph_classes() -> dict[str, str]:
    """Each character that looks like others (Unicode's confusables, from `confusable_homoglyphs`) ->
    one representative of all the characters it may be taken for, an ASCII one where there is one."""
    try:
        from confusable_homoglyphs.confusables import confusables_data
    except ImportError:  # an install without it: no look-alike advice, rather than no run
        return {}

    parent: dict[str, str] = {}

    def find(char: str) -> str:
        parent.setdefault(char, char)
        while parent[char] != char:
            parent[char] = parent[parent[char]]
            char = parent[char]
        return char

    for char, glyphs in confusables_data.items():
        for glyph in glyphs:
            other = glyph["c"].replace("\u200e", "")  # right-to-left letters come wrapped in marks
            if len(char) == 1 and len(other) == 1:
                first, second = find(char), find(other)
                if first != second:
                    parent[max(first, second)] = min(first, second)  # the lowest code point: ASCII wins
    return {char: find(char) for char in parent}


def _skeleton(name: str) -> str:
    """What `name` looks like: each character replaced by the representative of its look-alikes."""
    classes = _glyph_classes()
    shape = "".join(classes.get(char, char) for char in unicodedata.normalize("NFKC", name))
    return "".join(classes.get(char, char) for char in shape.casefold())


def lookalike_folders(labels: Sequence[str]) -> list[tuple[str, str, str]]:
    """Pairs of labels whose folder names differ but look the same (Latin `Cat`, Cyrillic `Сat`), each with
    the characters that tell them apart, named: (first, second, "'С' is CYRILLIC CAPITAL LETTER ES")."""
    names = {label: label_folder(label) for label in labels}
    if all(name.isascii() for name in names.values()):
        return []  # within ASCII only 1/l/I and 0/O look alike, and labels mean those differently
    seen: dict[str, str] = {}
    pairs = []
    for label, name in names.items():
        shape = _skeleton(name)
        other = seen.setdefault(shape, label)
        if other != label and folder_key(names[other]) != folder_key(name):
            differing = sorted(set(name) ^ set(names[other]))
            described = ", ".join(f"{char!r} is {unicodedata.name(char, 'unnamed')}" for char in differing)
            pairs.append((other, label, described))
    return pairs


def target_folder(row: dict[str, Any], folder_paths: dict[str, Path], uncertain_name: str) -> Path:
    """A scored file's folder: its label's, or the uncertain bucket when its best label was too weak."""
    return folder_paths[uncertain_name if row["status"] == "uncertain" else row["label"]]
