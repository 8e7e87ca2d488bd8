"""`smart-sorter sample`: a random (or per-label stratified) sample of a finished run to label by hand,
as a CSV to fill in or as folders to drag files into. Either is then the truth for `evaluate`."""

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
from .evaluation import UNLABELLED_FOLDER


def draw_sample(results: Any, size: int, *, stratified: bool = False, seed: int = 0) -> pd.DataFrame:
    """`size` placed files of the run, at random, or spread evenly over its labels (`stratified`)."""
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
    return chosen.reset_index(drop=True)


@dataclass
class SampleResult:
    path: Path
    files: int
    as_folders: bool

    def summary(self) -> str:
        if self.as_folders:
            return (
                f"Copied {self.files} file(s) into {self.path / UNLABELLED_FOLDER}. Drag each into the folder of its"
                f" right label (a folder '{NO_LABEL}' is for files no label fits), then run:\n"
                f"  smart-sorter evaluate --results DESTINATION --truth {self.path}"
            )
        return (
            f"Wrote {self.files} file(s) to {self.path}. Open each file (its 'destination' column is relative to the"
            f" run's destination), write its right label in the 'label' column ('{NO_LABEL}' when none fits), then:\n"
            f"  smart-sorter evaluate --results DESTINATION --truth {self.path}"
        )


def write_sample(destination: Path, sample: pd.DataFrame, output: Path, *, as_folders: bool) -> SampleResult:
    """Write the sample for hand labelling. The sorter's own label is left out on purpose, so that it
    does not sway the person labelling."""
    destination, output = Path(destination), Path(output)
    if as_folders:
        if output.exists() and any(output.iterdir()):
            raise DestinationError(f"{str(output)!r} is not empty; give a new folder for the sample.")
        labels = [label for label in sample["label"].unique() if label]
        for label in [*labels, NO_LABEL]:
            (output / label_folder(label)).mkdir(parents=True, exist_ok=True)
        unlabelled = output / UNLABELLED_FOLDER
        for _, row in sample.iterrows():
            try:
                place_file(destination / row["destination"], unlabelled, "copy", row["sha256"])
            except PlacementError as error:
                raise DestinationError(f"Could not copy {row['destination']} into the sample: {error}") from None
        return SampleResult(output, len(sample), True)
    if output.exists():
        raise DestinationError(f"{str(output)!r} already exists; give a new file name for the sample.")
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet = pd.DataFrame({"file": sample["file"], "destination": sample["destination"], "label": ""})
    sheet.to_csv(output, index=False)
    return SampleResult(output, len(sample), False)
