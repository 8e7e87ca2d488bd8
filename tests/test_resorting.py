"""`smart-sorter resort`: new labels for a finished destination, from the cache, nothing lost."""

import hashlib
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from smart_sorter import sort_images
from smart_sorter.cli import main
from smart_sorter.pipeline.encoder import DualEncoder
from tests.toy_clip import write_shapes


def hashes(folder: Path) -> Counter:
    return Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("shape_*"))


@pytest.mark.slow
def test_resort_moves_files_to_their_new_labels_without_the_model(toy_clip, tmp_path):
    truth = write_shapes(tmp_path / "shapes", 24, seed=11)
    out = tmp_path / "out"
    colours = {"red circle": "red", "blue square": "blue", "green triangle": "green", "yellow cross": "yellow"}
    by_colour = {f"{c} thing": [f"This is a photo of {label}."] for label, c in colours.items()}
    sort_images(tmp_path / "shapes", out, {"round": ["This is a photo of red circle."],
                                           "other": ["This is a photo of blue square.",
                                                     "This is a photo of green triangle.",
                                                     "This is a photo of yellow cross."]},
                model=str(toy_clip), progress_bar=False, precision="fp32")  # fmt: skip
    before = hashes(out)
    encoder = DualEncoder(str(toy_clip), device="cpu", precision="fp32").load()  # the run's: its cache is hit
    encoder.embedded = []
    original = encoder.embed_images
    encoder.embed_images = lambda pixels, **options: encoder.embedded.append(len(pixels)) or original(pixels, **options)

    from smart_sorter.runs.resorting import resort

    result = resort(out, by_colour, template="{}", encoder=encoder)
    assert encoder.embedded == []  # every embedding came from the cache
    assert hashes(out) == before  # nothing lost, nothing doubled
    placed = {path.name: path.parent.name for path in out.rglob("shape_*")}
    expected = {name: f"{colours[label]} thing" for name, label in truth.items()}
    assert sum(placed[name] == folder for name, folder in expected.items()) >= 22
    assert not (out / "round").exists() and not (out / "other").exists()  # emptied folders removed
    table = pd.read_csv(result.csv_path, keep_default_na=False)
    assert len(table) == 24 and set(table["label"]) <= set(by_colour)
    assert all((out / d).exists() for d in table["destination"])
    assert result.moved == 24
    assert main(["undo", str(out)]) == 0  # copies made by the first run are removed, sources intact
    assert not list(out.rglob("shape_*")) and len(list((tmp_path / "shapes").iterdir())) == 24


def test_resort_needs_a_finished_run(tmp_path, capsys):
    assert main(["resort", str(tmp_path), "--labels", "a,b"]) == 1
    assert "nothing for the re-sort" in capsys.readouterr().err


def test_resort_never_moves_a_file_that_was_there_before_the_run(tmp_path, tiny_clip):
    from smart_sorter.runs.resorting import resort
    from tests.factories import noise_image

    source = tmp_path / "src"
    source.mkdir()
    for index in range(3):
        noise_image(index).save(source / f"p{index}.jpg")
    out = tmp_path / "out"
    for label in ("a", "b"):  # the user's own copy of p0.jpg already sits in both possible folders
        (out / label).mkdir(parents=True)
        (out / label / "p0.jpg").write_bytes((source / "p0.jpg").read_bytes())
    first = sort_images(source, out, "a,b", model=str(tiny_clip), progress_bar=False)
    assert first.table.set_index("file").loc["p0.jpg", "action"] == "duplicate"
    resort(out, "c,d")
    assert (out / "a" / "p0.jpg").exists() and (out / "b" / "p0.jpg").exists()
    assert len(list(out.rglob("p1.jpg"))) == 1 and len(list(out.rglob("p2.jpg"))) == 1


def test_resort_keeps_the_model_revision_so_the_cache_is_hit(tiny_clip, tmp_path, monkeypatch):
    from smart_sorter import resort
    from smart_sorter.pipeline.embedding_cache import EmbeddingCache

    source = tmp_path / "src"
    write_shapes(source, 6, seed=3)
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "cache-home"))
    sort_images(source, tmp_path / "out", "a,b", model=str(tiny_clip), revision="v1.0", progress_bar=False)
    resort(tmp_path / "out", "c,d")
    cache = EmbeddingCache()
    models = cache.stats()["models"]
    cache.close()
    assert len(models) == 1 and "@v1.0#" in next(iter(models))  # one key: the resort found the run's embeddings
