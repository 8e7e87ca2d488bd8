"""BatchScorer with the colour FakeEncoder: label texts once, images through the cache, advice on labels."""

from pathlib import Path

import numpy as np
import pytest

from smart_sorter.core.labels import parse_labels
from smart_sorter.options import DEFAULT_TEMPLATE
from smart_sorter.pipeline import reading
from smart_sorter.pipeline.batch_scorer import SHOWN_PAIRS, BatchScorer
from smart_sorter.pipeline.embedding_cache import EmbeddingCache
from smart_sorter.pipeline.finding import find_images
from smart_sorter.pipeline.reading import chunks, prepared_stream
from tests.fakes import COLOUR_LABELS, LABEL_OF, write_colour_images


def make_scorer(encoder, labels=COLOUR_LABELS, *, cache=None, multi_label=False, preprocess="fast"):
    return BatchScorer(
        encoder, parse_labels(labels, DEFAULT_TEMPLATE), preprocess=preprocess, prompt_mode="average",
        batch_size=4, cache=cache, multi_label=multi_label,
    )  # fmt: skip


def score_folder(scorer: BatchScorer, folder: Path) -> dict[str, np.ndarray]:
    """Every image under `folder` scored as a run scores it: file name -> probabilities."""
    files = find_images(folder).files
    stream = prepared_stream(files, scorer.prepare, workers=2, lookahead=8, known_hashes=scorer.known_hashes(files),
                             cached=scorer.cached_hashes)  # fmt: skip
    scored = {}
    for chunk in chunks(stream, scorer.batch_size):
        assert not [item.error for item in chunk if item.error]
        scores = scorer.score(chunk)
        scored.update((item.found.relative, row) for item, row in zip(chunk, scores.probabilities))
    return scored


@pytest.fixture
def colours(tmp_path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "images"
    return folder, write_colour_images(folder, ["red", "green", "blue", "red", "blue", "green", "red"])


@pytest.mark.parametrize("preprocess", ["fast", "exact"])
def test_the_fake_sorts_each_colour_to_its_label(fake_encoder, colours, preprocess):
    folder, truth = colours
    scored = score_folder(make_scorer(fake_encoder, preprocess=preprocess), folder)
    assert {name: COLOUR_LABELS[int(np.argmax(row))] for name, row in scored.items()} == {
        name: LABEL_OF[colour] for name, colour in truth.items()
    }


def test_label_texts_are_embedded_once_per_scorer(fake_encoder, colours):
    scorer = make_scorer(fake_encoder, multi_label=True)
    score_folder(scorer, colours[0])  # two batches of four
    prompts = [DEFAULT_TEMPLATE.format(label) for label in COLOUR_LABELS]
    assert fake_encoder.embedded_texts == [*prompts, DEFAULT_TEMPLATE.format("something else")]
    assert fake_encoder.image_batches == [4, 3]


def test_embeddings_are_cached_and_a_second_scorer_embeds_no_image(fake_encoder, colours, tmp_path):
    folder, truth = colours
    cache = EmbeddingCache(tmp_path / "home")
    first = score_folder(make_scorer(fake_encoder, cache=cache), folder)
    assert fake_encoder.embedded_images == len(truth)
    second_scorer = make_scorer(fake_encoder, ["a red thing", "a blue thing"], cache=EmbeddingCache(tmp_path / "home"))
    assert len(second_scorer.cached_hashes) == len(truth)
    second = score_folder(second_scorer, folder)
    assert fake_encoder.embedded_images == len(truth)  # none more: all from the cache
    for name in truth:  # the same embeddings: red against blue agrees with the first scoring
        assert (second[name][0] > second[name][1]) == (first[name][0] > first[name][2])


def test_known_hashes_spare_reading_unchanged_files(fake_encoder, colours, tmp_path, monkeypatch):
    folder, truth = colours
    score_folder(make_scorer(fake_encoder, cache=EmbeddingCache(tmp_path / "home")), folder)
    changed = sorted(truth)[0]
    write_colour_images(folder / "other", ["green"], start=50)
    (folder / "other" / "green_50.jpg").replace(folder / changed)  # new bytes under an old name
    read = []
    original = reading.read_file

    def counted(found, **options):
        read.append(found.relative)
        return original(found, **options)

    monkeypatch.setattr(reading, "read_file", counted)
    scorer = make_scorer(fake_encoder, cache=EmbeddingCache(tmp_path / "home"))
    files = find_images(folder).files
    known = scorer.known_hashes(files)
    assert set(known) == set(truth) - {changed}
    scored = score_folder(scorer, folder)
    assert read == [changed]  # the only file read again is the one that changed
    assert fake_encoder.embedded_images == len(truth) + 1
    assert COLOUR_LABELS[int(np.argmax(scored[changed]))] == "a green thing"


def test_known_hashes_need_the_embedding_of_this_model(fake_encoder, colours, tmp_path):
    from tests.fakes import FakeEncoder

    folder, _ = colours
    score_folder(make_scorer(fake_encoder, cache=EmbeddingCache(tmp_path / "home")), folder)
    other_model = make_scorer(FakeEncoder("fake/another-model"), cache=EmbeddingCache(tmp_path / "home"))
    assert other_model.known_hashes(find_images(folder).files) == {}
    assert make_scorer(fake_encoder, cache=None).known_hashes(find_images(folder).files) == {}


def test_several_similar_label_pairs_make_one_note_naming_each(fake_encoder):
    labels = ["a red car", "a red bus", "a red boat", "a blue thing"]
    advice = make_scorer(fake_encoder, labels).label_advice(tuple(labels))
    assert len(advice) == 1
    note = advice[0]
    assert note.startswith("These labels mean nearly the same")
    for pair in ("'a red car'/'a red bus'", "'a red car'/'a red boat'", "'a red bus'/'a red boat'"):
        assert pair in note
    assert "blue" not in note and "more pairs" not in note


def test_one_similar_pair_is_named_as_such_and_distinct_labels_get_no_advice(fake_encoder):
    two = make_scorer(fake_encoder, ["a red car", "a red bus", "a blue thing"]).label_advice(
        ("a red car", "a red bus", "a blue thing")
    )
    assert len(two) == 1 and two[0].startswith("These two labels mean") and "'a red car'/'a red bus'" in two[0]
    assert make_scorer(fake_encoder).label_advice(tuple(COLOUR_LABELS)) == []


def test_many_similar_pairs_are_counted_past_the_shown_ones(fake_encoder):
    labels = [f"a red thing number {word}" for word in ("one", "two", "three", "four", "five")]  # 10 pairs
    (note,) = make_scorer(fake_encoder, labels).label_advice(tuple(labels))
    assert note.count("/") == SHOWN_PAIRS and f"and {10 - SHOWN_PAIRS} more pairs" in note


def test_multi_label_scores_each_label_on_its_own(fake_encoder, tmp_path):
    folder = tmp_path / "images"
    write_colour_images(folder, ["red", "blue"])
    files = find_images(folder).files
    for multi_label in (True, False):
        scorer = make_scorer(fake_encoder, multi_label=multi_label)
        items = list(prepared_stream(files, scorer.prepare, workers=1, lookahead=2))
        scores = scorer.score(items)
        if not multi_label:
            assert scores.independent is None
            assert scores.ranked(multi_label=False) is scores.probabilities
            continue
        assert scores.independent.shape == (2, 3)
        blue, red = scores.independent  # files in name order: blue_01, red_00
        assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1
        assert blue[2] > 0.9 and blue[0] < 0.1 and blue[1] < 0.1
        # each on its own: not a distribution over the labels
        np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0)
        assert scores.ranked(multi_label=True) is scores.independent
