"""A video's scores from its frames' scores, and the video columns of its row: pure functions of arrays.

A video is scored as the images of its sampled frames are; its label comes from their probabilities,
averaged (`mean`: what the video shows most of the time) or the best frame's (`max`: what it shows
at some point). In multi-label mode each category's tag score is its best frame's, so a tag says
the video shows it at some point. Rows get `kind`, `frames`, `duration` and `time` (the moment of
the frame that matched the chosen label best), and keep each frame's best label for frames.csv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .labels import LabelSet
from .scoring import Scores

VIDEO_COLUMNS = ("kind", "frames", "duration", "time")
FRAME_COLUMNS = ("file", "time", "label", "score")
FRAME_DETAIL = "frame_scores"  # a row's per-frame [time, label, score]: journaled, not in output.csv


@dataclass(frozen=True)
class FrameSeries:
    """One video's scored frames: their times (seconds), per-frame scores, and its duration."""

    times: tuple[float, ...]
    probabilities: np.ndarray  # (frames, categories)
    independent: np.ndarray | None  # (frames, categories): each category on its own, for tags
    duration: float | None


@dataclass(frozen=True)
class MediaScores(Scores):
    """Scores of a batch mixing images and videos: one row per file, and a FrameSeries per video
    (None for an image), in the order of the scored files."""

    series: tuple[FrameSeries | None, ...] = ()


def how_to_combine(video_score: str, multi_label: bool) -> str:
    """`mean` or `max`: what `auto` means for this run."""
    if video_score == "auto":
        return "max" if multi_label else "mean"
    return video_score


def combine(values: np.ndarray, how: str) -> np.ndarray:
    """(frames, categories) -> (categories,): the frames' mean or maximum."""
    return values.max(axis=0) if how == "max" else values.mean(axis=0)


def aggregate(
    frame_scores: Scores,
    spans: Sequence[tuple[int, int]],
    videos: Sequence[tuple[tuple[float, ...], float | None] | None],
    how: str,
) -> MediaScores:
    """Per file from per frame: `spans[i]` is (first, count) of file i's rows in `frame_scores`, and
    `videos[i]` its (frame times, duration) when it is a video (None for an image, one row as it is).

    A video's best prompt for a category is that of its frame scoring the category best.
    """
    probabilities, best_prompt, independent, series = [], [], [], []
    for (first, count), video in zip(spans, videos):
        rows = slice(first, first + count)
        frame_probabilities = frame_scores.probabilities[rows]
        frame_independent = None if frame_scores.independent is None else frame_scores.independent[rows]
        if video is None:
            probabilities.append(frame_probabilities[0])
            best_prompt.append(frame_scores.best_prompt[first])
            independent.append(None if frame_independent is None else frame_independent[0])
            series.append(None)
            continue
        times, duration = video
        probabilities.append(combine(frame_probabilities, how))
        best_frame = frame_probabilities.argmax(axis=0)
        best_prompt.append(frame_scores.best_prompt[rows][best_frame, np.arange(frame_probabilities.shape[1])])
        # a tag says the video shows it at some point: its best frame's own score
        independent.append(None if frame_independent is None else frame_independent.max(axis=0))
        series.append(FrameSeries(tuple(times), frame_probabilities, frame_independent, duration))
    stacked_independent = None if frame_scores.independent is None else np.stack(independent)
    return MediaScores(np.stack(probabilities), np.stack(best_prompt), stacked_independent, tuple(series))


def best_time(series: FrameSeries, category: int) -> float:
    """The time of the frame that matched `category` best among the labels: by its probability, also for
    tags (a tag's own score saturates near 1 on many frames and cannot tell them apart)."""
    return float(series.times[int(np.argmax(series.probabilities[:, category]))])


def video_fields(row: dict[str, Any], series: FrameSeries, labels: LabelSet, *, multi_label: bool) -> dict[str, Any]:
    """The video columns of a scored video's row: frames, duration, the best frame's time for the chosen
    label (and in multi-label mode `time:<tag>` for each tag), and each frame's best label and score."""
    categories = labels.categories
    fields: dict[str, Any] = {"kind": "video", "frames": len(series.times), "duration": _seconds(series.duration)}
    if row.get("label") in categories:
        fields["time"] = _seconds(best_time(series, categories.index(row["label"])))
    if multi_label:
        for tag in [tag for tag in str(row.get("tags") or "").split("; ") if tag]:
            fields[f"time:{tag}"] = _seconds(best_time(series, categories.index(tag)))
    tops = series.probabilities.argmax(axis=1)
    fields[FRAME_DETAIL] = [
        [_seconds(time), categories[int(top)], float(series.probabilities[index, top])]
        for index, (time, top) in enumerate(zip(series.times, tops))
    ]
    return fields


def _seconds(value: float | None) -> float | str:
    return "" if value is None else round(float(value), 3)


def frame_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """frames.csv: every scored frame of every video row (file, time, label, score), in row order."""
    return [
        {"file": row["file"], "time": time, "label": label, "score": score}
        for row in rows
        for time, label, score in row.get(FRAME_DETAIL) or ()
    ]
