"""The HTML report: one self-contained file (thumbnails embedded, no network) to look at a sorting
and share it: a gallery per label, score distributions, the run manifest and, with hand labels,
the evaluation and its confusion matrix."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..core.detections import NOTHING_FOUND, row_boxes
from ..core.rows import runners_up
from ..errors import DestinationError
from ..options import OUTPUT_FILE_NAME, STATE_FOLDER_NAME, UNCERTAIN_FOLDER
from ..pipeline.thumbnails import StripFrame, thumbnail_uri, video_strip
from ..storage.frame_table import read_frame_times
from ..storage.lock import DestinationLock
from ..storage.tables import label_folders_of, placed_rows, read_manifest, read_results
from .evaluation import Evaluation
from .publishing import publish_text, refuse_existing, refuse_source_folder

REPORT_FILE_NAME = "report.html"
PER_LABEL = 24
HISTOGRAM_BINS = 20
LOW_CONFIDENCE_SHARE = 0.25  # the least confident quarter of a label's files is flagged


@dataclass(frozen=True)
class Tile:
    file: str
    destination: str
    score: float
    runner_up: str
    image: str | None  # a data URI, or None when the file cannot be shown
    low: bool
    time: float | None = None  # a video's: the moment of the frame shown, its best match
    strip: tuple[StripFrame, ...] = ()  # a video's scored frames (some of them), the best marked


def _tile(row: Any, destination: Path, low: bool, frame_times: dict[str, list[float]]) -> Tile:
    """A file's tile; a video's shows its best-matching frame and a strip of its scored frames."""
    path = destination / row["destination"]
    moment = None
    if row.get("kind") == "video":
        with contextlib.suppress(TypeError, ValueError):
            moment = float(row["time"])
    return Tile(
        file=row["file"],
        destination=row["destination"],
        score=float(row["score"]),
        runner_up=" ".join(f"{label} {score:.2f}" for label, score in runners_up(row)[:1]),
        image=thumbnail_uri(path, boxes=row_boxes(row), moment=moment or 0.0),
        low=low,
        time=moment,
        strip=tuple(video_strip(path, frame_times.get(row["file"], []), moment)) if row.get("kind") == "video" else (),
    )


def _gallery(
    table: pd.DataFrame, destination: Path, per_label: int, frame_times: dict[str, list[float]] | None = None
) -> list[dict[str, Any]]:
    """Per label folder: up to `per_label` files spread over its score range, most confident first;
    the least confident quarter flagged."""
    placed = placed_rows(table)
    sections = []
    for folder, files in placed.groupby(label_folders_of(placed), sort=False):
        files = files.sort_values("score", ascending=False)
        cut = files["score"].quantile(LOW_CONFIDENCE_SHARE)
        shown = files.iloc[np.unique(np.linspace(0, len(files) - 1, min(per_label, len(files))).round().astype(int))]
        tiles = [
            _tile(row, destination, len(files) > 1 and float(row["score"]) <= cut, frame_times or {})
            for _, row in shown.iterrows()
        ]
        title = folder if folder in (UNCERTAIN_FOLDER, NOTHING_FOUND) else files["label"].iloc[0]
        sections.append({"label": title, "folder": folder, "count": len(files), "tiles": tiles})
    return sections


def _histograms(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Bars of each label's score distribution, 0 to 1, as heights from 0 to 1."""
    bins = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    scored = table[table["status"] != "error"]
    charts = []
    for label, files in scored.groupby("label", sort=False):
        counts, _ = np.histogram(files["score"].astype(float).clip(0, 1), bins=bins)
        peak = max(int(counts.max()), 1)
        bars = [{"x": float(bins[i]), "height": counts[i] / peak, "count": int(counts[i])} for i in range(len(counts))]
        charts.append({"label": label, "bars": bars, "count": len(files), "median": float(files["score"].median())})
    return charts


def _confusion_cells(evaluation: Evaluation) -> dict[str, Any]:
    matrix = evaluation.confusion
    totals = matrix.sum(axis=1).replace(0, 1)
    share = matrix.div(totals, axis=0)
    labels = list(matrix.index)
    cells = [
        {"row": r, "column": c, "count": int(matrix.iat[r, c]), "share": float(share.iat[r, c]), "right": r == c}
        for r in range(len(labels))
        for c in range(len(labels))
    ]
    return {"labels": labels, "cells": cells, "size": len(labels)}


def model_facts(manifest: dict[str, Any]) -> dict[str, str]:
    """What the report says of the model near its top: id, device, weights' dtype, precision."""
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {"id": manifest.get("model")}
    options = manifest.get("options") if isinstance(manifest.get("options"), dict) else {}
    facts = {
        "model": model.get("id") or options.get("model"),
        "device": model.get("device"),
        "dtype": model.get("dtype"),
        "precision": model.get("precision") or manifest.get("precision") or options.get("precision"),
    }
    return {name: str(value) for name, value in facts.items() if value not in (None, "")}


def render_report(
    destination: Path,
    *,
    results: Any = None,
    evaluation: Evaluation | None = None,
    per_label: int = PER_LABEL,
    blur: bool = False,
    presence: Any = None,
) -> str:
    """The report of the run in `destination` as one HTML text; `presence` (a detection run's
    `PresenceEvaluation`) adds each object's precision and recall."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    destination = Path(destination).resolve()
    table = read_results(results if results is not None else destination)
    if table.empty:
        raise DestinationError(f"The run in {str(destination)!r} has no files to report on.")
    manifest = read_manifest(destination)
    environment = Environment(
        loader=PackageLoader("smart_sorter.validation", "templates"), autoescape=select_autoescape(default=True)
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        manifest=manifest,
        model=model_facts(manifest),
        manifest_json=json.dumps(manifest, indent=2, ensure_ascii=False, default=str),
        status_counts=table["status"].value_counts().to_dict(),
        total=len(table),
        sections=_gallery(table, destination, per_label, read_frame_times(_table_path(destination, manifest))),
        histograms=_histograms(table),
        evaluation=evaluation,
        presence=presence,
        confusion=_confusion_cells(evaluation) if evaluation is not None else None,
        per_class=evaluation.per_class.reset_index().to_dict("records") if evaluation is not None else [],
        blur=blur,
        per_label=per_label,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )


def _table_path(destination: Path, manifest: dict[str, Any]) -> Path:
    """The run's output.csv (frames.csv lies beside it)."""
    return Path(manifest.get("output_file") or destination / OUTPUT_FILE_NAME)


def report_path(destination: Path, output: Path | None = None, *, force: bool = False) -> Path:
    """Where the report goes (default: DESTINATION/report.html), refused before any work when a file
    is there (unless `force`) or when it is inside the run's source folder."""
    output = Path(output) if output is not None else Path(destination) / REPORT_FILE_NAME
    refuse_source_folder(output, destination)
    refuse_existing(output, force=force)
    return output


def write_report(
    destination: Path, output: Path | None = None, *, force: bool = False, locked: bool = False, **options: Any
) -> Path:
    """Write the report (default: DESTINATION/report.html) and return its path. An existing file is
    replaced only with `force`, even one that appears while the report is made; nothing is written
    into the run's source folder. `locked`: the caller holds `report_lock` already (having read the
    table it passes in under it)."""
    output = report_path(destination, output, force=force)
    with contextlib.nullcontext() if locked else report_lock(Path(destination)):
        # no run changes the destination while its report is made
        return publish_text(output, render_report(destination, **options), force=force)


def report_lock(destination: Path) -> Any:
    """The destination's lock where it holds a run (a folder of hand-sorted files holds none)."""
    if not (destination / STATE_FOLDER_NAME).is_dir():
        return contextlib.nullcontext()
    return DestinationLock(destination, "report")
