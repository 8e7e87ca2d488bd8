"""How far a model's coding agrees with human coders, field by field.

The coding is coding.csv (a path, or the folder holding it); the truth is a CSV with `file` and one
column per field the coders filled in (any of the codebook's fields; an empty cell is not counted).
Files are matched by `file`, as output.csv and coding.csv write it. Per field:
- options and yes/no: accuracy with its Wilson interval, Cohen's kappa and Krippendorff's alpha
  (nominal), each with a bootstrap interval, as `evaluate` gives them for a sorting;
- several options: the same on the whole set chosen (an exact match agrees), after sorting its options;
- numbers: mean absolute error, exact agreement, and Krippendorff's alpha at the interval level;
- short text: exact agreement, ignoring case and surrounding spaces.
Files the model could not answer (status `error`) are counted apart, never as disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.codebook import NUMBER, OPTIONS, SEVERAL, TEXT, YES_NO, Codebook, parse_codebook
from ..core.coding import CODED, CODING_FILE_NAME, CODING_JOURNAL_NAME
from ..errors import SourceError
from ..options import STATE_FOLDER_NAME
from ..storage.journal import read_journal
from .evaluation import BOOTSTRAP_ROUNDS, NO_INTERVAL, _bootstrap, _metrics, wilson_interval


@dataclass
class FieldAgreement:
    """One field's agreement between the model and the human coders."""

    name: str
    kind: str
    compared: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    kappa: float = float("nan")
    alpha: float = float("nan")
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    mean_absolute_error: float = float("nan")

    def line(self) -> str:
        low, high = self.accuracy_interval
        text = (
            f"{self.name} ({self.kind}, {self.compared} files): agreement {self.accuracy:.3f} [{low:.3f}, {high:.3f}]"
        )
        for name in ("kappa", "alpha"):
            value = getattr(self, name)
            if value == value:
                bounds = self.intervals.get(name)
                shown = f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds and bounds[0] == bounds[0] else ""
                shown = f" ({NO_INTERVAL})" if bounds and bounds[0] == bounds[1] else shown
                text += f", {name} {value:.3f}{shown}"
        if self.mean_absolute_error == self.mean_absolute_error:
            text += f", mean absolute error {self.mean_absolute_error:.3g}"
        return text


@dataclass
class CodingAgreement:
    fields: list[FieldAgreement]
    unanswered: list[str]  # hand-coded files the model gave no answer for
    unmatched: list[str]  # hand-coded files coding.csv does not hold

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame([vars(agreement) for agreement in self.fields]).set_index("name")

    def summary(self) -> str:
        lines = ["Agreement with the human coding, per field (95% intervals):"]
        lines += [f"  {agreement.line()}" for agreement in self.fields]
        if self.unanswered:
            lines.append(f"{len(self.unanswered)} hand-coded files have no answer from the model and were not counted.")
        if self.unmatched:
            shown = ", ".join(self.unmatched[:5])
            lines.append(f"{len(self.unmatched)} hand-coded files are not in the coding: {shown}")
        return "\n".join(lines)


def _read(table: Any, what: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.astype(str)
    path = Path(table)
    if path.is_dir():
        path = path / CODING_FILE_NAME
    if not path.is_file():
        raise SourceError(f"No {what} at {str(path)!r}; give its CSV file.")
    read = pd.read_csv(path, keep_default_na=False, dtype=str)
    if "file" not in read.columns:
        raise SourceError(f"{str(path)!r} has no 'file' column; the {what} needs one, as in coding.csv.")
    return read


def coding_codebook(coding: Any, codebook: Any) -> Codebook:
    """The codebook given, else the one the coding run recorded in its journal."""
    if isinstance(codebook, Codebook):
        return codebook
    if codebook is not None:
        from ..core.codebook import read_codebook_file

        return read_codebook_file(Path(codebook)) if isinstance(codebook, (str, Path)) else parse_codebook(codebook)
    if not isinstance(coding, pd.DataFrame):
        folder = Path(coding) if Path(coding).is_dir() else Path(coding).parent
        settings = read_journal(folder / STATE_FOLDER_NAME / CODING_JOURNAL_NAME).settings or {}
        if settings.get("codebook"):
            return parse_codebook(settings["codebook"])
    raise SourceError("The coding's codebook is not recorded beside it; give it (--codebook).")


def _normal(kind: str, value: str) -> str:
    value = value.strip()
    if kind == SEVERAL:
        return "; ".join(sorted(part.strip() for part in value.split(";") if part.strip()))
    if kind in (TEXT, YES_NO, OPTIONS):
        return value.casefold()
    return value


def _agreement(name: str, kind: str, human: np.ndarray, model: np.ndarray, rounds: int) -> FieldAgreement:
    if kind == NUMBER:
        truth, said = human.astype(float), model.astype(float)
        right = int(np.sum(truth == said))
        alpha = _interval_alpha(truth, said)
        return FieldAgreement(name, kind, len(truth), right / len(truth), wilson_interval(right, len(truth)),
                              alpha=alpha, mean_absolute_error=float(np.mean(np.abs(truth - said))))  # fmt: skip
    right = int(np.sum(human == model))
    labels = sorted(set(human) | set(model))
    metrics = _metrics(human, model, labels) if kind != TEXT else {}
    intervals = _bootstrap(human, model, labels, rounds, seed=0) if kind != TEXT and rounds else {}
    return FieldAgreement(
        name, kind, len(human), right / len(human), wilson_interval(right, len(human)),
        kappa=metrics.get("kappa", float("nan")), alpha=metrics.get("alpha", float("nan")), intervals=intervals,
    )  # fmt: skip


def _interval_alpha(truth: np.ndarray, said: np.ndarray) -> float:
    import krippendorff

    if len(set(truth) | set(said)) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=np.vstack([truth, said]), level_of_measurement="interval"))


def evaluate_coding(
    coding: Any, truth: Any, codebook: Any = None, *, bootstrap: int = BOOTSTRAP_ROUNDS
) -> CodingAgreement:
    """Agreement of coding.csv with a human coding (CSV with `file` and the fields coded by hand)."""
    machine, human = _read(coding, "coding"), _read(truth, "human coding")
    book = coding_codebook(coding, codebook)
    asked = [question for question in book.fields if question.name in human.columns]
    if not asked:
        raise SourceError(f"The human coding has none of the codebook's fields ({', '.join(book.names)}) as a column.")
    merged = human.merge(machine, on="file", how="left", suffixes=("_human", ""), indicator=True)
    unmatched = merged.loc[merged["_merge"] == "left_only", "file"].tolist()
    merged = merged[merged["_merge"] == "both"]
    unanswered = merged.loc[merged["status"] != CODED, "file"].tolist()
    merged = merged[merged["status"] == CODED]
    agreements = []
    for question in asked:
        said, hand = merged[question.name].astype(str), merged[f"{question.name}_human"].astype(str)
        keep = hand.str.strip() != ""
        if question.kind == NUMBER:
            keep &= pd.to_numeric(hand, errors="coerce").notna() & pd.to_numeric(said, errors="coerce").notna()
        if not keep.any():
            continue
        pair_human = np.array([_normal(question.kind, value) for value in hand[keep]])
        pair_model = np.array([_normal(question.kind, value) for value in said[keep]])
        agreements.append(_agreement(question.name, question.kind, pair_human, pair_model, max(bootstrap, 0)))
    return CodingAgreement(agreements, unanswered, unmatched)
