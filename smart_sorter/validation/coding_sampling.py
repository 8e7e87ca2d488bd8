"""`smart-sorter sample --coding`: a blind sample of a coding for human coders.

A sheet (CSV) with `id`, `file` and one empty column per codebook field, and verified copies of the
sampled files named by their `id` (0001.jpg, ...) in `<sheet>_files/` beside it: nothing shows the model's
answers, so they cannot sway the coders. The filled-in sheet is the truth for `evaluate --coding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.coding import CODED, CODING_FILE_NAME, CODING_MANIFEST_NAME
from ..errors import DestinationError, OptionError, PlacementError, SourceError
from ..options import OUTPUT_FILE_NAME
from ..storage.placing import place_file
from ..storage.tables import read_results
from .coding_evaluation import coding_codebook
from .publishing import publish_text, refuse_existing, refuse_source_folder
from .sampling import FILES_SUFFIX


@dataclass
class CodingSample:
    path: Path
    copies: Path
    files: int
    coding: Path

    def summary(self) -> str:
        return (
            f"Wrote {self.files} file(s) to {self.path}, and copies of them to {self.copies}, named by their 'id'."
            " The sheet does not show the model's answers. Open each copy and fill in its row's columns (leave a"
            f" cell empty to skip it), then run:\n  smart-sorter evaluate --coding {self.coding} --truth {self.path}"
        )


def _where_files_are(source: Path) -> dict[str, Path]:
    """Where a sorting placed each file, when the coded source is a sorting's destination (else {})."""
    if (source / OUTPUT_FILE_NAME).is_file():
        table = read_results(source)
        return {row["file"]: source / row["destination"] for row in table.to_dict("records") if row["destination"]}
    return {}


def refuse_coding_source(path: Path, source: Path) -> None:
    """Nothing is written into the folder a coding read its images from (for a sorting's destination coded in
    place: into that sorting's own source)."""
    if (source / OUTPUT_FILE_NAME).is_file():
        refuse_source_folder(path, source)
        return
    target, folder = Path(path).resolve(), Path(source).resolve()
    if target == folder or target.is_relative_to(folder):
        raise DestinationError(
            f"{str(path)!r} is inside the folder the coding read its images from ({str(folder)!r}); nothing is"
            " ever written there. Choose a place outside it."
        )


def coded_files(folder: Path) -> tuple[dict[str, Any], Path, dict[str, Path]]:
    """A coding's manifest, its source, and where each file coded from a sorting lies now."""
    manifest = read_manifest_of(folder)
    source = Path(manifest["source"])
    return manifest, source, _where_files_are(source)


def where_coded(row: dict[str, Any], folder: Path, source: Path, placed: dict[str, Path]) -> Path:
    """Where a coded file lies now: its --sort-by folder (a move left nothing in the source), where a sorting
    put it, or the source."""
    if row.get("destination"):
        return folder / row["destination"]
    return placed.get(row["file"], source / row["file"])


def read_manifest_of(folder: Path) -> dict[str, Any]:
    path = folder / CODING_MANIFEST_NAME
    if not path.is_file():
        raise SourceError(f"{str(folder)!r} holds no coding run ({CODING_MANIFEST_NAME}); give a coding's destination.")
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def sample_coding(coding: Path, output: Path, size: int, *, seed: int = 0) -> CodingSample:
    """Draw `size` coded files of the coding in `coding` (its destination, or its coding.csv) at random."""
    if size < 1:
        raise OptionError(f"The sample size must be at least 1; got {size}.")
    folder = Path(coding) if Path(coding).is_dir() else Path(coding).parent
    codebook = coding_codebook(folder, None)
    table = pd.read_csv(folder / CODING_FILE_NAME, keep_default_na=False, dtype=str)
    coded = table[table["status"] == CODED]
    if coded.empty:
        raise DestinationError("The coding has no answered file, so there is nothing to sample.")
    drawn = coded.sample(n=min(size, len(coded)), random_state=seed).reset_index(drop=True)
    _, source, placed = coded_files(folder)
    output = Path(output)
    copies = output.with_name(output.stem + FILES_SUFFIX)
    for path in (output, copies):
        refuse_coding_source(path, source)
    refuse_existing(output, replaceable=False)
    if copies.exists() and (not copies.is_dir() or any(copies.iterdir())):
        raise DestinationError(f"{str(copies)!r} already exists and is not empty; give a new place for the sample.")
    width = max(4, len(str(len(drawn))))
    names = [f"{number:0{width}d}{Path(file).suffix.lower()}" for number, file in enumerate(drawn["file"], start=1)]
    for row, name in zip(drawn.to_dict("records"), names):
        file, sha256 = row["file"], row["sha256"]
        try:
            place_file(where_coded(row, folder, source, placed), copies, "copy", sha256, name=name)
        except PlacementError as error:
            raise DestinationError(f"Could not copy {file} into the sample: {error}") from None
    sheet = pd.DataFrame({"id": names, "file": drawn["file"], **{name: "" for name in codebook.names}})
    publish_text(output, sheet.to_csv(index=False))
    return CodingSample(output, copies, len(drawn), folder / CODING_FILE_NAME)
