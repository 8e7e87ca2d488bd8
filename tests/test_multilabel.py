"""Multi-label mode: each category scored on its own; every category above its threshold is a tag."""

import numpy as np
import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.core.scoring import ScoreHead, normalize, score_images


def test_clip_categories_are_scored_each_against_something_else():
    rng = np.random.default_rng(1)
    images, prompts, negative = rng.normal(size=(4, 8)), rng.normal(size=(3, 8)), rng.normal(size=8)
    scores = score_images(images, prompts, (0, 1, 2), ScoreHead(scale=20.0), negative_embedding=negative)
    cosine = normalize(images) @ normalize(prompts).T
    against = normalize(images) @ normalize(negative)
    expected = 1 / (1 + np.exp(20.0 * (against[:, None] - cosine)))
    np.testing.assert_allclose(scores.independent, expected, rtol=1e-5)
    assert not np.allclose(scores.independent.sum(axis=1), 1.0)  # not a softmax over categories


def test_siglip_tags_are_its_own_sigmoid_scores():
    rng = np.random.default_rng(2)
    scores = score_images(rng.normal(size=(3, 8)), rng.normal(size=(2, 8)), (0, 1),
                          ScoreHead(scale=10.0, bias=-2.0, activation="sigmoid"))  # fmt: skip
    np.testing.assert_array_equal(scores.independent, scores.probabilities)


@pytest.mark.parametrize("model_fixture", ["tiny_clip", "tiny_siglip"])
def test_multi_label_rows_tag_every_category_above_the_threshold(request, model_fixture, photo_folder, tmp_path):
    model = request.getfixturevalue(model_fixture)
    out = tmp_path / "out"
    assert main(["--source", str(photo_folder), "--destination", str(out), "--labels", "cat,dog,bird",
                 "--model", str(model), "--multi-label", "--threshold", "0.3", "--quiet"]) == 0  # fmt: skip
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert {"tags", "score:cat", "score:dog", "score:bird"} <= set(table.columns)
    for _, row in table.iterrows():
        expected = [c for c in ("cat", "dog", "bird") if float(row[f"score:{c}"]) >= 0.3]
        assert set(row["tags"].split("; ") if row["tags"] else []) == set(expected)
        if expected:
            assert row["status"] == "sorted" and row["label"] == row["tags"].split("; ")[0]
            assert row["destination"].startswith(row["label"] + "/")
        else:
            assert row["status"] == "uncertain" and row["destination"].startswith("uncertain/")


def sha256_files(folder):
    import hashlib

    return sorted(hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file())


def placed_files(out):
    return sorted(path.relative_to(out).as_posix() for path in out.glob("[!.]*/*"))


def test_copy_to_tags_puts_a_file_in_every_tagged_folder_and_undo_removes_them(tiny_clip, photo_folder, tmp_path):
    before = sha256_files(photo_folder)
    out = tmp_path / "out"
    # threshold 0: every category is a tag, so every file belongs in all three folders
    assert main(["--source", str(photo_folder), "--destination", str(out), "--labels", "cat,dog,bird",
                 "--model", str(tiny_clip), "--multi-label", "--threshold", "0", "--copy-to-tags",
                 "--operation", "move", "--quiet"]) == 0  # fmt: skip
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert "copies" in table.columns and len(table) == 6
    for _, row in table.iterrows():
        name = row["file"].split("/")[-1]
        copies = row["copies"].split("; ")
        assert sorted([row["destination"], *copies]) == sorted(f"{tag}/{name}" for tag in ("cat", "dog", "bird"))
    assert sorted(set(sha256_files(out / "cat")) | set(sha256_files(out / "dog"))) == sorted(set(before))
    assert not list(photo_folder.rglob("*.jpg"))  # moved
    assert main(["undo", str(out)]) == 0
    assert sha256_files(photo_folder) == before
    assert not [path for path in placed_files(out) if path.split("/")[0] in ("cat", "dog", "bird")]


def test_copies_interrupted_midway_are_finished_once_and_undone(tiny_clip, photo_folder, tmp_path, monkeypatch):
    from smart_sorter import sort_images
    from smart_sorter.storage import organising

    real_place_file, calls = organising.place_file, []

    def place_then_crash(source, folder, operation, sha256, **kwargs):
        placement = real_place_file(source, folder, operation, sha256, **kwargs)
        calls.append(placement)
        if len(calls) == 5:  # the second file's first copy is made, and then the process dies
            raise KeyboardInterrupt
        return placement

    monkeypatch.setattr(organising, "place_file", place_then_crash)
    settings = dict(model=str(tiny_clip), multi_label=True, threshold=0.0, copy_tags=True, progress_bar=False)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        sort_images(photo_folder, out, "cat,dog,bird", batch_size=2, **settings)
    monkeypatch.setattr(organising, "place_file", real_place_file)
    result = sort_images(photo_folder, out, "cat,dog,bird", batch_size=2, **settings)
    assert result.resumed_files >= 1
    names = sorted(path.name for path in photo_folder.rglob("*.jpg"))
    for tag in ("cat", "dog", "bird"):
        assert sorted(path.name for path in (out / tag).iterdir()) == names  # each once: no name__2
    assert not [path for path in out.rglob("*") if ".smart-sorter-" in path.name]  # no temporary files
    assert main(["undo", str(out)]) == 0
    assert not [path for path in out.glob("[!.]*/*") if path.parent.name in ("cat", "dog", "bird")]
    assert sorted(path.name for path in photo_folder.rglob("*.jpg")) == names


def test_copy_to_tags_needs_multi_label(tiny_clip, photo_folder, tmp_path, capsys):
    assert main(["--source", str(photo_folder), "--destination", str(tmp_path / "out"), "--labels", "cat,dog",
                 "--model", str(tiny_clip), "--copy-to-tags", "--quiet"]) == 1  # fmt: skip
    assert "needs multi-label mode" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resort_keeps_multi_label_mode_and_tags_with_the_new_labels(tiny_clip, photo_folder, tmp_path):
    out = tmp_path / "out"
    assert main(["--source", str(photo_folder), "--destination", str(out), "--labels", "cat,dog",
                 "--model", str(tiny_clip), "--multi-label", "--threshold", "0.3", "--quiet"]) == 0  # fmt: skip
    assert main(["resort", str(out), "--labels", "red,green,blue", "--threshold", "0.3"]) == 0
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert {"tags", "score:red", "score:green", "score:blue"} <= set(table.columns)
    for _, row in table.iterrows():
        expected = {c for c in ("red", "green", "blue") if float(row[f"score:{c}"]) >= 0.3}
        assert set(filter(None, row["tags"].split("; "))) == expected
        folder = row["label"] if expected else "uncertain"
        assert row["destination"].startswith(folder + "/") and (out / row["destination"]).is_file()
    assert len(placed_files(out)) == 6


def test_resort_of_a_run_with_tag_copies_is_refused(tiny_clip, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--source", str(photo_folder), "--destination", str(out), "--labels", "cat,dog",
                 "--model", str(tiny_clip), "--multi-label", "--copy-to-tags", "--quiet"]) == 0  # fmt: skip
    assert main(["resort", str(out), "--labels", "red,green"]) == 1
    assert "not supported" in capsys.readouterr().err
