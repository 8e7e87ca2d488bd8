"""How right a sorting is: its labels against hand labels (truth), with confidence intervals, and the
threshold per category that reaches a precision the user asks for.

Results are output.csv (a path, the destination folder holding it, a DataFrame or a SortResult).
Truth is a CSV with `file,label` (a `sha256` column may stand in for `file`), a folder holding one
subfolder per label with the hand-sorted files, a DataFrame, or a mapping file -> label. Files are
matched by their path relative to the source, else by their name when it is unique, else by the
hash of their bytes (so files dragged into truth folders are found whatever they are called).

A file the sorter left uncertain counts as predicting `none`; a hand label of `none` (or an empty
`Wrong` in the review) says that no label fits. Metrics come from scikit-learn and `krippendorff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.folders import label_folder
from ..core.rows import NO_LABEL
from ..errors import SourceError
from ..storage.placing import sha256_of
from ..storage.tables import read_results

UNLABELLED_FOLDER = "_to_label"  # in a truth folder made by `sample`: files not labelled yet
BOOTSTRAP_ROUNDS = 1000
METRICS = ("accuracy", "macro_f1", "kappa", "alpha")


def predicted_labels(results: pd.DataFrame) -> pd.Series:
    """What the sorter said of each file: its label, or `none` when it was left uncertain; for a file
    corrected in review, what the sorter had said (`corrected_from`), so corrections never flatter it."""
    said = results["label"].where(results["status"] != "uncertain", NO_LABEL)
    if "corrected_from" in results.columns:
        corrected = results["corrected_from"].fillna("").astype(str)
        said = said.where(corrected == "", corrected)
    return said


def read_truth(truth: Any) -> pd.DataFrame:
    """Hand labels as a DataFrame with `label` and at least one of `file`, `sha256`."""
    if isinstance(truth, pd.DataFrame):
        table = truth.copy()
    elif isinstance(truth, Mapping):
        table = pd.DataFrame({"file": list(truth), "label": list(truth.values())})
    else:
        path = Path(truth)
        if path.is_dir():
            rows = [
                {"file": file.name, "label": folder.name, "sha256": sha256_of(file)}
                for folder in sorted(path.iterdir())
                if folder.is_dir() and not folder.name.startswith(".") and folder.name != UNLABELLED_FOLDER
                for file in sorted(folder.rglob("*"))
                if file.is_file() and not file.name.startswith(".")
            ]
            table = pd.DataFrame(rows, columns=["file", "label", "sha256"])
        elif path.is_file():
            table = pd.read_csv(path, keep_default_na=False, dtype=str)
        else:
            raise SourceError(f"The truth {str(path)!r} does not exist; give a CSV (file,label) or a folder of labels.")
    if "label" not in table.columns or not ({"file", "sha256"} & set(table.columns)):
        raise SourceError("The truth needs a 'label' column and a 'file' (or 'sha256') column, as in file,label.")
    table["label"] = table["label"].astype(str).str.strip()
    return table[table["label"] != ""].reset_index(drop=True)


def _canonical_labels(values: pd.Series, categories: list[str]) -> pd.Series:
    """Hand labels as the run's categories: a label folder's name counts as its category."""
    by_folder = {label_folder(category): category for category in categories}
    by_text = {category.casefold(): category for category in categories}
    by_text[NO_LABEL] = NO_LABEL

    def canonical(value: str) -> str:
        return by_text.get(value.casefold()) or by_folder.get(value) or value

    return values.map(canonical)


def match(results: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Pairs of (file, truth, predicted, score) for the hand-labelled files found in the results."""
    usable = results[results["status"] != "error"]
    by_file = {file: index for index, file in usable["file"].items()}
    names = usable["file"].map(lambda file: file.rsplit("/", 1)[-1])
    unique_names = {name: index for index, name in names.items() if (names == name).sum() == 1}
    by_hash = dict(zip(usable["sha256"], usable.index)) if "sha256" in usable.columns else {}
    pairs, unmatched = [], []
    for _, hand in truth.iterrows():
        key = str(hand.get("file", "") or "")
        index = by_file.get(key.replace("\\", "/"))
        if index is None and key:
            index = unique_names.get(key.replace("\\", "/").rsplit("/", 1)[-1])
        if index is None and hand.get("sha256"):
            index = by_hash.get(hand["sha256"])
        if index is None:
            unmatched.append(key or hand.get("sha256", ""))
            continue
        pairs.append((usable.at[index, "file"], hand["label"], index))
    categories = [label for label in dict.fromkeys(usable["label"]) if label]
    table = pd.DataFrame(pairs, columns=["file", "truth", "row"])
    table["truth"] = _canonical_labels(table["truth"], categories)
    predicted = predicted_labels(usable)
    table["predicted"] = [predicted[index] for index in table["row"]]
    table["score"] = [usable.at[index, "score"] for index in table["row"]]
    table = table.drop(columns="row").drop_duplicates("file", keep="last").reset_index(drop=True)
    table.attrs["unmatched"] = unmatched
    return table


def _metrics(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict[str, float]:
    import krippendorff
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    codes = {label: code for code, label in enumerate(labels)}
    coded = np.array([[codes[value] for value in truth], [codes[value] for value in predicted]], dtype=float)
    agree_on_one_value = len(set(coded.ravel())) < 2
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        "kappa": float(cohen_kappa_score(truth, predicted, labels=labels)) if not agree_on_one_value else float("nan"),
        "alpha": float(krippendorff.alpha(reliability_data=coded, level_of_measurement="nominal"))
        if not agree_on_one_value
        else float("nan"),
    }


@dataclass
class Evaluation:
    """A sorting measured against hand labels. `per_class`: precision, recall, F1 and support per
    label; `confusion`: rows are the hand labels, columns the sorter's; `intervals`: 95% bootstrap
    confidence intervals of accuracy, macro_f1, kappa and alpha."""

    accuracy: float
    macro_f1: float
    kappa: float
    alpha: float
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    pairs: pd.DataFrame
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.pairs)

    def summary(self) -> str:
        def line(name: str, title: str) -> str:
            shown = f"  {title:<22} {getattr(self, name):.3f}"
            if name not in self.intervals:
                return shown
            low, high = self.intervals[name]
            return f"{shown}   (95% CI {low:.3f} to {high:.3f})"

        lines = [f"Compared {self.n} hand-labelled file(s) with the sorting:"]
        lines += [line("accuracy", "accuracy"), line("macro_f1", "macro F1"), line("kappa", "Cohen's kappa")]
        lines.append(line("alpha", "Krippendorff's alpha"))
        lines.append("Per label:")
        lines += ["  " + text for text in self.per_class.round(3).to_string().splitlines()]
        if self.n < 30:
            lines.append(f"Only {self.n} files: the intervals are wide; label more for a firmer answer.")
        if self.unmatched:
            shown = ", ".join(self.unmatched[:5]) + (" ..." if len(self.unmatched) > 5 else "")
            lines.append(f"{len(self.unmatched)} hand-labelled file(s) are not in the results: {shown}")
        return "\n".join(lines)


def evaluate(results: Any, truth: Any, *, bootstrap: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Evaluation:
    """Measure a sorting (`results`) against hand labels (`truth`); see the module's docstring."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    table = read_results(results)
    pairs = match(table, read_truth(truth))
    if pairs.empty:
        raise SourceError(
            "None of the hand-labelled files was found in the results; check that the truth names the files"
            " as output.csv does (their path under the source), or use a folder of label folders."
        )
    present = set(pairs["truth"]) | set(pairs["predicted"])  # as scikit-learn does: the labels that occur
    categories = [label for label in dict.fromkeys(table["label"]) if label in present]
    labels = categories + sorted(present - set(categories))
    truth_values, predicted = pairs["truth"].to_numpy(), pairs["predicted"].to_numpy()
    scores = _metrics(truth_values, predicted, labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth_values, predicted, labels=labels, zero_division=0
    )
    per_class = pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support}, index=labels)
    per_class.index.name = "label"
    confusion = pd.DataFrame(confusion_matrix(truth_values, predicted, labels=labels), index=labels, columns=labels)
    confusion.index.name, confusion.columns.name = "truth", "predicted"
    intervals = _bootstrap(truth_values, predicted, labels, bootstrap, seed) if bootstrap else {}
    return Evaluation(**scores, per_class=per_class, confusion=confusion, pairs=pairs, intervals=intervals,
                      unmatched=pairs.attrs.get("unmatched", []))  # fmt: skip


def _bootstrap(
    truth: np.ndarray, predicted: np.ndarray, labels: list[str], rounds: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile intervals from resampling the labelled files with replacement."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in METRICS}
    for _ in range(rounds):
        chosen = rng.integers(0, len(truth), size=len(truth))
        for name, value in _metrics(truth[chosen], predicted[chosen], labels).items():
            samples[name].append(value)
    intervals = {}
    for name, values in samples.items():
        finite = np.asarray(values)[np.isfinite(values)]
        intervals[name] = (
            (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))) if finite.size else (np.nan,) * 2
        )
    return intervals


def threshold_advice(results: Any, truth: Any, *, precision: float = 0.9) -> pd.DataFrame:
    """Per category: the lowest score threshold at which the hand-labelled files the sorter gave
    that category reach `precision`, and how many files of the whole run it would leave uncertain.

    Columns: threshold (NaN when no threshold reaches it), precision_reached, labelled (files of
    the sample predicted as the category), would_be_uncertain (of the whole run). A threshold of 0
    means that the sample reaches the precision without one."""
    table = read_results(results)
    return advise_thresholds(table, match(table, read_truth(truth)), precision=precision)


def advise_thresholds(table: pd.DataFrame, pairs: pd.DataFrame, *, precision: float) -> pd.DataFrame:
    """`threshold_advice` from a results table and its matched hand labels (`Evaluation.pairs`)."""
    sorted_rows = table[table["status"] != "error"]
    advice = []
    for category in [label for label in dict.fromkeys(sorted_rows["label"]) if label]:
        # the sorter's best guess, uncertain or not: a threshold decides which of them to keep
        guessed = pairs[pairs["file"].isin(sorted_rows[sorted_rows["label"] == category]["file"])]
        right = (guessed["truth"] == category).to_numpy()
        scores = guessed["score"].to_numpy(dtype=float)
        found, reached = float("nan"), float("nan")
        for candidate in [0.0, *np.unique(scores)]:  # ascending: the lowest threshold that is enough
            kept = scores >= candidate
            if kept.any() and right[kept].mean() >= precision:
                found, reached = float(candidate), float(right[kept].mean())
                break
        run_scores = sorted_rows[sorted_rows["label"] == category]["score"].astype(float)
        left = int((run_scores < found).sum()) if np.isfinite(found) else int(len(run_scores))
        advice.append({"label": category, "threshold": found, "precision_reached": reached,
                       "labelled": len(guessed), "would_be_uncertain": left})  # fmt: skip
    return pd.DataFrame(advice).set_index("label")
