"""Detection mode: boxes found in an image to its row of output.csv. Pure: boxes and labels in, rows out.

A detection is `{"label": object, "score": probability, "box": [xmin, ymin, xmax, ymax]}`, the box in
pixels of the original image, as `transformers.pipeline("zero-shot-object-detection")` gives it. A
file goes to the folder of its most confident object (copies into the others'), or to `nothing
found`; output.csv gains `objects` (found, best first), `boxes` (JSON) and `count:<object>`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from .labels import LabelSet
from .rows import BASE_COLUMNS, make_row
from .tiling import Box, box_to_image, non_maximum_suppression
from .videos import FRAME_DETAIL, VIDEO_COLUMNS

NOTHING_FOUND = "nothing found"  # the folder of files in which no object was found
DETECTION_THRESHOLD = 0.1  # the transformers pipeline's own default
NMS_IOU = 0.5  # boxes of one object from overlapping tiles that overlap more than this are one box


class Detection(TypedDict):
    label: str
    score: float
    box: list[int]


class FrameDetection(Detection, total=False):
    time: float  # a video's box: the time (seconds) of the frame it is in


def detection_columns(top_k: int, objects: Sequence[str]) -> tuple[str, ...]:
    """output.csv's columns in detection mode: the base ones, a video's, the runner-up objects, what was found
    and where."""
    runners_up = tuple(f"{name}_{rank}" for rank in range(2, top_k + 1) for name in ("label", "score"))
    found = ("objects", "copies", "boxes") + tuple(f"count:{name}" for name in objects)
    return BASE_COLUMNS + VIDEO_COLUMNS + runners_up + found


def kept_detections(detections: Sequence[Detection], objects: LabelSet, threshold: float | None) -> list[Detection]:
    """Detections above their object's threshold (its own in a labels file, else `threshold`, else the
    pipeline's 0.1; above, not at, as the pipeline keeps them), best first."""
    default = DETECTION_THRESHOLD if threshold is None else threshold
    limits = {name: objects.threshold_of(index, default) for index, name in enumerate(objects.categories)}
    kept = [found for found in detections if found["score"] > limits.get(found["label"], default)]
    return sorted(kept, key=lambda found: -found["score"])


def lowest_threshold(objects: LabelSet, threshold: float | None) -> float:
    """The threshold a model's own post-processing must use so that no object's own threshold is cut off."""
    default = DETECTION_THRESHOLD if threshold is None else threshold
    return min(objects.threshold_of(index, default) for index in range(len(objects.categories)))


def merge_views(
    per_view: Sequence[Sequence[Detection]], views: Sequence[Box], *, merge: bool = True, iou: float = NMS_IOU
) -> list[Detection]:
    """Detections made in each view (the whole image, then tiles) as detections in the whole image: boxes
    mapped back and, with `merge`, the overlapping boxes of each object merged by non-maximum suppression;
    best first."""
    mapped = [
        {**found, "box": [int(v) for v in box_to_image(found["box"], view)]}
        for found_in_view, view in zip(per_view, views)
        for found in found_in_view
    ]
    if not merge:
        return sorted(mapped, key=lambda found: -found["score"])  # type: ignore[return-value]
    merged: list[Detection] = []
    for name in dict.fromkeys(found["label"] for found in mapped):
        same = [found for found in mapped if found["label"] == name]
        boxes = np.array([found["box"] for found in same], dtype=float)
        scores = np.array([found["score"] for found in same])
        merged.extend(same[index] for index in non_maximum_suppression(boxes, scores, iou))  # type: ignore[misc]
    return sorted(merged, key=lambda found: -found["score"])


def detection_row(
    relative: str,
    sha256: str,
    detections: Sequence[Detection],
    objects: LabelSet,
    *,
    threshold: float | None,
    top_k: int | None = None,
) -> dict[str, Any]:
    """A file's row: its best object as the label (`nothing found`: status `uncertain`, no label), the
    other objects found as runners-up (up to `top_k` in all), every box kept and a count per object."""
    kept = kept_detections(detections, objects, threshold)
    best: dict[str, float] = {}
    for found in kept:
        best.setdefault(found["label"], found["score"])
    names = list(best)
    order = tuple(objects.categories.index(name) for name in names)[:top_k]
    prompt = objects.all_prompts[objects.prompt_owner.index(order[0])] if order else ""
    row = make_row(
        relative,
        sha256,
        categories=objects.categories,
        order=order,
        probabilities=tuple(best.values())[:top_k],
        prompt=prompt,
        status="sorted" if kept else "uncertain",
    )
    row["objects"] = "; ".join(names)
    row["boxes"] = json.dumps([{key: f[key] for key in ("label", "score", "box", "time") if key in f} for f in kept])
    for name in objects.categories:
        row[f"count:{name}"] = sum(1 for found in kept if found["label"] == name)
    return row


def video_detection_row(
    relative: str,
    sha256: str,
    frames: Sequence[tuple[float, Sequence[Detection]]],
    duration: float | None,
    objects: LabelSet,
    *,
    threshold: float | None,
    top_k: int | None = None,
) -> dict[str, Any]:
    """A video's row from its sampled frames' detections, (time, detections) each: the objects found in any
    frame, each box with the `time` of its frame; `time` is the best box's; `count:<object>` the most boxes of
    it in one frame (the same object in several frames is one object); each frame's best box for frames.csv."""
    moments = [round(float(time), 3) for time, _ in frames]
    timed: list[FrameDetection] = [
        {**found, "time": moment} for moment, (_, found_in) in zip(moments, frames) for found in found_in
    ]
    row = detection_row(relative, sha256, timed, objects, threshold=threshold, top_k=top_k)
    kept: list[FrameDetection] = row_boxes(row)  # best first
    in_frame = {moment: [found for found in kept if found["time"] == moment] for moment in moments}
    row.update(kind="video", frames=len(frames), duration="" if duration is None else round(float(duration), 3))
    row["time"] = kept[0]["time"] if kept else ""
    for name in objects.categories:
        row[f"count:{name}"] = max((sum(f["label"] == name for f in found) for found in in_frame.values()), default=0)
    row[FRAME_DETAIL] = [
        [moment, found[0]["label"], found[0]["score"]] if found else [moment, "", ""]
        for moment, found in in_frame.items()
    ]
    return row


def row_boxes(row: Any) -> list[Any]:
    """The boxes of a row of output.csv (none for a row without them)."""
    text = row.get("boxes") if hasattr(row, "get") else None
    if not isinstance(text, str) or not text.strip():
        return []
    try:
        return list(json.loads(text))
    except ValueError:
        return []
