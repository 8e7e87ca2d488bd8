import numpy as np
import pytest

from smart_sorter.core.scoring import (
    ScoreHead,
    activate,
    category_embeddings,
    normalize,
    rank,
    score_images,
    scores_from_prompt_probabilities,
)

rng = np.random.default_rng(0)
IMAGES = rng.normal(size=(5, 8))
PROMPTS = rng.normal(size=(3, 8))


def test_single_prompts_score_as_clip_does():
    head = ScoreHead(scale=100.0)
    scores = score_images(IMAGES, PROMPTS, (0, 1, 2), head)
    logits = 100.0 * normalize(IMAGES) @ normalize(PROMPTS).T
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.probabilities, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0)


def test_siglip_scores_each_label_with_a_sigmoid_and_bias():
    head = ScoreHead(scale=10.0, bias=-3.0, activation="sigmoid")
    scores = score_images(IMAGES, PROMPTS, (0, 1, 2), head)
    logits = 10.0 * normalize(IMAGES) @ normalize(PROMPTS).T - 3.0
    np.testing.assert_allclose(scores.probabilities, 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_prompt_ensembling_averages_normalised_embeddings():
    ensembled = category_embeddings(PROMPTS, (0, 0, 1), 2)
    first = normalize(normalize(PROMPTS[:2]).mean(axis=0))
    np.testing.assert_allclose(ensembled[0], first, rtol=1e-5)
    np.testing.assert_allclose(ensembled[1], normalize(PROMPTS[2]), rtol=1e-5)


def test_best_prompt_mode_takes_each_categorys_best_prompt():
    head = ScoreHead(scale=50.0)
    scores = score_images(IMAGES, PROMPTS, (0, 0, 1), head, prompt_mode="best")
    cosine = normalize(IMAGES) @ normalize(PROMPTS).T
    best = np.stack([cosine[:, :2].max(axis=1), cosine[:, 2]], axis=1)
    np.testing.assert_allclose(scores.probabilities, activate(50.0 * best, head), rtol=1e-5)
    np.testing.assert_array_equal(scores.best_prompt[:, 0], cosine[:, :2].argmax(axis=1))
    assert (scores.best_prompt[:, 1] == 2).all()


def test_rank_orders_by_probability_and_keeps_label_order_on_ties():
    rankings = rank(np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]), top_k=2)
    assert rankings[0].order == (1, 2) and rankings[0].probabilities == pytest.approx((0.5, 0.3))
    assert rankings[1].order == (0, 1)


def test_pipeline_probabilities_take_the_best_prompt_per_category():
    scores = scores_from_prompt_probabilities(np.array([[0.1, 0.6, 0.3]]), (0, 0, 1))
    np.testing.assert_allclose(scores.probabilities, [[0.6, 0.3]])
    assert scores.best_prompt.tolist() == [[1, 2]]


def test_similar_pairs_finds_labels_the_model_cannot_tell_apart():
    from smart_sorter.core.scoring import similar_pairs

    vectors = np.array([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 1.0, 0.0]])
    pairs = similar_pairs(vectors, ("army", "soldier", "cat"))
    assert [(a, b) for a, b, _ in pairs] == [("army", "soldier")]
    assert pairs[0][2] == pytest.approx(0.995, abs=1e-3)
