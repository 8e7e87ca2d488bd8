"""evaluate() against scikit-learn and krippendorff on the same data; truth in every form; advice."""

from __future__ import annotations

import hashlib

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

import smart_sorter
from smart_sorter.core.rows import NO_LABEL
from smart_sorter.errors import SourceError
from smart_sorter.validation.evaluation import threshold_advice

LABELS = ["soldiers", "documents", "memes", "damage"]


def results_table(predicted, scores=None, statuses=None) -> pd.DataFrame:
    count = len(predicted)
    return pd.DataFrame({
        "file": [f"sub/img_{i:03d}.jpg" for i in range(count)],
        "label": predicted,
        "score": scores if scores is not None else np.linspace(0.3, 0.9, count),
        "destination": [f"{label}/img_{i:03d}.jpg" for i, label in enumerate(predicted)],
        "status": statuses or ["sorted"] * count,
        "sha256": [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)],
    })  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn_and_krippendorff_on_the_same_data(seed):
    rng = np.random.default_rng(seed)
    truth = list(rng.choice(LABELS, size=80))
    predicted = [t if rng.random() < 0.6 else rng.choice(LABELS) for t in truth]
    table = results_table(predicted)
    result = smart_sorter.evaluate(table, dict(zip(table["file"], truth)), bootstrap=50)
    assert result.accuracy == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    assert result.macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-12)
    assert result.kappa == pytest.approx(cohen_kappa_score(truth, predicted), abs=1e-12)
    codes = {label: i for i, label in enumerate(sorted(LABELS))}
    data = [[codes[v] for v in truth], [codes[v] for v in predicted]]
    assert result.alpha == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    order = list(result.confusion.index)
    assert sorted(order) == sorted(LABELS)
    np.testing.assert_array_equal(result.confusion.to_numpy(), confusion_matrix(truth, predicted, labels=order))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=order, zero_division=0)
    np.testing.assert_allclose(result.per_class[["precision", "recall", "f1"]].to_numpy().T, [precision, recall, f1])
    assert result.per_class["support"].tolist() == list(support)
    assert result.confusion.index.name == "truth" and result.confusion.columns.name == "predicted"
    for name in ("accuracy", "macro_f1", "kappa", "alpha"):
        low, high = result.intervals[name]
        assert low <= getattr(result, name) <= high and low < high


def test_bootstrap_is_repeatable_and_narrows_with_more_files():
    def width(count):
        rng = np.random.default_rng(5)
        truth = list(rng.choice(LABELS, size=count))
        predicted = [t if rng.random() < 0.7 else rng.choice(LABELS) for t in truth]
        table = results_table(predicted)
        result = smart_sorter.evaluate(table, dict(zip(table["file"], truth)), bootstrap=200, seed=3)
        again = smart_sorter.evaluate(table, dict(zip(table["file"], truth)), bootstrap=200, seed=3)
        assert result.intervals == again.intervals
        return result.intervals["accuracy"][1] - result.intervals["accuracy"][0]

    assert width(400) < width(25)


def test_uncertain_files_predict_none_and_errors_are_left_out():
    table = results_table(["soldiers", "memes", "memes", ""], statuses=["sorted", "uncertain", "sorted", "error"])
    truth = {"sub/img_000.jpg": "soldiers", "sub/img_001.jpg": NO_LABEL, "sub/img_002.jpg": "damage",
             "sub/img_003.jpg": "memes"}  # fmt: skip
    result = smart_sorter.evaluate(table, truth, bootstrap=0)
    assert result.n == 3 and result.accuracy == pytest.approx(2 / 3)
    assert result.confusion.loc[NO_LABEL, NO_LABEL] == 1 and result.confusion.loc["damage", "memes"] == 1
    assert result.unmatched == ["sub/img_003.jpg"]  # an error row: nothing to compare


def test_truth_as_csv_by_name_and_as_folders_matched_by_content(tmp_path):
    table = results_table(["soldiers", "memes", "documents"])
    csv_truth = tmp_path / "truth.csv"
    pd.DataFrame(
        {"file": ["img_000.jpg", "img_001.jpg", "elsewhere.jpg"], "label": ["soldiers", "damage", "memes"]}
    ).to_csv(csv_truth, index=False)
    by_name = smart_sorter.evaluate(table, csv_truth, bootstrap=0)
    assert by_name.n == 2 and by_name.accuracy == 0.5 and by_name.unmatched == ["elsewhere.jpg"]

    folders = tmp_path / "hand"
    for index, label in ((0, "soldiers"), (1, "memes"), (2, "memes")):
        (folders / label).mkdir(parents=True, exist_ok=True)
        (folders / label / f"renamed_{index}.jpg").write_bytes(str(index).encode())  # sha256 matches row index
    by_content = smart_sorter.evaluate(table, folders, bootstrap=0)
    assert by_content.n == 3 and by_content.accuracy == pytest.approx(2 / 3)


def test_nothing_matched_or_missing_truth_is_a_sentence(tmp_path):
    with pytest.raises(SourceError, match="None of the hand-labelled files"):
        smart_sorter.evaluate(results_table(["memes", "damage"]), {"other.jpg": "memes"})
    with pytest.raises(SourceError, match="does not exist"):
        smart_sorter.evaluate(results_table(["memes", "damage"]), tmp_path / "missing.csv")


def test_threshold_advice_reaches_the_precision_asked_for():
    # memes: right when the score is high, wrong when low
    scores = [0.95, 0.9, 0.85, 0.8, 0.5, 0.45, 0.4, 0.3, 0.9, 0.2]
    predicted = ["memes"] * 8 + ["damage", "damage"]
    truth_labels = ["memes"] * 4 + ["damage", "memes", "damage", "damage", "damage", "memes"]
    table = results_table(predicted, scores=scores)
    advice = threshold_advice(table, dict(zip(table["file"], truth_labels)), precision=0.9)
    assert advice.loc["memes", "threshold"] == pytest.approx(0.8)
    assert advice.loc["memes", "precision_reached"] == 1.0
    assert advice.loc["memes", "would_be_uncertain"] == 4
    assert advice.loc["damage", "threshold"] == pytest.approx(0.9)  # only the 0.9 one is right
