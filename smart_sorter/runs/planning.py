"""Before a run touches anything: check the folders, the labels and the options, and decide what the run
is (its folders, its table, the settings a resumed run must share). Nothing here writes a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.detections import NOTHING_FOUND, detection_columns
from ..core.labels import LabelSet, parse_labels
from ..core.rows import csv_columns
from ..errors import VIDEO_SETTINGS, DestinationError, LabelError, OtherRunError, SourceError
from ..options import OUTPUT_FILE_NAME, PLAN_FILE_NAME, UNCERTAIN_FOLDER, SortOptions
from ..storage.finished import interrupted_undo_message
from ..storage.journal import JournalState
from ..storage.layout import plan_folders

DEFAULTS = {name: getattr(SortOptions(), name) for name in VIDEO_SETTINGS}


@dataclass(frozen=True)
class RunPlan:
    """What one run is: where from and to, its labels and their folders, its table and its settings."""

    source: Path
    destination: Path
    labels: LabelSet
    folders: dict[str, str]  # label -> folder name
    folder_paths: dict[str, Path]  # label (and the uncertain bucket) -> folder
    csv_path: Path
    columns: tuple[str, ...]
    settings: dict[str, Any]  # what a resumed run must share with the run it resumes
    bucket: str = UNCERTAIN_FOLDER  # the folder of files no label fits (detection mode: `nothing found`)


def check_paths(source: Path, destination: Path) -> tuple[Path, Path]:
    """Both folders resolved; a sentence for a missing source or a destination that cannot be."""
    if not source.exists():
        raise SourceError(f"The source folder {str(source)!r} does not exist; check the path.")
    if not source.is_dir():
        raise SourceError(f"The source {str(source)!r} is a file, not a folder; give the folder that holds the images.")
    source, destination = source.resolve(), destination.resolve()
    if destination.exists() and not destination.is_dir():
        raise DestinationError(f"The destination {str(destination)!r} is a file; give a folder.")
    if source == destination or destination in source.parents:
        raise DestinationError(
            f"The source {str(source)!r} lies inside the destination {str(destination)!r}; sorting would mix"
            " sorted and unsorted files. Choose a destination outside the source."
        )
    return source, destination


def output_path(options: SortOptions, source: Path, destination: Path) -> Path:
    """Where output.csv (plan.csv for a dry run) goes: the destination unless given; a relative
    `output_file` is joined to the destination, as the original tool does; never into the source."""
    default = PLAN_FILE_NAME if options.dry_run else OUTPUT_FILE_NAME
    given = Path(options.output_file).expanduser() if options.output_file else Path(default)
    path = (given if given.is_absolute() else destination / given).resolve()
    if source in path.parents and destination not in path.parents:
        raise DestinationError(
            f"The output file {str(path)!r} would be written into the source folder; give a path outside it."
        )
    return path


def plan_run(source: Path, destination: Path, labels: Any, options: SortOptions) -> RunPlan:
    source, destination = check_paths(Path(source), Path(destination))
    if options.detect:  # objects to find, as written (a query is not a sentence about the image)
        label_set = parse_labels(labels, "{}", minimum=1)
        if any(label_set.negatives):
            raise LabelError("Objects to detect cannot be negative; leave out the 'negative' categories.")
    else:
        label_set = parse_labels(labels, options.template)
    bucket = options.threshold is not None or options.margin is not None or options.multi_label or options.detect
    bucket_name = NOTHING_FOUND if options.detect else UNCERTAIN_FOLDER
    folders, folder_paths = plan_folders(
        label_set.placed_categories,
        destination,
        uncertain_bucket=bucket or label_set.needs_uncertain,
        uncertain_name=bucket_name,
    )
    csv_path = output_path(options, source, destination)
    settings = {
        "source": str(source),
        "prompts": label_set.as_dict(),
        "model": options.model,
        "operation": options.operation,
        "prompt_mode": options.prompt_mode,
        "threshold": options.threshold,
        "margin": options.margin,
        "multi_label": options.multi_label,
        "copy_tags": options.copy_tags,
        "output_file": str(csv_path),
    }
    if options.tiles:  # only when used, so that journals written before tiling existed still match
        settings["tiles"] = options.tiles
    # how videos (and animations) are sampled and scored: only when not the default, for the same reason
    settings.update(
        {name: getattr(options, name) for name in VIDEO_SETTINGS if getattr(options, name) != DEFAULTS[name]}
    )
    tag_columns = label_set.categories if options.multi_label else ()
    columns = csv_columns(options.top_k, tag_columns, copies=options.copy_tags)
    if options.detect:
        settings["detect"] = True
        if options.by_example:
            settings["by_example"] = True
        columns = detection_columns(options.top_k, label_set.categories)
    return RunPlan(source, destination, label_set, folders, folder_paths, csv_path, columns, settings, bucket_name)


def check_same_run(state: JournalState, plan: RunPlan, *, finished: bool) -> None:
    """A destination holding another run's journal is refused: resuming is only for the same settings.

    A run that stopped before placing anything binds nothing: a new run may start over it.
    """
    if state.retiring is not None:
        raise DestinationError(interrupted_undo_message(plan.destination))
    if state.settings is None or state.settings == plan.settings or not state.files:
        return
    keys = dict.fromkeys([*plan.settings, *state.settings])  # a setting left at its default is not recorded
    differences = [key for key in keys if state.settings.get(key) != plan.settings.get(key)]
    raise OtherRunError(plan.destination, differences, finished=finished)


def refuse_read_only_folders(files: list[Any], copy_instead: str) -> None:
    """Moving removes files from the source: a folder of `files` that cannot be written to is refused before
    anything moves; `copy_instead` names the copy setting as the user gives it."""
    folders = sorted({found.path.parent for found in files})
    locked = [folder for folder in folders if not os.access(folder, os.W_OK)]
    if locked:
        raise SourceError(
            f"Moving removes files from the source, but {str(locked[0])!r}"
            + (f" and {len(locked) - 1} other folder(s)" if len(locked) > 1 else "")
            + f" cannot be written to (read-only). Copy instead ({copy_instead}), or make it writable;"
            " nothing was moved."
        )
