"""`smart-sorter sample`: a random (or per-label stratified) sample of a finished run to label by hand,
as a CSV to fill in or as folders to drag files into. Either is then the truth for `evaluate`.

The sample is blind: nothing a coder sees reveals the sorter's label. Each sampled file is copied
(verified against its hash) under a neutral name, `0001.jpg`, `0002.png`... in the order of a
shuffle: into `<sheet>_files/` beside the CSV, whose columns are `id` (that name), `file` (the path
under the source, as in output.csv, for matching) and an empty `label`; or into `_to_label/` of the
sample folder, beside one folder per label of the run (all of them, not only those that got files)
and `none`. `evaluate` finds the copies again by their bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.folders import label_folder
from ..core.rows import NO_LABEL
from ..errors import DestinationError, OptionError, PlacementError
from ..storage.placing import place_file
from ..storage.tables import label_folders_of, placed_rows, read_results
from .evaluation import UNLABELLED_FOLDER, run_categories
from .publishing import publish_text, refuse_existing, refuse_source_folder

FILES_SUFFIX = "_files"  # sample.csv -> sample_files/, the copies to open


def draw_sample(results: Any, size: int, *, stratified: bool = False, seed: int = 0) -> pd.DataFrame:
    """`size` placed files of the run, at random, or spread evenly over its labels (`stratified`), in a
    shuffled order (so that a stratified sample is not grouped by label)."""
    if size < 1:
        raise OptionError(f"The sample size must be at least 1; got {size}.")
    table = read_results(results)
    placed = placed_rows(table)
    if placed.empty:
        raise DestinationError("The run placed no file, so there is nothing to sample.")
    size = min(size, len(placed))
    if not stratified:
        return placed.sample(n=size, random_state=seed).reset_index(drop=True)
    groups = placed.groupby(label_folders_of(placed), sort=False)
    share = size // groups.ngroups
    chosen = pd.concat(group.sample(n=min(share, len(group)), random_state=seed) for _, group in groups)
    rest = placed.drop(chosen.index)
    if len(chosen) < size:  # labels with too few files leave room: filled at random
        chosen = pd.concat([chosen, rest.sample(n=size - len(chosen), random_state=seed)])
    return chosen.sample(frac=1, random_state=seed).reset_index(drop=True)


@dataclass
class SampleResult:
    path: Path
    files: int
    as_folders: bool
    asked: int = 0  # the size asked for
    placed: int = 0  # files the run placed, to sample from
    copies: Path | None = None  # where the neutrally named copies are
    destination: Path | None = None

    def summary(self) -> str:
        lines = []
        if self.asked > self.files:
            lines.append(f"The run has only {self.placed} placed files; the sample holds all {self.files}.")
        results = str(self.destination) if self.destination is not None else "DESTINATION"
        evaluate = f"  smart-sorter evaluate --results {results} --truth {self.path}"
        if self.as_folders:
            lines.append(
                f"Copied {self.files} file(s) into {self.copies}, named 0001, 0002... so that neither their names"
                f" nor their folders show the sorter's label. Drag each into the folder of its right label (a folder"
                f" '{NO_LABEL}' is for files no label fits; there is a folder for every label of the run), then run:"
            )
        else:
            lines.append(
                f"Wrote {self.files} file(s) to {self.path}, and copies of them to {self.copies}, named by their"
                f" 'id' (0001, 0002...). Neither shows the sorter's label, so it cannot sway you. Open each copy and"
                f" write its right label in the 'label' column of its row ('{NO_LABEL}' when no label fits), then run:"
            )
        lines.append(evaluate)
        return "\n".join(lines)


def _neutral_names(sample: pd.DataFrame) -> list[str]:
    width = max(4, len(str(len(sample))))
    return [f"{number:0{width}d}{Path(file).suffix.lower()}" for number, file in enumerate(sample["file"], start=1)]


def _copy_blind(destination: Path, sample: pd.DataFrame, folder: Path, names: list[str]) -> None:
    """Verified copies of the sampled files into `folder`, under `names`."""
    for (_, row), name in zip(sample.iterrows(), names):
        try:
            placed = place_file(destination / row["destination"], folder, "copy", row["sha256"], name=name)
        except PlacementError as error:
            raise DestinationError(f"Could not copy {row['file']} into the sample: {error}") from None
        if placed.path.name != name:  # the folder was new: another file there means someone else writes in it
            raise DestinationError(f"{str(folder)!r} changed while the sample was copied into it; draw it again.")


def _refuse_used_folder(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DestinationError(f"{str(folder)!r} already exists and is not empty; give a new place for the sample.")


def write_sample(
    destination: Path, sample: pd.DataFrame, output: Path, *, as_folders: bool, asked: int = 0, placed: int = 0
) -> SampleResult:
    """Write the sample for hand labelling, blind (see the module's docstring). Nothing existing is
    replaced and nothing is written into the run's source folder."""
    destination, output = Path(destination), Path(output)
    refuse_source_folder(output, destination)
    counts = {"asked": asked, "placed": placed, "destination": destination}
    if as_folders:
        _refuse_used_folder(output)
        labels = run_categories(destination, sample) or [label for label in dict.fromkeys(sample["label"]) if label]
        for label in [*labels, NO_LABEL]:
            (output / label_folder(label)).mkdir(parents=True, exist_ok=True)
        unlabelled = output / UNLABELLED_FOLDER
        _copy_blind(destination, sample, unlabelled, _neutral_names(sample))
        return SampleResult(output, len(sample), True, copies=unlabelled, **counts)
    copies = output.with_name(output.stem + FILES_SUFFIX)
    refuse_source_folder(copies, destination)
    refuse_existing(output, replaceable=False)
    _refuse_used_folder(copies)
    names = _neutral_names(sample)
    sheet = pd.DataFrame({"id": names, "file": sample["file"].to_list(), "label": ""})
    _copy_blind(destination, sample, copies, names)
    publish_text(output, sheet.to_csv(index=False))
    return SampleResult(output, len(sample), False, copies=copies, **counts)


def take_sample(
    destination: Path, output: Path, size: int, *, as_folders: bool, stratified: bool = False, seed: int = 0
) -> SampleResult:
    """Draw a sample of the run in `destination` and write it to `output` (a CSV, or a folder)."""
    table = read_results(destination)
    drawn = draw_sample(table, size, stratified=stratified, seed=seed)
    return write_sample(destination, drawn, output, as_folders=as_folders, asked=size, placed=len(placed_rows(table)))
