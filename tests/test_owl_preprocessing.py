"""OWLv2's preprocessing computed faster: the processor's own pixels, and so its boxes and scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from smart_sorter import sort_images
from smart_sorter.pipeline.owl_preprocessing import fast_owlv2
from tests.factories import noise_image


def _processor():
    from transformers import Owlv2ImageProcessor

    processor = Owlv2ImageProcessor()  # OWLv2's defaults: 960 pixels
    if type(processor).__name__ != "Owlv2ImageProcessorPil":  # torchvision installed: its own, left to itself
        assert fast_owlv2(processor) is None
        pytest.skip("the fast path applies to the PIL/numpy processor only")
    return processor


@pytest.mark.parametrize(
    "size", [(50, 30), (30, 50), (128, 900), (960, 960), (961, 400), (1, 1), (1000, 7), (1500, 1100)]
)
def test_the_fast_pixels_are_the_processors_for_any_shape(size):
    processor = _processor()
    image = noise_image(sum(size)).resize(size)
    expected = processor(images=image, return_tensors="np")["pixel_values"][0]
    fast = fast_owlv2(processor)(image)
    assert fast.shape == expected.shape == (3, 960, 960) and fast.dtype == np.float32
    assert np.abs(fast - expected).max() < 1e-5


@pytest.mark.slow
def test_the_fast_pixels_are_the_processors_on_the_telegram_images(corpus):
    processor = _processor()
    fast = fast_owlv2(processor)
    for path in sorted(corpus.glob("*.jp*g")):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        expected = processor(images=image, return_tensors="np")["pixel_values"][0]
        assert np.abs(fast(image) - expected).max() < 1e-5, path.name


def test_other_processors_have_no_fast_twin():
    processor = _processor()
    processor.do_pad = False
    assert fast_owlv2(processor) is None
    assert fast_owlv2(object()) is None


@pytest.mark.slow
def test_fast_and_exact_preprocessing_find_the_same_boxes_on_the_telegram_images(tiny_owlv2, corpus, tmp_path):
    found = {}
    for mode in ("exact", "fast"):
        result = sort_images(corpus, tmp_path / mode, detect="a rifle, a tank, a flag", model=str(tiny_owlv2),
                             threshold=0.9, preprocess=mode, use_cache=False, progress_bar=False)  # fmt: skip
        found[mode] = result.table.sort_values("file")
    assert len(found["fast"]) == len(list(corpus.glob("*.jp*g")))
    boxes = 0
    for exact, fast in zip(found["exact"]["boxes"], found["fast"]["boxes"]):
        exact, fast = json.loads(exact), json.loads(fast)
        assert [(f["label"], f["box"]) for f in fast] == [(f["label"], f["box"]) for f in exact]
        assert np.allclose([f["score"] for f in fast], [f["score"] for f in exact], atol=1e-4, rtol=0)
        boxes += len(exact)
    assert boxes > 0
    assert found["fast"]["label"].tolist() == found["exact"]["label"].tolist()
