"""Tiling: tile geometry, non-maximum suppression, and "contains" scoring that finds small shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from smart_sorter import sort_images
from smart_sorter.core.scoring import Scores
from smart_sorter.core.tiling import (
    best_view_scores,
    box_iou,
    box_to_image,
    non_maximum_suppression,
    tile_boxes,
    tile_side,
)
from smart_sorter.errors import OptionError
from smart_sorter.options import SortOptions
from tests.toy_clip import TOY_LABELS, draw_figure

CANVAS = 256  # eight times the toy model's 32 pixels: a shape of 20 pixels shrinks to 2.5 when seen whole
RADIUS = 10
SPOTS = [(20, 20), (230, 40), (128, 128), (45, 220), (205, 205), (100, 160)]  # corners, centre, across tile edges


def test_tiles_cover_the_image_with_overlap():
    boxes = tile_boxes(1000, 600, 3, min_side=224)
    assert boxes[0] == (0, 0, 1000, 600)  # the whole image first
    tiles = boxes[1:]
    side = tile_side(1000, 600, 3, min_side=224)
    assert all(right - left == side and bottom - top == side for left, top, right, bottom in tiles)
    covered = np.zeros((600, 1000), dtype=bool)
    for left, top, right, bottom in tiles:
        covered[top:bottom, left:right] = True
    assert covered.all()
    rows = sorted({top for _, top, _, _ in tiles})
    assert len(rows) == 3 and all(second - first <= 0.75 * side + 1 for first, second in zip(rows, rows[1:]))


def test_tiles_are_never_smaller_than_the_model_input():
    assert tile_side(300, 300, 10, min_side=224) == 224
    assert tile_boxes(200, 200, 4, min_side=224) == [(0, 0, 200, 200)]  # within one input: whole only
    # a banner: square tiles of its height cover what the whole image's centre crop leaves out
    assert [box[0] for box in tile_boxes(400, 150, 4, min_side=224)[1:]] == [0, 83, 167, 250]
    assert tile_boxes(500, 400, 0, min_side=32) == [(0, 0, 500, 400)]  # no tiling


def test_best_view_scores_take_each_labels_best_tile():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.1, 0.9]])
    best_prompt = np.array([[0, 2], [1, 3], [0, 2], [1, 2], [0, 3]])
    combined = best_view_scores(Scores(probabilities, best_prompt), [2, 3])
    assert combined.probabilities.tolist() == [[0.9, 0.8], [0.6, 0.9]]
    assert combined.best_prompt.tolist() == [[0, 3], [0, 3]]


def test_non_maximum_suppression_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    assert non_maximum_suppression(boxes, scores, 0.5) == [1, 2]
    assert non_maximum_suppression(boxes, scores, 0.95) == [1, 0, 3, 2]
    assert box_iou([0, 0, 10, 10], np.array([[5, 0, 15, 10]]))[0] == pytest.approx(1 / 3)
    assert box_to_image([1, 2, 3, 4], (100, 50, 300, 250)) == [101, 52, 103, 54]


def test_negative_tiles_are_refused():
    with pytest.raises(OptionError, match="tiles"):
        SortOptions(tiles=-1)


def _canvas(label: str | None, spot: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A large light, noisy canvas as the toy model's backgrounds, with `label`'s shape small at `spot`."""
    background = tuple(int(v) for v in rng.integers(170, 256, size=3))
    image = Image.new("RGB", (CANVAS, CANVAS), background)
    if label is not None:
        draw_figure(ImageDraw.Draw(image), label, spot, RADIUS, rng)
    noise = rng.normal(0, 8, size=(CANVAS, CANVAS, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))


def _write_canvases(folder: Path, target: str) -> dict[str, bool]:
    """Canvases with the target at each known spot, and as many without it (empty, or another shape
    at the same spot); returns file name -> whether the target is there."""
    rng = np.random.default_rng(7)
    others = [label for label in TOY_LABELS if label != target]
    folder.mkdir(parents=True)
    truth = {}
    for round_ in range(2):
        for index, spot in enumerate(SPOTS):
            for present in (True, False):
                label = target if present else (None if index % 2 else others[(index + round_) % len(others)])
                name = f"canvas_{round_}_{index}_{'with' if present else 'without'}.png"
                _canvas(label, spot, rng).save(folder / name)
                truth[name] = present
    return truth


def _score_of(row: pd.Series, label: str) -> float:
    """A label's score in a row of output.csv (the chosen label or a runner-up)."""
    for name, score in [("label", "score"), *((f"label_{k}", f"score_{k}") for k in range(2, 5))]:
        if row.get(name) == label:
            return float(row[score])
    return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("target", ["blue square", "red circle"])
def test_tiling_finds_a_small_shape_that_whole_image_scoring_misses(toy_clip, tmp_path, target):
    truth = _write_canvases(tmp_path / "canvases", target)

    def accuracy(tiles: int) -> float:
        result = sort_images(
            tmp_path / "canvases", tmp_path / f"sorted-{tiles}", list(TOY_LABELS), model=str(toy_clip),
            tiles=tiles, top_k=4, progress_bar=False, use_cache=False,
        )  # fmt: skip
        table = pd.read_csv(result.csv_path)
        found = {row["file"]: _score_of(row, target) >= 0.5 for _, row in table.iterrows()}
        return float(np.mean([found[name] == present for name, present in truth.items()]))

    whole, tiled = accuracy(0), accuracy(6)
    assert tiled >= 0.9
    assert whole <= 0.65  # seen whole, the shape is a few pixels: about chance (half are without it)
    manifest = pd.read_json(tmp_path / "sorted-6" / "smart-sorter-run.json", typ="series")
    assert manifest["options"]["tiles"] == 6 and manifest["tiles"] == 6
