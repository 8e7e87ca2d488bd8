"""Multi-label mode: each category scored on its own; every category above its threshold is a tag."""

import numpy as np
import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.scoring import ScoreHead, normalize, score_images


def test_clip_categories_are_scored_each_against_something_else():
    rng = np.random.default_rng(1)
    images, prompts, negative = rng.normal(size=(4, 8)), rng.normal(size=(3, 8)), rng.normal(size=8)
    scores = score_images(images, prompts, (0, 1, 2), ScoreHead(scale=20.0), negative_embedding=negative)
    cosine = normalize(images) @ normalize(prompts).T
    against = normalize(images) @ normalize(negative)
    expected = 1 / (1 + np.exp(20.0 * (against[:, None] - cosine)))
    np.testing.assert_allclose(scores.independent, expected, rtol=1e-5)
    assert not np.allclose(scores.independent.sum(axis=1), 1.0)  # not a softmax over categories


def test_siglip_tags_are_its_own_sigmoid_scores():
    rng = np.random.default_rng(2)
    scores = score_images(rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), (0, 1),
                          ScoreHead(scale=10.0, bias=-2.0, activation="sigmoid"))  # fmt: skip
    np.testing.assert_array_equal(scores.independent, scores.probabilities)


@pytest.mark.parametrize("model_fixture", ["tiny_clip", "tiny_siglip"])
def test_multi_label_rows_tag_every_category_above_the_threshold(request, model_fixture, photo_folder, tmp_path):
    model = request.getfixturevalue(model_fixture)
    out = tmp_path / "out"
    assert main(["--source", str(photo_folder), "--destination", str(out), "--labels", "cat,dog,bird",
                 "--model", str(model), "--multi-label", "--threshold", "0.3", "--quiet"]) == 0  # fmt: skip
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert {"tags", "score:cat", "score:dog", "score:bird"} <= set(table.columns)
    for _, row in table.iterrows():
        expected = [c for c in ("cat", "dog", "bird") if float(row[f"score:{c}"]) >= 0.3]
        assert set(row["tags"].split("; ") if row["tags"] else []) == set(expected)
        if expected:
            assert row["status"] == "sorted" and row["label"] == row["tags"].split("; ")[0]
            assert row["destination"].startswith(row["label"] + "/")
        else:
            assert row["status"] == "uncertain" and row["destination"].startswith("uncertain/")
