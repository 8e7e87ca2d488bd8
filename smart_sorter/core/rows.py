"""Rows of output.csv as a run builds them: pure functions of rankings, labels and options.

A row is a dict with the columns of output.csv (`BASE_COLUMNS`, the runners-up `label_2, score_2,
...`, and in multi-label mode `tags`, `copies` and `score:<category>`); the journal, output.csv and
undo all carry this one shape.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .labels import LabelSet
from .scoring import Ranking, Scores, is_uncertain, rank
from .videos import VIDEO_COLUMNS

NO_LABEL = "none"  # the hand label "no category fits", and the prediction of an uncertain file
BASE_COLUMNS = ("file", "label", "score", "destination", "status", "error", "sha256", "prompt", "action")
STATUSES = ("sorted", "uncertain", "error")
MULTI_LABEL_THRESHOLD = 0.5  # a category's own score at or above it makes a tag, unless a threshold is given


def csv_columns(top_k: int, tag_categories: tuple[str, ...] = (), *, copies: bool = False) -> tuple[str, ...]:
    """output.csv's columns: the chosen label, what a video adds (`kind`, `frames`, `duration`, `time`),
    then `label_2, score_2, ...` up to `top_k`; in multi-label mode also `tags`, `copies` (when
    files are copied into each tag's folder), a `score:<category>` and a `time:<category>` column per
    category."""
    runners_up = tuple(f"{name}_{rank}" for rank in range(2, top_k + 1) for name in ("label", "score"))
    tags = ("tags", *(("copies",) if copies else ()), *(f"score:{category}" for category in tag_categories))
    times = tuple(f"time:{category}" for category in tag_categories)
    return BASE_COLUMNS + VIDEO_COLUMNS + runners_up + (tags + times if tag_categories else ())


def count_rows(
    rows: list[dict[str, Any]], categories: tuple[str, ...], bucket: str = "uncertain"
) -> tuple[dict[str, int], dict[str, int]]:
    """Files per label (in the user's order, then the uncertain `bucket`, if any) and per status."""
    labels = Counter(row["label"] for row in rows if row["status"] == "sorted")
    statuses = Counter(row["status"] for row in rows)
    counts = {label: labels.get(label, 0) for label in categories}
    if statuses.get("uncertain"):
        counts[bucket] = statuses["uncertain"]
    return counts, dict(statuses)


def make_row(
    relative: str,
    sha256: str,
    *,
    categories: tuple[str, ...] = (),
    order: tuple[int, ...] = (),
    probabilities: tuple[float, ...] = (),
    prompt: str = "",
    destination: str = "",
    status: str = "sorted",
    error: str = "",
    action: str = "",
) -> dict[str, Any]:
    """One output.csv row; `order`/`probabilities` are the ranked categories (empty for an error)."""
    row: dict[str, Any] = {
        "file": relative,
        "label": categories[order[0]] if order else "",
        "score": probabilities[0] if order else None,
        "destination": destination,
        "status": status,
        "error": error,
        "sha256": sha256,
        "prompt": prompt,
        "action": action,
        "kind": "image",  # a video's row is given its video columns after (core.videos)
    }
    for position, (index, probability) in enumerate(zip(order[1:], probabilities[1:]), start=2):
        row[f"label_{position}"] = categories[index]
        row[f"score_{position}"] = probability
    return row


def scored_row(
    relative: str,
    sha256: str,
    ranking: Ranking,
    best_prompt: Any,
    labels: LabelSet,
    *,
    threshold: float | None,
    margin: float | None,
    tag_scores: Any = None,
) -> dict[str, Any]:
    """A scored file's row: its ranked labels, the prompt that matched, and `uncertain` when its best
    label is negative or below its threshold or margin. With `tag_scores` (multi-label mode: each
    category scored on its own) every category at or above its threshold is a tag, best first; the
    label is the best tag, and a file with no tag is uncertain."""
    top = ranking.order[0]
    weak = is_uncertain(
        ranking, threshold=labels.threshold_of(top, threshold), margin=margin, negative=labels.is_negative(top)
    )
    row = make_row(
        relative,
        sha256,
        categories=labels.categories,
        order=ranking.order,
        probabilities=ranking.probabilities,
        prompt=labels.all_prompts[best_prompt[top]],
        status="uncertain" if weak else "sorted",
    )
    if tag_scores is not None:
        tags = _tags(tag_scores, labels, MULTI_LABEL_THRESHOLD if threshold is None else threshold)
        row["tags"] = "; ".join(tags)
        row.update({f"score:{category}": float(value) for category, value in zip(labels.categories, tag_scores)})
        row["status"] = "sorted" if tags else "uncertain"
        if tags:
            row["label"] = tags[0]
            row["score"] = float(tag_scores[labels.categories.index(tags[0])])
    return row


def _tags(tag_scores: Any, labels: LabelSet, default: float) -> list[str]:
    order = sorted(range(len(labels.categories)), key=lambda index: -tag_scores[index])
    return [
        labels.categories[index]
        for index in order
        if tag_scores[index] >= labels.threshold_of(index, default) and not labels.is_negative(index)
    ]


def runners_up(row: Any) -> list[tuple[str, float]]:
    """A row's ranked labels after its first (`label_2, score_2, ...`), as (label, score) pairs."""
    pairs, rank = [], 2
    while row.get(f"label_{rank}"):
        pairs.append((row[f"label_{rank}"], float(row[f"score_{rank}"])))
        rank += 1
    return pairs


def row_tags(row: dict[str, Any]) -> list[str]:
    """The tags of a multi-label row (the objects found, in detection mode), best first."""
    return [tag for tag in str(row.get("tags") or row.get("objects") or "").split("; ") if tag]


def batch_rows(
    entries: list[tuple[str, str, str]],
    scores: Scores | None,
    labels: LabelSet,
    *,
    top_k: int,
    threshold: float | None,
    margin: float | None,
    multi_label: bool,
) -> list[dict[str, Any]]:
    """The rows of one batch: `entries` are (file, sha256, error) in order, `scores` those of the
    entries without an error, in the same order. Shared by sorting and re-sorting."""
    per_image = None if scores is None else scores.ranked(multi_label)
    rankings = iter(rank(per_image, top_k) if per_image is not None else ())
    tag_scores = iter(per_image if per_image is not None and multi_label else ())
    best_prompts = iter(scores.best_prompt if scores is not None else ())
    rows = []
    for relative, sha256, error in entries:
        if error:
            rows.append(make_row(relative, sha256, status="error", error=error))
            continue
        rows.append(
            scored_row(
                relative,
                sha256,
                next(rankings),
                next(best_prompts),
                labels,
                threshold=threshold,
                margin=margin,
                tag_scores=next(tag_scores, None),
            )  # fmt: skip
        )
    return rows
