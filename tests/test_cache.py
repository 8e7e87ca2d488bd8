"""The embedding cache: new labels without the image pass, and the same scores as without it."""

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from smart_sorter import sort_images
from smart_sorter.cli import main
from smart_sorter.pipeline.embedding_cache import EmbeddingCache, cache_home
from smart_sorter.pipeline.encoder import DualEncoder
from tests.factories import image_bytes, noise_image


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def counting_encoder(tiny_clip):
    encoder = DualEncoder(str(tiny_clip), device="cpu").load()
    encoder.embedded = []
    original = encoder.embed_images
    encoder.embed_images = lambda pixels, **options: encoder.embedded.append(len(pixels)) or original(pixels, **options)
    return encoder


def scores(result):
    table = result.table.set_index("file").sort_index()
    return table[["label", "score", "label_2", "score_2"]]


def test_new_labels_reuse_the_embeddings_and_score_the_same(photo_folder, tiny_clip, tmp_path, home,
                                                           counting_encoder):  # fmt: skip
    first = sort_images(photo_folder, tmp_path / "one", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                        progress_bar=False, batch_size=4)  # fmt: skip
    assert sum(counting_encoder.embedded) == 6 and first.status_counts == {"sorted": 6}
    counting_encoder.embedded.clear()
    cached = sort_images(photo_folder, tmp_path / "two", "a red thing,a blue thing,noise", model=str(tiny_clip),
                         encoder=counting_encoder, progress_bar=False, batch_size=4)  # fmt: skip
    assert counting_encoder.embedded == []  # no image went through the model
    uncached = sort_images(photo_folder, tmp_path / "three", "a red thing,a blue thing,noise", model=str(tiny_clip),
                           encoder=counting_encoder, progress_bar=False, batch_size=4, use_cache=False)  # fmt: skip
    assert sum(counting_encoder.embedded) == 6
    assert scores(cached).equals(scores(uncached))  # identical, not merely close
    assert len(list((tmp_path / "two").rglob("*.jpg"))) == 6


def test_the_same_bytes_elsewhere_are_found_by_their_hash(photo_folder, tiny_clip, tmp_path, home, counting_encoder):
    sort_images(photo_folder, tmp_path / "one", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                progress_bar=False)  # fmt: skip
    elsewhere = tmp_path / "renamed"
    shutil.copytree(photo_folder, elsewhere)
    for path in elsewhere.rglob("*.jpg"):
        path.rename(path.with_name("renamed_" + path.name))
    counting_encoder.embedded.clear()
    sort_images(elsewhere, tmp_path / "two", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                progress_bar=False)  # fmt: skip
    assert counting_encoder.embedded == []


def test_a_changed_file_is_embedded_again(photo_folder, tiny_clip, tmp_path, home, counting_encoder):
    sort_images(photo_folder, tmp_path / "one", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                progress_bar=False)  # fmt: skip
    noise_image(99).save(photo_folder / "photo_0.jpg")
    os.utime(photo_folder / "photo_0.jpg", (1, 1))
    counting_encoder.embedded.clear()
    sort_images(photo_folder, tmp_path / "two", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                progress_bar=False)  # fmt: skip
    assert sum(counting_encoder.embedded) == 1


def test_another_preprocessing_mode_does_not_share_embeddings(photo_folder, tiny_clip, tmp_path, home,
                                                             counting_encoder):  # fmt: skip
    sort_images(photo_folder, tmp_path / "one", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                progress_bar=False)  # fmt: skip
    counting_encoder.embedded.clear()
    sort_images(photo_folder, tmp_path / "two", "cat,dog", model=str(tiny_clip), encoder=counting_encoder,
                progress_bar=False, preprocess="exact")  # fmt: skip
    assert sum(counting_encoder.embedded) == 6


def test_cache_lives_in_smart_sorter_home_and_can_be_shown_and_cleared(photo_folder, tiny_clip, tmp_path, home,
                                                                      capsys):  # fmt: skip
    assert cache_home() == home
    sort_images(photo_folder, tmp_path / "one", "cat,dog", model=str(tiny_clip), progress_bar=False)
    assert (home / "embeddings.sqlite").exists()
    assert main(["cache"]) == 0
    shown = capsys.readouterr().out
    assert str(home) in shown and "       6 images" in shown
    assert main(["cache", "--clear"]) == 0
    store = EmbeddingCache()
    assert store.stats()["models"] == {} and store.stats()["files"] == 0
    store.close()


def test_embeddings_round_trip_exactly(home):
    store = EmbeddingCache()
    vector = np.random.default_rng(0).normal(size=512).astype(np.float32)
    store.put("m", {"abc": vector})
    assert np.array_equal(store.get("m", ["abc", "missing"])["abc"], vector)
    assert store.hashes("m") == {"abc"} and store.hashes("other") == frozenset()
    store.close()


def test_file_hashes_are_kept_for_names_that_are_not_utf8(home, tmp_path):
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.jpg"))  # str with a surrogate escape
    path.write_bytes(b"jpeg bytes")
    store = EmbeddingCache()
    store.remember_hashes([(path, "abc")])
    assert store.known_hash(path) == "abc"
    assert store.known_hash(tmp_path / "caf\xe9.jpg") is None  # the valid-UTF-8 name is another file
    store.close()


def test_a_hash_is_kept_with_the_size_and_time_the_file_had_when_it_was_hashed(home, tmp_path):
    """A file changed between its hashing and its remembering is read again next time, not trusted."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"jpeg bytes")
    when_hashed = (path.stat().st_size, path.stat().st_mtime_ns)
    path.write_bytes(b"other jpeg bytes")  # changed meanwhile
    store = EmbeddingCache()
    store.remember_hashes([(path, "abc", when_hashed)])
    assert store.known_hash(path) is None
    store.remember_hashes([(path, "def", (path.stat().st_size, path.stat().st_mtime_ns))])
    assert store.known_hash(path) == "def"
    store.close()


def test_a_cache_written_by_an_older_version_opens_and_keeps_its_hashes(home, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"jpeg bytes")
    stat = path.stat()
    home.mkdir(parents=True)
    old = sqlite3.connect(home / "embeddings.sqlite")
    old.executescript(
        """
        CREATE TABLE embeddings (
            model TEXT NOT NULL, sha256 TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, sha256));
        CREATE TABLE files (
            path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
        """
    )
    old.execute("INSERT INTO files VALUES (?, ?, ?, ?)", (str(path), stat.st_size, stat.st_mtime_ns, "abc"))
    old.execute("INSERT INTO embeddings VALUES ('m', 'abc', ?)", (np.ones(4, dtype=np.float32).tobytes(),))
    old.commit()
    old.close()
    store = EmbeddingCache()
    assert store.known_hash(path) == "abc" and store.hashes("m") == {"abc"}
    store.remember_hashes([(path, "def")])  # the upgraded row is replaced, not doubled
    assert store.known_hash(path) == "def" and store.stats()["files"] == 1
    store.close()
    reopened = EmbeddingCache()
    assert reopened.known_hash(path) == "def"
    reopened.close()


def test_a_photo_with_a_name_that_is_not_utf8_is_cached(home, tmp_path, tiny_clip, counting_encoder):
    from smart_sorter.core.labels import parse_labels
    from smart_sorter.pipeline.batch_scorer import BatchScorer
    from smart_sorter.pipeline.finding import find_images
    from smart_sorter.pipeline.reading import prepared_stream

    with open(os.fsencode(tmp_path) + b"/caf\xe9.jpg", "wb") as handle:
        handle.write(image_bytes(noise_image(1), "JPEG"))
    files = find_images(tmp_path).files
    labels = parse_labels("cat,dog", "a photo of {}")
    for expected_embedded in (1, 0):  # the second time, the file is known by its unchanged name and stat
        counting_encoder.embedded.clear()
        store = EmbeddingCache()
        scorer = BatchScorer(counting_encoder, labels, preprocess="fast", prompt_mode="average",
                             batch_size=4, cache=store)  # fmt: skip
        known = scorer.known_hashes(list(files))
        items = list(prepared_stream(files, scorer.prepare, workers=1, lookahead=2, known_hashes=known,
                                     cached=scorer.cached_hashes))  # fmt: skip
        scorer.score(items)
        assert sum(counting_encoder.embedded) == expected_embedded and len(known) == 1 - expected_embedded
        store.close()
