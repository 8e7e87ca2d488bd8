"""frames.csv: every scored frame of every video of a run (file, time, label, score), beside output.csv.

It is derived from the rows (each video's row keeps its frames' best labels, and the journal keeps the
rows), so it is written whole at the end of a run, of a resumed run and of a re-sort: a new name
first, then renamed over the previous version of itself. A file of that name that this tool did not
write is never replaced.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.videos import FRAME_COLUMNS, frame_rows
from ..options import FRAMES_FILE_NAME, OUTPUT_FILE_NAME
from .tables import shown_row


def frames_path(csv_path: Path) -> Path:
    """frames.csv beside output.csv; beside any other table, `<its name>-frames.csv` (plan-frames.csv)."""
    name = FRAMES_FILE_NAME if csv_path.name == OUTPUT_FILE_NAME else f"{csv_path.stem}-{FRAMES_FILE_NAME}"
    return csv_path.with_name(name)


def _ours_or_absent(path: Path) -> bool:
    if not path.exists():
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().strip() == ",".join(FRAME_COLUMNS)
    except OSError:
        return False


def write_frame_table(csv_path: Path, rows: Sequence[dict[str, Any]]) -> Path | None:
    """Write the frames of the video rows beside `csv_path`; None when there are none (or the name is
    taken by a file this tool did not write, which is left as it is)."""
    frames = frame_rows(rows)
    path = frames_path(csv_path)
    if not frames or not _ours_or_absent(path):
        return None
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FRAME_COLUMNS)
        writer.writeheader()
        writer.writerows(shown_row(frame) for frame in frames)
    os.replace(partial, path)
    return path


def read_frame_times(csv_path: Path) -> dict[str, list[float]]:
    """The scored frames' times of each video in the frames table beside `csv_path` ({} when there is none)."""
    path = frames_path(Path(csv_path))
    times: dict[str, list[float]] = {}
    if not _ours_or_absent(path) or not path.is_file():
        return times
    with open(path, newline="", encoding="utf-8") as handle:
        for frame in csv.DictReader(handle):
            try:
                times.setdefault(frame["file"], []).append(float(frame["time"]))
            except (KeyError, TypeError, ValueError):
                continue
    return times
