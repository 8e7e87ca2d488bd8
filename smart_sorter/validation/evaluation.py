"""How right a sorting is: its labels against hand labels (truth), with confidence intervals, and the
threshold per category that reaches a precision the user asks for.

Results are output.csv (a path, the destination folder holding it, a DataFrame or a SortResult).
Truth is a CSV with `file,label` (a `sha256` column may stand in for `file`), a folder holding one
subfolder per label with the hand-sorted files, a DataFrame, or a mapping file -> label. Files are
matched by their path relative to the source, else by their name when it is unique, else by the
hash of their bytes (so files dragged into truth folders are found whatever they are called).

A file the sorter left uncertain counts as predicting `none`; a hand label of `none` (or an empty
`Wrong` in the review) says that no label fits. A hand label that is neither one of the run's labels
nor `none` (a typo) is left out of the metrics and named; so are files not labelled yet (an empty
`label`, or still in a sample's `_to_label` folder). Metrics come from scikit-learn and `krippendorff`.

Confidence intervals (95%): accuracy is a proportion of the labelled files, so it gets a Wilson
score interval, which stays meaningful at 0 or all right (0 of 15 right: 0.000 to 0.204) where a
bootstrap collapses to a single value. Macro F1, kappa and alpha get percentile bootstrap intervals
from resampling the labelled files; each resample scores the labels present in its own hand labels
or predictions, as the point estimate (and scikit-learn) does. When every resample gives the same
value, no interval is shown (`Evaluation.interval_text`), rather than a zero-width one.
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
BOOTSTRAPPED = ("macro_f1", "kappa", "alpha")
Z_95 = 1.959963984540054  # the standard normal quantile of 0.975
NO_INTERVAL = "no interval: every resample gives the same value"


def predicted_labels(results: pd.DataFrame) -> pd.Series:
    """What the sorter said of each file: its label, or `none` when it was left uncertain; for a file
    corrected in review, what the sorter had said (`corrected_from`), so corrections never flatter it."""
    said = results["label"].where(results["status"] != "uncertain", NO_LABEL)
    if "corrected_from" in results.columns:
        corrected = results["corrected_from"].fillna("").astype(str)
        said = said.where(corrected == "", corrected)
    return said


@dataclass
class HandLabels:
    """Hand labels as read: `table` holds the labelled rows (`label` and `file` and/or `sha256`),
    `waiting` the files not labelled yet, `name` what the truth is called in messages."""

    table: pd.DataFrame
    waiting: list[str]
    name: str
    folder: bool = False

    def unfilled_error(self) -> SourceError:
        if self.folder:
            return SourceError(
                f"No file in {self.name} has been moved out of {UNLABELLED_FOLDER} yet: drag each file into the"
                f" folder of its right label ('{NO_LABEL}' when no label fits), then run evaluate again."
            )
        return SourceError(
            f"No file in {self.name} has a hand label yet: fill in the label column ('{NO_LABEL}' when no label"
            " fits), then run evaluate again."
        )

    def waiting_note(self) -> str:
        if not self.waiting:
            return ""
        count = len(self.waiting)
        files, are, were = ("file", "is", "was") if count == 1 else ("files", "are", "were")
        if self.folder:
            return f"{count} {files} {are} still in {UNLABELLED_FOLDER} and {were} not counted: {_some(self.waiting)}"
        have = "has" if count == 1 else "have"
        return f"{count} {files} in {self.name} {have} no hand label yet and {were} not counted: {_some(self.waiting)}"


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def read_hand_labels(truth: Any) -> HandLabels:
    """Hand labels from a CSV, a folder of label folders, a DataFrame or a mapping file -> label."""
    folder = False
    if isinstance(truth, pd.DataFrame):
        table, name = truth.copy(), "the truth"
    elif isinstance(truth, Mapping):
        table, name = pd.DataFrame({"file": list(truth), "label": list(truth.values())}), "the truth"
    else:
        path = Path(truth)
        name = path.name or str(path)
        if path.is_dir():
            folder = True
            rows = [
                {"file": file.name, "label": "" if folder_path.name == UNLABELLED_FOLDER else folder_path.name,
                 "sha256": sha256_of(file)}
                for folder_path in sorted(path.iterdir())
                if folder_path.is_dir() and not folder_path.name.startswith(".")
                for file in sorted(folder_path.rglob("*"))
                if file.is_file() and not file.name.startswith(".")
            ]  # fmt: skip
            table = pd.DataFrame(rows, columns=["file", "label", "sha256"])
        elif path.is_file():
            table = pd.read_csv(path, keep_default_na=False, dtype=str)
        else:
            raise SourceError(f"The truth {str(path)!r} does not exist; give a CSV (file,label) or a folder of labels.")
    if "label" not in table.columns or not ({"file", "sha256"} & set(table.columns)):
        raise SourceError("The truth needs a 'label' column and a 'file' (or 'sha256') column, as in file,label.")
    table["label"] = table["label"].fillna("").astype(str).str.strip()
    empty = table["label"] == ""
    key = table["file"] if "file" in table.columns else table["sha256"]
    waiting = [str(value) for value in key[empty]]
    return HandLabels(table[~empty].reset_index(drop=True), waiting, name, folder)


def read_truth(truth: Any) -> pd.DataFrame:
    """Hand labels as a DataFrame with `label` and at least one of `file`, `sha256` (labelled rows only)."""
    return read_hand_labels(truth).table


def _canonical_labels(values: pd.Series, categories: list[str]) -> pd.Series:
    """Hand labels as the run's categories: a label folder's name counts as its category."""
    by_folder = {label_folder(category): category for category in categories}
    by_text = {category.casefold(): category for category in categories}
    by_text[NO_LABEL] = NO_LABEL

    def canonical(value: str) -> str:
        return by_text.get(value.casefold()) or by_folder.get(value) or value

    return values.map(canonical)


def match(results: pd.DataFrame, truth: pd.DataFrame, categories: list[str] | None = None) -> pd.DataFrame:
    """Pairs of (file, truth, predicted, score) for the hand-labelled files found in the results; a
    file's bytes (`sha256`, as a truth folder has) identify it before its path or name do, since the
    copies in a sample are renamed. Hand labels are written as the run's `categories` (default: the
    labels in the results) where they name one of them."""
    usable = results[results["status"] != "error"]
    by_file = {file: index for index, file in usable["file"].items()}
    names = usable["file"].map(lambda file: file.rsplit("/", 1)[-1])
    unique_names = {name: index for index, name in names.items() if (names == name).sum() == 1}
    by_hash = dict(zip(usable["sha256"], usable.index)) if "sha256" in usable.columns else {}
    pairs, unmatched = [], []
    for _, hand in truth.iterrows():
        key = str(hand.get("file", "") or "")
        index = by_hash.get(hand["sha256"]) if hand.get("sha256") else None
        if index is None:
            index = by_file.get(key.replace("\\", "/"))
        if index is None and key:
            index = unique_names.get(key.replace("\\", "/").rsplit("/", 1)[-1])
        if index is None:
            unmatched.append(key or hand.get("sha256", ""))
            continue
        pairs.append((usable.at[index, "file"], hand["label"], index))
    if categories is None:
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
    present = set(truth) | set(predicted)  # as scikit-learn's default: a label that does not occur is not scored
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(
            f1_score(
                truth,
                predicted,
                labels=[label for label in labels if label in present],
                average="macro",
                zero_division=0,
            )
        ),  # fmt: skip
        "kappa": float(cohen_kappa_score(truth, predicted, labels=labels)) if not agree_on_one_value else float("nan"),
        "alpha": float(krippendorff.alpha(reliability_data=coded, level_of_measurement="nominal"))
        if not agree_on_one_value
        else float("nan"),
    }


@dataclass
class Evaluation:
    """A sorting measured against hand labels. `per_class`: precision, recall, F1 and support per
    label; `confusion`: rows are the hand labels, columns the sorter's; `intervals`: 95% confidence
    intervals of accuracy (Wilson) and of macro_f1, kappa and alpha (bootstrap; a zero-width one
    means every resample gave the same value). `unknown_labels`: hand labels that are none of the
    run's `categories` nor `none`, with their files, left out of the metrics; `waiting`: files of the
    truth not labelled yet, also left out."""

    accuracy: float
    macro_f1: float
    kappa: float
    alpha: float
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    pairs: pd.DataFrame
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    unknown_labels: dict[str, list[str]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    bootstrap_rounds: int = 0
    waiting_note: str = ""

    @property
    def n(self) -> int:
        return len(self.pairs)

    def interval_text(self, name: str) -> str:
        """The interval of one metric as shown: `95% CI low to high`, a note when there is no real
        interval, or "" when none was computed."""
        if name not in self.intervals:
            return ""
        low, high = self.intervals[name]
        if not (np.isfinite(low) and np.isfinite(high)):
            return "no interval: no resample gives a value"
        if name in BOOTSTRAPPED and low == high:
            return NO_INTERVAL
        return f"95% CI {low:.3f} to {high:.3f}"

    def notes(self) -> list[str]:
        """Warnings about the truth: unknown labels, files not labelled yet, files not in the results."""
        lines = []
        known = ", ".join(self.categories)
        for label, files in self.unknown_labels.items():
            lines.append(
                f"{label!r} is not one of the run's labels ({known}) nor '{NO_LABEL}': its {len(files)} file(s)"
                f" were left out of the metrics: {_some(files)}"
            )
        if self.waiting_note:
            lines.append(self.waiting_note)
        if self.unmatched:
            lines.append(f"{len(self.unmatched)} hand-labelled file(s) are not in the results: {_some(self.unmatched)}")
        return lines

    def summary(self) -> str:
        def line(name: str, title: str) -> str:
            value = getattr(self, name)
            shown = f"  {title:<22} {value:.3f}" if np.isfinite(value) else f"  {title:<22} -    "
            interval = self.interval_text(name)
            return f"{shown}   ({interval})" if interval else shown

        lines = [f"Compared {self.n} hand-labelled file(s) with the sorting:"]
        lines += [line("accuracy", "accuracy"), line("macro_f1", "macro F1"), line("kappa", "Cohen's kappa")]
        lines.append(line("alpha", "Krippendorff's alpha"))
        lines.append("Per label:")
        width = max([len("label"), *(len(str(label)) for label in self.per_class.index)])
        lines.append(f"  {'label':<{width}}  precision  recall     F1  support")
        for label, row in self.per_class.iterrows():
            lines.append(
                f"  {str(label):<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}"
                f"  {int(row['support']):7d}"
            )
        if self.n < 30:
            lines.append(f"Only {self.n} files: the intervals are wide; label more for a firmer answer.")
        lines += self.notes()
        return "\n".join(lines)


def run_categories(results: Any, table: pd.DataFrame) -> list[str] | None:
    """The run's labels: the manifest's `labels` when the results come from a destination (labels
    that got no file included), and every label in the results (`label`, `label_2`, ...). None when
    neither a manifest nor runners-up say which labels the run had (a bare table of chosen labels
    cannot tell a label the sorter never chose from a typo)."""
    from ..storage.tables import read_manifest

    destination = None if isinstance(results, pd.DataFrame) else getattr(results, "destination", None)
    if destination is None and isinstance(results, (str, Path)):
        path = Path(results)
        destination = path if path.is_dir() else path.parent
    manifest_labels = []
    if destination is not None:
        try:
            manifest_labels = [str(label) for label in read_manifest(Path(destination)).get("labels", [])]
        except (OSError, ValueError):
            manifest_labels = []  # no readable manifest: the results alone say which labels there are
    ranked = [column for column in table.columns if column.startswith("label_") and column[6:].isdigit()]
    if not manifest_labels and not ranked:
        return None
    seen = [label for column in ["label", *ranked] for label in table[column].fillna("").astype(str) if label]
    return list(dict.fromkeys([*manifest_labels, *seen]))


def evaluate(
    results: Any, truth: Any, *, bootstrap: int = BOOTSTRAP_ROUNDS, seed: int = 0, categories: list[str] | None = None
) -> Evaluation:
    """Measure a sorting (`results`) against hand labels (`truth`); see the module's docstring.
    `categories`: the run's labels, by default from its manifest (when `results` is a destination or
    its output.csv) and its results."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    table = read_results(results)
    hand = read_hand_labels(truth)
    if hand.table.empty:
        if hand.waiting:
            raise hand.unfilled_error()
        raise SourceError(f"{hand.name} holds no hand-labelled file; label some files first (`smart-sorter sample`).")
    categories = list(categories) if categories is not None else run_categories(results, table)
    checked = categories is not None  # else any hand label counts, as the run's labels are not known
    if categories is None:
        categories = [label for label in dict.fromkeys(table["label"]) if label]
    pairs = match(table, hand.table, categories)
    if pairs.empty:
        raise SourceError(
            "None of the hand-labelled files was found in the results; check that the truth names the files"
            " as output.csv does (their path under the source), or use a folder of label folders."
        )
    unmatched = pairs.attrs.get("unmatched", [])
    known = pairs["truth"].isin([*categories, NO_LABEL]) | (not checked)
    unknown = {label: list(files["file"]) for label, files in pairs[~known].groupby("truth", sort=True)}
    pairs = pairs[known].reset_index(drop=True)
    if pairs.empty:
        named = ", ".join(repr(label) for label in unknown)
        raise SourceError(
            f"None of the hand labels ({named}) is one of the run's labels ({', '.join(categories)}) nor"
            f" '{NO_LABEL}'; correct them in {hand.name} and run evaluate again."
        )
    present = set(pairs["truth"]) | set(pairs["predicted"])  # as scikit-learn does: the labels that occur
    ordered = [label for label in categories if label in present]
    labels = ordered + sorted(present - set(ordered))
    truth_values, predicted = pairs["truth"].to_numpy(), pairs["predicted"].to_numpy()
    scores = _metrics(truth_values, predicted, labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth_values, predicted, labels=labels, zero_division=0
    )
    per_class = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": np.asarray(support, dtype=int)}, index=labels
    )
    per_class.index.name = "label"
    confusion = pd.DataFrame(confusion_matrix(truth_values, predicted, labels=labels), index=labels, columns=labels)
    confusion.index.name, confusion.columns.name = "truth", "predicted"
    right = int((truth_values == predicted).sum())
    intervals = {"accuracy": wilson_interval(right, len(pairs))}
    if bootstrap:
        intervals.update(_bootstrap(truth_values, predicted, labels, bootstrap, seed))
    return Evaluation(**scores, per_class=per_class, confusion=confusion, pairs=pairs, intervals=intervals,
                      unmatched=unmatched, unknown_labels=unknown, waiting=hand.waiting, categories=categories,
                      bootstrap_rounds=max(bootstrap, 0), waiting_note=hand.waiting_note())  # fmt: skip


def wilson_interval(right: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `right` / `total` (95% by default)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    share = right / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * np.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def _bootstrap(
    truth: np.ndarray, predicted: np.ndarray, labels: list[str], rounds: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of macro F1, kappa and alpha from resampling the labelled files with
    replacement; each resample's macro F1 averages over the labels present in it."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in BOOTSTRAPPED}
    for _ in range(rounds):
        chosen = rng.integers(0, len(truth), size=len(truth))
        values = _metrics(truth[chosen], predicted[chosen], labels)
        for name in BOOTSTRAPPED:
            samples[name].append(values[name])
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
