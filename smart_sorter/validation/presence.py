"""Evaluating a detection run: is each object found in the files that hold it? Precision and recall per
object, against hand labels that name every object a file holds (or `none`).

Hand labels: a CSV with `file` and `objects` (several separated by `;` or `,`), or `file,label` with one
row per object a file holds; or a folder with one folder per object, a file copied into each folder of
an object it holds (`none` for files with none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.rows import NO_LABEL
from ..errors import SourceError
from ..storage.tables import read_manifest, read_results
from .evaluation import _canonical_labels, match, read_hand_labels

_SEPARATORS = re.compile(r"\s*[;,]\s*")


@dataclass
class PresenceEvaluation:
    """Per object: files that hold it (support), files it was found in, precision, recall and F1."""

    per_object: pd.DataFrame
    pairs: pd.DataFrame  # file, truth (objects held), found (objects found)
    unmatched: list[str] = field(default_factory=list)
    unknown_objects: dict[str, list[str]] = field(default_factory=dict)
    waiting_note: str = ""

    @property
    def n(self) -> int:
        return len(self.pairs)

    def summary(self) -> str:
        lines = [f"Presence of each object in {self.n} hand-labelled file(s):"]
        lines.append(f"  {'object':<24} {'precision':>9} {'recall':>7} {'f1':>6} {'holding':>8} {'found in':>9}")
        for name, row in self.per_object.iterrows():
            lines.append(
                f"  {str(name)[:24]:<24} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f}"
                f" {int(row['support']):>8} {int(row['found']):>9}"
            )
        if self.unknown_objects:
            named = ", ".join(f"{name!r} ({len(files)} file(s))" for name, files in self.unknown_objects.items())
            lines.append(f"Hand labels that are none of the run's objects, left out: {named}.")
        if self.unmatched:
            lines.append(f"{len(self.unmatched)} hand-labelled file(s) were not found in the results.")
        if self.waiting_note:
            lines.append(self.waiting_note + ".")
        return "\n".join(lines)


def _hand_objects(truth: Any) -> Any:
    """A truth CSV with an `objects` column as one row per (file, object), as `read_hand_labels` reads it."""
    if isinstance(truth, (str, Path)) and Path(truth).is_file():
        table = pd.read_csv(truth, keep_default_na=False, dtype=str)
        if "objects" in table.columns and "label" not in table.columns:
            table["label"] = table["objects"].map(
                lambda text: _SEPARATORS.split(text.strip()) if text.strip() else [""]
            )
            return table.explode("label").drop(columns="objects")
    return truth


def is_detection_table(table: pd.DataFrame) -> bool:
    return {"objects", "boxes"} <= set(table.columns)


def evaluate_presence(results: Any, truth: Any, *, objects: list[str] | None = None) -> PresenceEvaluation:
    """Precision and recall of finding each object, per file, against hand labels (see the module)."""
    from sklearn.metrics import precision_recall_fscore_support

    table = read_results(results)
    if objects is None and isinstance(results, (str, Path)):
        folder = Path(results) if Path(results).is_dir() else Path(results).parent
        objects = [str(name) for name in read_manifest(folder).get("labels", [])] or None
    counted = [column[len("count:") :] for column in table.columns if column.startswith("count:")]  # the run's order
    objects = objects or counted or sorted({name for text in table["objects"].astype(str) for name in text.split("; ")
                                            if name})  # fmt: skip
    hand = read_hand_labels(_hand_objects(truth))
    if hand.table.empty:
        raise hand.unfilled_error() if hand.waiting else SourceError(f"{hand.name} holds no hand-labelled file.")
    key = "sha256" if "sha256" in hand.table.columns and hand.table["sha256"].astype(bool).all() else "file"
    grouped = hand.table.groupby(key, sort=False).agg({"label": lambda values: "\n".join(values)})
    one_per_file = grouped.reset_index()
    if key == "sha256" and "file" in hand.table.columns:
        one_per_file["file"] = hand.table.groupby(key, sort=False)["file"].first().to_numpy()
    pairs = match(table, one_per_file, objects)
    if pairs.empty:
        raise SourceError("None of the hand-labelled files was found in the results; name them as output.csv does.")
    found_by_file = dict(zip(table["file"], table["objects"].fillna("").astype(str)))
    truth_sets, unknown = [], {}
    for _, pair in pairs.iterrows():
        names = set(_canonical_labels(pd.Series(pair["truth"].split("\n")), objects)) - {NO_LABEL, ""}
        for name in names - set(objects):
            unknown.setdefault(name, []).append(pair["file"])
        truth_sets.append(names & set(objects))
    found_sets = [{name for name in found_by_file.get(file, "").split("; ") if name} for file in pairs["file"]]
    truth_matrix = [[name in held for name in objects] for held in truth_sets]
    found_matrix = [[name in found for name in objects] for found in found_sets]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth_matrix, found_matrix, average=None, zero_division=0
    )
    per_object = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support,
         "found": [sum(row[index] for row in found_matrix) for index in range(len(objects))]},
        index=pd.Index(objects, name="object"),
    )  # fmt: skip
    unmatched = pairs.attrs.get("unmatched", [])
    pairs = pd.DataFrame({"file": pairs["file"], "truth": truth_sets, "found": found_sets})
    return PresenceEvaluation(per_object, pairs, unmatched, unknown, waiting_note=hand.waiting_note())
