"""Before a coding run touches anything: which files it asks about, where coding.csv goes, and the settings
a resumed run must share. Nothing here writes a file.

The source is a folder of images, or the destination of a sorting (it holds output.csv): then the files
listed there are coded where they now lie, and coding.csv goes beside output.csv unless another
destination is given; their `file` is output.csv's own. A plain folder needs a destination: nothing is
ever written into a source folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.codebook import NUMBER, OPTIONS, TEXT, YES_NO, Codebook, codebook_from_question, parse_codebook
from ..core.codebook import read_codebook_file as read_codebook
from ..core.coding import CODING_FILE_NAME, CODING_MANIFEST_NAME, CodingOptions, coding_columns
from ..core.folders import label_folders
from ..errors import CodebookError, DestinationError, SourceError
from ..options import OUTPUT_FILE_NAME
from ..pipeline.finding import FoundFile, Skip, find_images
from ..storage.journal import journal_path
from ..storage.layout import folder_path
from ..storage.tables import read_results
from .planning import check_paths, refuse_read_only_folders


@dataclass(frozen=True)
class CodingPlan:
    """What one coding run is: its files, its codebook, its table and the settings a resumed run must share."""

    source: Path
    destination: Path
    codebook: Codebook
    files: tuple[FoundFile, ...]
    skipped: tuple[Skip, ...]
    csv_path: Path
    columns: tuple[str, ...]
    settings: dict[str, Any]
    folder_paths: dict[str, Path]  # with --sort-by: each value's folder


def as_codebook(codebook: Codebook | Path | str | dict | list | None, ask: str | None, ask_options: Any) -> Codebook:
    """The codebook from any form a user gives it in: a file, plain data, or one question (`ask`)."""
    if ask is not None:
        if codebook is not None:
            raise CodebookError("Give either a codebook or a question (--ask), not both.")
        options = [part.strip() for part in ask_options.split(",")] if isinstance(ask_options, str) else ask_options
        return codebook_from_question(ask, options)
    if codebook is None:
        raise CodebookError("Give a codebook (a YAML or JSON file of questions) or one question with --ask.")
    if isinstance(codebook, Codebook):
        return codebook
    if isinstance(codebook, (str, Path)):
        return read_codebook(Path(codebook))
    return parse_codebook(codebook)


def _sorted_files(source: Path) -> tuple[tuple[FoundFile, ...], tuple[Skip, ...]]:
    """The files a sorting placed, where they lie now, under output.csv's own `file`."""
    table = read_results(source)
    files, skipped = [], []
    for row in table.to_dict("records"):
        if row.get("destination"):
            files.append(FoundFile(source / row["destination"], row["file"]))
        else:
            skipped.append(Skip(row["file"], f"not placed by the sorting ({row.get('error') or row['status']})"))
    return tuple(files), tuple(skipped)


def _folders(codebook: Codebook, sort_by: str | None, destination: Path) -> dict[str, Path]:
    if sort_by is None:
        return {}
    field = codebook.field(sort_by)
    if field.kind not in (OPTIONS, YES_NO):
        kinds = f"{OPTIONS} or {YES_NO}"
        raise CodebookError(
            f"--sort-by needs a field of one value from a list ({kinds}); {sort_by!r} is of type {field.kind}."
            + (" Sort by it later from coding.csv." if field.kind in (NUMBER, TEXT) else "")
        )
    names = label_folders(field.categories, reserved=(CODING_FILE_NAME, CODING_MANIFEST_NAME))
    return {value: folder_path(destination, name) for value, name in names.items()}


def _check_placing(
    source: Path, destination: Path, sorted_source: bool, files: tuple[FoundFile, ...], options: CodingOptions
) -> None:
    """--sort-by places files as sorting does: never into a destination holding a sorting run (one undo per
    destination), a move never out of a sorting's destination (its own run and undo hold those files) nor
    out of a read-only folder."""
    if journal_path(destination).is_file():
        raise DestinationError(
            f"{str(destination)!r} holds a sorting run; --sort-by places files into a destination of its own, so"
            " that `smart-sorter undo` knows which run to reverse. Give another --destination."
        )
    if options.operation != "move":
        return
    if sorted_source:
        raise DestinationError(
            f"{str(source)!r} is a sorting's destination: its files belong to that run (its output.csv and undo)."
            " Copy them into the coding's folders instead (--operation copy)."
        )
    refuse_read_only_folders(files, "--operation copy")


def plan_coding(source: Path, destination: Path | None, codebook: Codebook, options: CodingOptions) -> CodingPlan:
    source = Path(source)
    if not source.is_dir():
        raise SourceError(f"The source folder {str(source)!r} does not exist or is not a folder; check the path.")
    source = source.resolve()
    sorted_source = (source / OUTPUT_FILE_NAME).is_file()
    if destination is None and not sorted_source:
        raise DestinationError(
            f"Give a destination (--destination) for coding.csv: nothing is written into the source folder"
            f" {str(source)!r}. (A sorting's destination, holding output.csv, is coded in place.)"
        )
    if sorted_source and (destination is None or Path(destination).resolve() == source):
        destination = source
        if options.sort_by:
            raise DestinationError(
                "--sort-by copies the files into folders of a new destination; give --destination another folder."
            )
    elif not sorted_source:
        source, destination = check_paths(source, Path(destination))
    destination = Path(destination).resolve()
    if sorted_source:
        files, skipped = _sorted_files(source)
    else:
        scan = find_images(source, exclude=(destination,))
        files, skipped = scan.files, scan.skipped
    if not files:
        raise SourceError(f"No images found in {str(source)!r}; check the folder.")
    if options.sort_by:
        _check_placing(source, destination, sorted_source, files, options)
    folder_paths = _folders(codebook, options.sort_by, destination)
    settings = {  # the server's address may change (a new port) without changing the coding
        "source": str(source), "codebook": codebook.as_dict(), "backend": options.backend,
        "model": options.model_name, "sort_by": options.sort_by,
    }  # fmt: skip
    if options.sort_by:
        settings["operation"] = options.operation
    csv_path = destination / CODING_FILE_NAME
    columns = coding_columns(codebook, placed=options.sort_by is not None)
    return CodingPlan(source, destination, codebook, files, skipped, csv_path, columns, settings, folder_paths)
