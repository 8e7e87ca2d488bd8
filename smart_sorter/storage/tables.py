"""The tables a run leaves in its destination: output.csv (written as the run goes, read back as a
DataFrame) and the JSON run manifest."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path
from typing import Any, TextIO

from ..core.rows import BASE_COLUMNS
from ..errors import DestinationError, DiskFullError, SourceError
from ..options import MANIFEST_FILE_NAME, OUTPUT_FILE_NAME


class CsvLog:
    """output.csv, opened once and appended to as files are done, so a crash keeps what was done.

    A new run never writes over an existing file. A resumed run (`rows` from its journal) writes
    its own output.csv anew from those rows, whole, then appends.
    """

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        *,
        resumed_rows: list[dict[str, Any]] | None = None,
        replace_own: bool = False,
    ):
        """`replace_own`: a table of ours already there (a dry run's earlier plan) is replaced whole;
        any other file under that name is refused."""
        self.path = path
        self.columns = columns
        if replace_own and _is_our_table(path):
            resumed_rows = []
        try:
            if resumed_rows is not None:
                partial = path.with_name(path.name + ".partial")
                with open(partial, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
                    writer.writeheader()
                    writer.writerows(shown_row(row) for row in resumed_rows)
                os.replace(partial, path)
                self._handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - open for the run
            else:
                self._handle = _open_new_table(path, columns)
        except FileExistsError:
            raise DestinationError(
                f"{str(path)!r} already exists and was not written by this run; choose another destination or"
                " --output_file, or move that file away."
            ) from None
        except OSError as error:
            raise DestinationError(f"Cannot write {str(path)!r}: {error.strerror or error}.") from None
        self._writer = csv.DictWriter(self._handle, fieldnames=columns, extrasaction="ignore")
        if resumed_rows is None and self._handle.tell() == 0:
            self._writer.writeheader()
        self._handle.flush()

    def write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self._writer.writerows(shown_row(row) for row in rows)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            if error.errno in DiskFullError.ERRNOS:
                raise DiskFullError.at(self.path.parent) from error
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk was already reported; the rows written are kept
            self._handle.close()


def _header(columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerow(columns)
    return buffer.getvalue().encode("utf-8")


def _open_new_table(path: Path, columns: tuple[str, ...]) -> TextIO:
    """A new table, never over an existing file; but a file holding nothing but this table's header (a run
    killed between writing it and journaling itself) is continued: only this tool writes it, and no byte
    of it is lost."""
    try:
        return open(path, "x", newline="", encoding="utf-8")
    except FileExistsError:
        header = _header(columns)
        with open(path, "rb") as existing:
            if existing.read(len(header) + 1) != header:
                raise
        return open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - open for the run


def shown_text(text: str) -> str:
    """A name as output.csv shows it: bytes of a file name that are not UTF-8 (which Python holds as
    surrogate escapes) appear as `\\xNN`, so the table stays valid UTF-8; other text is unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def shown_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: shown_text(value) if isinstance(value, str) else value for key, value in row.items()}


def _is_our_table(path: Path) -> bool:
    """Whether `path` is a table this tool wrote (its header starts with output.csv's columns)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(",".join(BASE_COLUMNS))
    except OSError:
        return False


def read_manifest(destination: Path, name: str = MANIFEST_FILE_NAME) -> dict[str, Any]:
    """The run manifest of a destination (a coding's: `name`), or {} when there is none."""
    path = Path(destination) / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write the run manifest whole: a new name first, then renamed over the previous version of itself."""
    partial = path.with_name(path.name + ".partial")
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    partial.write_text(text, encoding="utf-8", errors="backslashreplace")  # names not in UTF-8: JSON escapes
    os.replace(partial, path)


def read_results(results: Any):
    """output.csv as a pandas DataFrame (all text, scores as numbers), from a path, the destination
    holding it, a DataFrame or a SortResult."""
    import pandas as pd

    if isinstance(results, pd.DataFrame):
        return results.copy()
    if hasattr(results, "table") and isinstance(results.table, pd.DataFrame):
        return results.table.copy()
    path = Path(results)
    if path.is_dir():
        path = path / OUTPUT_FILE_NAME
    if not path.is_file():
        raise SourceError(f"No results table at {str(path)!r}; give the output.csv of a run or its destination.")
    table = pd.read_csv(path, keep_default_na=False, dtype=str)
    missing = {"file", "label", "status"} - set(table.columns)
    if missing:
        raise SourceError(f"{str(path)!r} is not a smart-sorter output.csv: it has no {', '.join(sorted(missing))}.")
    for column in [c for c in table.columns if c == "score" or c.startswith(("score_", "score:"))]:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def placed_rows(results: Any) -> Any:
    """The rows of files the run put in a folder (not errors, not a dry run's plans)."""
    return results[(results["status"] != "error") & (results["destination"] != "")]


def label_folders_of(rows: Any) -> Any:
    """The folder each placed file is in: the first part of its `destination`."""
    return rows["destination"].str.split("/").str[0]
