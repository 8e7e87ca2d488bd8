"""evaluate() against scikit-learn and krippendorff on the same data; truth in every form; advice."""

from __future__ import annotations

import hashlib
import re

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


@pytest.mark.slow
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


def test_an_unfilled_sample_says_to_fill_in_the_label_column(tmp_path):
    table = results_table(["memes", "damage", "memes"])
    sheet = tmp_path / "sample.csv"
    pd.DataFrame({"id": ["0001.jpg", "0002.jpg"], "file": table["file"][:2], "label": ""}).to_csv(sheet, index=False)
    with pytest.raises(SourceError, match="No file in sample.csv has a hand label yet: fill in the label column"):
        smart_sorter.evaluate(table, sheet)
    hand = tmp_path / "hand"
    (hand / "_to_label").mkdir(parents=True)
    (hand / "memes").mkdir()
    (hand / "_to_label" / "0001.jpg").write_bytes(b"0")
    with pytest.raises(SourceError, match="No file in hand has been moved out of _to_label yet"):
        smart_sorter.evaluate(table, hand)


def test_hand_labels_that_are_no_label_of_the_run_are_named_and_left_out():
    table = results_table(["memes", "damage", "memes", "damage"])
    truth = {"sub/img_000.jpg": "memes", "sub/img_001.jpg": "damage", "sub/img_002.jpg": "mmes",
             "sub/img_003.jpg": "mmes"}  # fmt: skip
    table["label_2"] = ["damage", "memes", "damage", "memes"]  # the runners-up tell the run's labels
    result = smart_sorter.evaluate(table, truth, bootstrap=0)
    assert result.n == 2 and result.accuracy == 1.0
    assert result.unknown_labels == {"mmes": ["sub/img_002.jpg", "sub/img_003.jpg"]}
    assert "mmes" not in result.per_class.index and "mmes" not in result.confusion.index
    assert "'mmes' is not one of the run's labels (memes, damage) nor 'none'" in result.summary()
    assert "sub/img_002.jpg, sub/img_003.jpg" in result.summary()
    with pytest.raises(SourceError, match="'mmes'.* is one of the run's labels"):
        smart_sorter.evaluate(table, {"sub/img_000.jpg": "mmes"})
    unchecked = smart_sorter.evaluate(table.drop(columns="label_2"), truth, bootstrap=0)  # labels not known
    assert unchecked.n == 4 and not unchecked.unknown_labels
    given = smart_sorter.evaluate(table.drop(columns="label_2"), truth, bootstrap=0, categories=["memes", "damage"])
    assert given.n == 2 and list(given.unknown_labels) == ["mmes"]


@pytest.mark.slow
def test_the_runs_labels_come_from_its_manifest_when_given_a_destination(sorted_shapes):
    out, _ = sorted_shapes
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    first = table["file"].iloc[0]
    result = smart_sorter.evaluate(out, {first: "purple star", table["file"].iloc[1]: NO_LABEL}, bootstrap=0)
    assert result.categories == ["red circle", "blue square", "green triangle", "yellow cross"]
    assert list(result.unknown_labels) == ["purple star"]


def test_files_still_to_label_are_counted_and_named(tmp_path):
    table = results_table(["soldiers", "memes", "documents", "memes", "damage"])
    hand = tmp_path / "hand"
    for index, folder in ((0, "soldiers"), (1, "memes"), (2, "_to_label"), (3, "_to_label"), (4, "_to_label")):
        (hand / folder).mkdir(parents=True, exist_ok=True)
        (hand / folder / f"{index + 1:04d}.jpg").write_bytes(str(index).encode())  # sha256 matches row index
    result = smart_sorter.evaluate(table, hand, bootstrap=0)
    assert result.n == 2 and result.waiting == ["0003.jpg", "0004.jpg", "0005.jpg"]
    assert "3 files are still in _to_label and were not counted: 0003.jpg, 0004.jpg, 0005.jpg" in result.summary()
    sheet = tmp_path / "sample.csv"
    pd.DataFrame({"file": table["file"], "label": ["soldiers", "", "", "memes", ""]}).to_csv(sheet, index=False)
    summary = smart_sorter.evaluate(table, sheet, bootstrap=0).summary()
    assert "3 files in sample.csv have no hand label yet and were not counted" in summary


def test_support_prints_as_a_whole_number():
    table = results_table(["memes"] * 7 + ["damage"] * 3)
    truth = dict(zip(table["file"], ["memes"] * 6 + ["damage"] * 4))
    summary = smart_sorter.evaluate(table, truth, bootstrap=0).summary()
    rows = {
        line.split()[0]: line.split() for line in summary.splitlines() if line.strip().startswith(("memes", "damage"))
    }
    assert rows["memes"][-1] == "6" and rows["damage"][-1] == "4"
    assert not re.search(r"\b[0-9]+\.0\b\s*$", summary, flags=re.MULTILINE)


def test_accuracy_has_a_wilson_interval_that_means_something_at_zero_right():
    table = results_table(["memes"] * 15)
    result = smart_sorter.evaluate(table, dict(zip(table["file"], ["damage"] * 15)), bootstrap=200)
    low, high = result.intervals["accuracy"]
    z2 = 1.959963984540054**2
    assert low == 0 and high == pytest.approx(z2 / (15 + z2))  # the Wilson bound at 0 of n: 0.204
    assert "0.000 to 0.000" not in result.summary() and "0.000 to 0.204" in result.summary()
    table = results_table(["memes"] * 10)
    result = smart_sorter.evaluate(table, dict(zip(table["file"], ["memes"] * 8 + ["damage"] * 2)), bootstrap=0)
    assert result.intervals["accuracy"] == pytest.approx((0.49016, 0.94332), abs=1e-5)  # statsmodels' wilson


def test_a_degenerate_bootstrap_is_not_shown_as_an_interval():
    predicted = ["memes"] * 6 + ["damage"] * 6 + ["soldiers"]
    table = results_table(predicted)
    result = smart_sorter.evaluate(table, dict(zip(table["file"], predicted)), bootstrap=200)
    assert result.intervals["macro_f1"] == (1.0, 1.0)  # every resample is perfect, whatever labels it holds
    assert result.interval_text("macro_f1") == "no interval: every resample gives the same value"
    summary = result.summary()
    assert "1.000 to 1.000" not in summary and "(no interval: every resample gives the same value)" in summary


@pytest.mark.slow
def test_the_macro_f1_bootstrap_scores_the_labels_present_in_each_resample_as_scikit_learn_does():
    rng = np.random.default_rng(7)
    truth = list(rng.choice(["memes", "damage"], size=39)) + ["soldiers"]  # one rare label, right once
    predicted = [t if rng.random() < 0.8 else ("damage" if t == "memes" else "memes") for t in truth[:-1]]
    predicted.append("soldiers")
    table = results_table(predicted)
    result = smart_sorter.evaluate(table, dict(zip(table["file"], truth)), bootstrap=300, seed=4)
    draws = np.random.default_rng(4)  # the same resamples, scored by scikit-learn's default labels
    t, p = np.array(truth), np.array(predicted)
    values = []
    for _ in range(300):
        chosen = draws.integers(0, len(t), size=len(t))
        values.append(f1_score(t[chosen], p[chosen], average="macro", zero_division=0))
    assert result.intervals["macro_f1"] == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)))
    assert result.intervals["macro_f1"][0] <= result.macro_f1 <= result.intervals["macro_f1"][1]
