"""One entry for measuring any run against hand labels, as `smart-sorter evaluate` does: a sorting's labels
(`evaluation.evaluate`), or, for a detection run, whether each object is found where it is
(`presence.evaluate_presence`)."""

from __future__ import annotations

from typing import Any

from ..storage.tables import read_results
from .evaluation import BOOTSTRAP_ROUNDS, Evaluation
from .evaluation import evaluate as label_evaluation
from .presence import PresenceEvaluation, evaluate_presence, is_detection_table


def evaluate(
    results: Any, truth: Any, *, bootstrap: int = BOOTSTRAP_ROUNDS, seed: int = 0, categories: list[str] | None = None
) -> Evaluation | PresenceEvaluation:
    """Measure a run (`results`: output.csv, its destination, a DataFrame or a SortResult) against hand labels.

    A sorting gets an `Evaluation` (accuracy, macro F1, kappa, alpha with intervals; see `evaluation`). A
    detection run (its table has `objects` and `boxes`) gets a `PresenceEvaluation`: precision, recall and F1
    of finding each object (`per_object`), as `evaluate_presence`; `categories` are then its objects and
    `bootstrap`/`seed` do not apply."""
    table = read_results(results)
    if is_detection_table(table):
        if hasattr(results, "manifest_path"):  # a SortResult: its destination's manifest names the run's objects
            results = results.destination
        return evaluate_presence(results, truth, objects=categories)
    return label_evaluation(results, truth, bootstrap=bootstrap, seed=seed, categories=categories)
