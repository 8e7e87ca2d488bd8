"""Tiles: small things in big images. Pure geometry and the reductions over tiles, no pixels touched.

A model sees an image at its own resolution (224 pixels for most CLIPs): a rifle in the corner of a
street photo shrinks to a few pixels and is lost. Tiling cuts the image into overlapping square
tiles, each given to the model whole, and scores the image by its best tile per label ("does it
contain X"); for a detector, the tiles' boxes are mapped back to the image and merged by
non-maximum suppression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .scoring import Scores

Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels of the image
TILE_OVERLAP = 0.25  # of a tile's side shared with its neighbour: an object cut by one edge is whole in the next


def _starts(length: int, side: int, overlap: float) -> list[int]:
    """Evenly spaced starts of tiles of `side` covering `length`, neighbours overlapping by at least `overlap`."""
    if side >= length:
        return [0]
    count = math.ceil((length - side) / (side * (1.0 - overlap))) + 1
    step = (length - side) / (count - 1)
    return [round(index * step) for index in range(count)]


def tile_side(width: int, height: int, tiles: int, *, min_side: int, overlap: float = TILE_OVERLAP) -> int:
    """The side of square tiles, `tiles` of them across the shorter side with `overlap`; never under
    `min_side` (the model's input: a tile is not enlarged) nor over the shorter side."""
    short = min(width, height)
    side = math.ceil(short / (tiles - overlap * (tiles - 1))) if tiles > 0 else short
    return max(1, min(short, max(side, min_side)))


def tile_boxes(width: int, height: int, tiles: int, *, min_side: int, overlap: float = TILE_OVERLAP) -> list[Box]:
    """The boxes an image is seen through: the whole image first, then, when `tiles` > 0 and the image is
    larger than one tile, a grid of overlapping square tiles (see `tile_side`), row by row."""
    whole = (0, 0, width, height)
    if tiles <= 0:
        return [whole]
    side = tile_side(width, height, tiles, min_side=min_side, overlap=overlap)
    if side >= max(width, height):
        return [whole]
    return [whole] + [
        (left, top, min(width, left + side), min(height, top + side))
        for top in _starts(height, side, overlap)
        for left in _starts(width, side, overlap)
    ]


def segment_starts(counts: Sequence[int]) -> np.ndarray:
    """Where each image's rows start in a matrix of all images' tiles stacked (counts: tiles per image)."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)


def best_of_tiles(values: np.ndarray, counts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the best tile's value per column, and that tile's row in `values`.

    `values` is (all tiles, columns), each image's tiles consecutive, `counts[i]` of them."""
    values = np.asarray(values)
    starts = segment_starts(counts)
    best = np.maximum.reduceat(values, starts, axis=0)
    rows = np.empty(best.shape, dtype=int)
    for image, (start, count) in enumerate(zip(starts, counts)):
        rows[image] = start + np.argmax(values[start : start + count], axis=0)
    return best, rows


def box_to_image(box: Sequence[float], tile: Box) -> list[float]:
    """A box found in a tile (pixels of the tile) in pixels of the whole image."""
    left, top = tile[0], tile[1]
    return [box[0] + left, box[1] + top, box[2] + left, box[3] + top]


def box_iou(box: Sequence[float], others: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of `others` (n, 4)."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    left = np.maximum(box[0], others[:, 0])
    top = np.maximum(box[1], others[:, 1])
    right = np.minimum(box[2], others[:, 2])
    bottom = np.minimum(box[3], others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
    areas = np.clip(others[:, 2] - others[:, 0], 0, None) * np.clip(others[:, 3] - others[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> list[int]:
    """Indices of the boxes kept, best score first: each box removes the lower-scored ones that overlap it
    by more than `iou_threshold` (torchvision's `nms`, greedy)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    kept: list[int] = []
    while order:
        best = order.pop(0)
        kept.append(int(best))
        if order:
            overlaps = box_iou(boxes[best], boxes[order])
            order = [index for index, overlap in zip(order, overlaps) if overlap <= iou_threshold]
    return kept


def best_view_scores(scores: Scores, counts: Sequence[int]) -> Scores:
    """Scores of the views (whole image and tiles; `counts` per image) as scores of the images: each label
    scored by its best view ("contains"), with the prompt that matched best in that view. The
    probabilities of an image then no longer sum to one: each is a view's own."""
    probabilities, rows = best_of_tiles(scores.probabilities, counts)
    best_prompt = np.take_along_axis(np.asarray(scores.best_prompt), rows, axis=0)
    independent = None if scores.independent is None else best_of_tiles(scores.independent, counts)[0]
    return Scores(probabilities, best_prompt, independent)
