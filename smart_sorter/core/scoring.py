"""Scores from embeddings: a pure function of arrays, as the models themselves compute them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScoreHead:
    """How a dual encoder turns cosine similarity into probabilities.

    CLIP-like models: softmax over categories of `scale * cosine`; SigLIP: an independent
    sigmoid of `scale * cosine + bias` per category (as the transformers pipeline does).
    """

    scale: float
    bias: float = 0.0
    activation: str = "softmax"


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def category_embeddings(prompt_embeddings: np.ndarray, prompt_owner: tuple[int, ...], count: int) -> np.ndarray:
    """CLIP's prompt ensembling: the renormalised mean of each category's normalised prompt embeddings."""
    prompts = normalize(prompt_embeddings)
    owner = np.asarray(prompt_owner)
    means = np.stack([prompts[owner == index].mean(axis=0) for index in range(count)])
    return normalize(means)


def _per_category(per_prompt: np.ndarray, prompt_owner: tuple[int, ...]) -> np.ndarray:
    """(images, prompts) -> (images, categories, prompts), -inf where a prompt is not the category's."""
    owner = np.asarray(prompt_owner)
    mine = owner[None, :] == np.arange(int(owner.max()) + 1)[:, None]
    return np.where(mine[None, :, :], per_prompt[:, None, :], -np.inf)


def activate(logits: np.ndarray, head: ScoreHead) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if head.activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Scores:
    """Per image: a probability per category, and which prompt of each category matched best."""

    probabilities: np.ndarray  # (images, categories)
    best_prompt: np.ndarray  # (images, categories): index into all prompts
    independent: np.ndarray | None = None  # (images, categories): each category on its own, for tags

    def ranked(self, multi_label: bool) -> np.ndarray:
        """The scores files are ranked and tagged by: each category on its own in multi-label mode."""
        return self.independent if multi_label and self.independent is not None else self.probabilities


def score_images(
    image_embeddings: np.ndarray,
    prompt_embeddings: np.ndarray,
    prompt_owner: tuple[int, ...],
    head: ScoreHead,
    *,
    prompt_mode: str = "average",
    negative_embedding: np.ndarray | None = None,
) -> Scores:
    """Probabilities of each category for each image.

    `average` scores a category by its ensembled prompt embedding; `best` by its single
    best-matching prompt. Either way the activation runs over categories, not prompts.
    """
    images = normalize(image_embeddings)
    prompts = normalize(prompt_embeddings)
    count = max(prompt_owner) + 1
    masked = _per_category(images @ prompts.T, prompt_owner)
    best_prompt = masked.argmax(axis=-1)
    if prompt_mode == "best":
        cosine = masked.max(axis=-1)
    else:
        cosine = images @ category_embeddings(prompts, prompt_owner, count).T
    logits = head.scale * cosine.astype(np.float64) + head.bias
    independent = None
    if head.activation == "sigmoid":
        independent = activate(logits, head)  # SigLIP scores each label on its own already
    elif negative_embedding is not None:
        # CLIP-like: each category against a "something else" prompt, a two-way softmax
        negative = head.scale * (images @ normalize(negative_embedding).reshape(-1, 1)).astype(np.float64)
        independent = 1.0 / (1.0 + np.exp(negative - logits))
    return Scores(activate(logits, head), best_prompt, independent)


@dataclass(frozen=True)
class Ranking:
    """One image's categories from most to least likely (indices) with their probabilities."""

    order: tuple[int, ...]
    probabilities: tuple[float, ...]


def rank(probabilities: np.ndarray, top_k: int) -> list[Ranking]:
    """The top `top_k` categories of each image; ties keep the user's label order."""
    rankings = []
    for row in np.asarray(probabilities):
        order = np.argsort(-row, kind="stable")[:top_k]
        rankings.append(Ranking(tuple(int(i) for i in order), tuple(float(row[i]) for i in order)))
    return rankings


def scores_from_prompt_probabilities(prompt_probabilities: np.ndarray, prompt_owner: tuple[int, ...]) -> Scores:
    """For models scored through the pipeline: each category takes its best prompt's probability."""
    masked = _per_category(np.asarray(prompt_probabilities, dtype=np.float64), prompt_owner)
    return Scores(masked.max(axis=-1), masked.argmax(axis=-1))


def is_uncertain(
    ranking: Ranking, *, threshold: float | None = None, margin: float | None = None, negative: bool = False
) -> bool:
    """Whether the best label is too weak to trust: a "none of these" category, its probability
    under `threshold`, or its lead over the runner-up under `margin`."""
    if negative:
        return True
    best = ranking.probabilities[0]
    if threshold is not None and best < threshold:
        return True
    runner_up = ranking.probabilities[1] if len(ranking.probabilities) > 1 else 0.0
    return margin is not None and best - runner_up < margin


def similar_pairs(embeddings: np.ndarray, names: tuple[str, ...], limit: float = 0.95) -> list[tuple[str, str, float]]:
    """Pairs of categories whose (ensembled) text embeddings are nearly the same to the model."""
    vectors = normalize(embeddings)
    cosine = vectors @ vectors.T
    return [
        (names[i], names[j], float(cosine[i, j]))
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if cosine[i, j] >= limit
    ]
