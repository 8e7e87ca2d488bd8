"""Detection mode: boxes equal to the transformers pipeline's, files placed by the objects found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from smart_sorter import SortOptions, sort_images
from smart_sorter.core.detections import detection_row, merge_views
from smart_sorter.core.labels import parse_labels
from smart_sorter.errors import LabelError, OptionError
from smart_sorter.options import DEFAULT_DETECTOR
from tests.factories import noise_image

OBJECTS = ["a cat", "a dog", "a red car"]


@pytest.fixture
def odd_images(tmp_path) -> Path:
    """Random images of several sizes and shapes (wide, tall, small), JPEG and PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    for index, size in enumerate([(64, 48), (40, 90), (150, 60), (128, 128), (33, 21)]):
        image = noise_image(index).resize(size)
        image.save(folder / f"image_{index}.{'png' if index % 2 else 'jpg'}")
    return folder


def _pipeline_boxes(model: Path, image_path: Path, threshold: float) -> list[dict]:
    from transformers import pipeline

    detector = pipeline("zero-shot-object-detection", model=str(model))
    with Image.open(image_path) as image:
        found = detector(image.convert("RGB"), candidate_labels=OBJECTS, threshold=threshold)
    return [{"label": f["label"], "score": f["score"], "box": [f["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")]}
            for f in found]  # fmt: skip


def _assert_same_boxes(ours: list[dict], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs)
    key = lambda found: (found["label"], found["box"], round(found["score"], 3))  # noqa: E731
    for mine, pipe in zip(sorted(ours, key=key), sorted(theirs, key=key)):
        assert mine["label"] == pipe["label"]
        assert mine["score"] == pytest.approx(pipe["score"], abs=1e-4)
        assert np.abs(np.subtract(mine["box"], pipe["box"])).max() <= 1  # whole pixels, truncated


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["tiny_owlv2", "tiny_grounding_dino"])
def test_boxes_and_scores_equal_the_pipelines(request, model_fixture, odd_images, tmp_path):
    model = request.getfixturevalue(model_fixture)
    threshold = 0.3
    result = sort_images(
        odd_images, tmp_path / "found", detect=", ".join(OBJECTS), model=str(model), threshold=threshold,
        batch_size=2, progress_bar=False,
    )  # fmt: skip
    table = pd.read_csv(result.csv_path, keep_default_na=False)
    assert len(table) == 5 and set(table["status"]) <= {"sorted", "uncertain"}
    total = 0
    for _, row in table.iterrows():
        ours = json.loads(row["boxes"])
        theirs = _pipeline_boxes(model, odd_images / row["file"], threshold)
        _assert_same_boxes(ours, theirs)
        total += len(ours)
        counts = {name: sum(1 for found in ours if found["label"] == name) for name in OBJECTS}
        assert {name: int(row[f"count:{name}"]) for name in OBJECTS} == counts
    assert total > 0  # the comparison compared something


@pytest.mark.slow
def test_files_go_to_their_best_object_with_copies_for_the_others(tiny_owlv2, odd_images, tmp_path):
    result = sort_images(odd_images, tmp_path / "found", detect=OBJECTS, model=str(tiny_owlv2), threshold=0.6,
                         progress_bar=False)  # fmt: skip
    table = result.table
    assert {"objects", "boxes", "count:a cat", "copies"} <= set(table.columns)
    for _, row in table.iterrows():
        found = json.loads(row["boxes"])
        if not found:
            assert row["status"] == "uncertain" and row["destination"].startswith("nothing found/")
            continue
        best = max(found, key=lambda box: box["score"])
        assert row["label"] == best["label"] and row["score"] == pytest.approx(best["score"])
        assert row["destination"].startswith(f"{row['label']}/")
        others = [name for name in row["objects"].split("; ") if name != row["label"]]
        copies = [copy for copy in str(row["copies"] or "").split("; ") if copy]
        assert sorted(copy.split("/")[0] for copy in copies) == sorted(others)
        for placed in [row["destination"], *copies]:
            assert (tmp_path / "found" / placed).read_bytes() == (odd_images / row["file"]).read_bytes()


def test_detection_row_per_object_thresholds_and_nothing_found():
    objects = parse_labels({"rifle": {"prompts": ["a rifle"], "threshold": 0.5}, "flag": "a flag"}, "{}", minimum=1)
    found = [
        {"label": "flag", "score": 0.3, "box": [0, 0, 5, 5]},
        {"label": "rifle", "score": 0.4, "box": [1, 1, 9, 9]},  # under rifle's own 0.5
        {"label": "flag", "score": 0.2, "box": [5, 5, 9, 9]},
    ]
    row = detection_row("a.jpg", "abc", found, objects, threshold=0.1)
    assert (row["label"], row["score"], row["status"], row["prompt"]) == ("flag", 0.3, "sorted", "a flag")
    assert row["objects"] == "flag" and row["count:flag"] == 2 and row["count:rifle"] == 0
    assert [box["score"] for box in json.loads(row["boxes"])] == [0.3, 0.2]
    nothing = detection_row("b.jpg", "def", found[1:2], objects, threshold=None)
    assert (nothing["label"], nothing["status"], nothing["objects"], json.loads(nothing["boxes"])) == (
        "",
        "uncertain",
        "",
        [],
    )


def test_tiles_boxes_map_back_and_merge():
    views = [(0, 0, 200, 100), (0, 0, 100, 100), (100, 0, 200, 100)]
    per_view = [
        [{"label": "x", "score": 0.5, "box": [110, 10, 150, 50]}],
        [{"label": "x", "score": 0.2, "box": [10, 10, 40, 40]}],
        [{"label": "x", "score": 0.9, "box": [12, 11, 50, 51]}, {"label": "y", "score": 0.3, "box": [12, 11, 50, 51]}],
    ]
    merged = merge_views(per_view, views)
    assert merged == [
        {"label": "x", "score": 0.9, "box": [112, 11, 150, 51]},  # the whole view's weaker box merged into it
        {"label": "y", "score": 0.3, "box": [112, 11, 150, 51]},  # another object's box stays
        {"label": "x", "score": 0.2, "box": [10, 10, 40, 40]},
    ]


def test_detect_options():
    assert SortOptions(detect=True).model == DEFAULT_DETECTOR
    assert SortOptions(detect=True, model="x/y").model == "x/y"
    with pytest.raises(OptionError, match="multi-label"):
        SortOptions(detect=True, multi_label=True)


def test_detect_needs_objects_and_not_labels_too(tmp_path, photo_folder):
    with pytest.raises(LabelError, match="either"):
        sort_images(photo_folder, tmp_path / "out", "a, b", detect="a rifle")
    with pytest.raises(LabelError, match="object"):
        sort_images(photo_folder, tmp_path / "out", detect=" ")
