"""`smart-sorter sample`: random or stratified, as a CSV to fill in or as folders to drag files into."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest

import smart_sorter
from smart_sorter.cli import main
from smart_sorter.errors import OptionError
from smart_sorter.validation.sampling import draw_sample


@pytest.mark.slow
def test_random_and_stratified_samples(sorted_shapes):
    out, _ = sorted_shapes
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    sample = draw_sample(out, 8, seed=1)
    assert len(sample) == 8 and sample["file"].is_unique and set(sample["file"]) <= set(table["file"])
    assert draw_sample(out, 8, seed=1)["file"].tolist() == sample["file"].tolist()  # the seed repeats it
    spread = draw_sample(out, 8, stratified=True, seed=1)
    counts = spread["destination"].str.split("/").str[0].value_counts()
    assert len(spread) == 8 and len(counts) == table["label"].nunique() and counts.max() - counts.min() <= 1
    assert len(draw_sample(out, 1000)) == 24  # no more than there is
    with pytest.raises(OptionError):
        draw_sample(out, 0)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sorted_files_by_hash(out) -> dict[str, str]:
    """sha256 -> the run's `file` (path under the source), from output.csv."""
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    return dict(zip(table["sha256"], table["file"]))


def revealing_words(out) -> set[str]:
    """Everything that would tell a coder the sorter's label: its label folders and labels."""
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    folders = {destination.split("/")[0] for destination in table["destination"] if destination}
    return (folders | set(table["label"])) - {""}


@pytest.mark.slow
def test_sample_as_csv_is_blind_and_its_copies_can_be_opened(sorted_shapes, tmp_path, capsys):
    out, truth = sorted_shapes
    sheet = tmp_path / "sample.csv"
    assert main(["sample", str(out), "--size", "6", "--csv", str(sheet)]) == 0
    printed = capsys.readouterr().out
    filled = pd.read_csv(sheet, keep_default_na=False, dtype=str)
    assert list(filled.columns) == ["id", "file", "label"] and set(filled["label"]) == {""}
    words = revealing_words(out)
    for column in filled.columns:  # no column reveals the sorter's choice
        assert not any(word in value for value in filled[column] for word in words), column
    copies = tmp_path / "sample_files"
    assert "sample_files" in printed and "cannot sway" in printed
    assert sorted(p.name for p in copies.iterdir()) == sorted(filled["id"])
    by_hash = sorted_files_by_hash(out)
    for _, row in filled.iterrows():  # each id's copy holds exactly the bytes of the file on its row
        assert row["id"].split(".")[0].isdigit() and row["id"].endswith(row["file"].rsplit(".", 1)[-1])
        assert by_hash[sha256(copies / row["id"])] == row["file"]
    filled["label"] = [truth[name] for name in filled["file"]]
    filled.to_csv(sheet, index=False)
    assert main(["evaluate", "--results", str(out), "--truth", str(sheet), "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    assert "Compared 6 hand-labelled file(s)" in printed and "accuracy" in printed and "95% CI" in printed
    assert main(["sample", str(out), "--size", "6", "--csv", str(sheet)]) == 1  # never written over
    assert "already exists" in capsys.readouterr().err
    assert pd.read_csv(sheet, keep_default_na=False)["label"].tolist() == filled["label"].tolist()


@pytest.mark.slow
def test_a_stratified_sample_is_not_grouped_by_label(sorted_shapes):
    out, _ = sorted_shapes
    spread = draw_sample(out, 12, stratified=True, seed=2)
    folders = spread["destination"].str.split("/").str[0].tolist()
    runs = sum(1 for a, b in zip(folders, folders[1:]) if a != b) + 1
    assert runs > len(set(folders))  # shuffled, not one block per label


@pytest.mark.slow
def test_sample_as_folders_then_dragged_into_label_folders_is_truth(sorted_shapes, tmp_path):
    out, truth = sorted_shapes
    hand = tmp_path / "hand"
    assert main(["sample", str(out), "--size", "5", "--folders", str(hand), "--seed", "4"]) == 0
    waiting = sorted((hand / "_to_label").iterdir())
    assert len(waiting) == 5
    words = revealing_words(out)
    assert not any(word in path.name for path in waiting for word in words)  # names do not reveal the label
    assert all(path.stem.isdigit() for path in waiting)
    by_hash = sorted_files_by_hash(out)
    assert {sha256(p) for p in waiting} <= set(by_hash)  # exact copies
    assert (hand / "none").is_dir()
    for index, path in enumerate(waiting):  # a person drags each file into its right folder, renaming one
        target = hand / truth[by_hash[sha256(path)]] / (f"renamed_{index}.png" if index == 0 else path.name)
        target.parent.mkdir(exist_ok=True)
        shutil.move(path, target)
    result = smart_sorter.evaluate(out, hand, bootstrap=0)
    assert result.n == 5 and result.accuracy >= 0.8 and not result.waiting


@pytest.mark.slow
def test_sample_folders_exist_for_every_label_of_the_run_even_without_files(toy_clip, tmp_path):
    from smart_sorter import sort_images
    from tests.toy_clip import TOY_LABELS, write_shapes

    truth = write_shapes(tmp_path / "shapes", 16, seed=21)
    for name, label in truth.items():
        if label == "yellow cross":
            (tmp_path / "shapes" / name).unlink()
    sort_images(tmp_path / "shapes", tmp_path / "sorted", list(TOY_LABELS), model=str(toy_clip), progress_bar=False)
    assert not (tmp_path / "sorted" / "yellow cross").exists() or not any(
        (tmp_path / "sorted" / "yellow cross").iterdir()
    )
    hand = tmp_path / "hand"
    assert main(["sample", str(tmp_path / "sorted"), "--size", "4", "--folders", str(hand)]) == 0
    assert {p.name for p in hand.iterdir()} == {*TOY_LABELS, "none", "_to_label"}


@pytest.mark.slow
def test_a_sample_larger_than_the_run_says_so(sorted_shapes, tmp_path, capsys):
    out, _ = sorted_shapes
    assert main(["sample", str(out), "--size", "100", "--csv", str(tmp_path / "all.csv")]) == 0
    assert "the run has only 24 placed files; the sample holds all 24" in capsys.readouterr().out.casefold()
    assert len(pd.read_csv(tmp_path / "all.csv")) == 24


@pytest.mark.slow
def test_a_sample_is_never_written_into_the_source_folder(sorted_shapes, tmp_path, capsys):
    out, _ = sorted_shapes
    source = tmp_path / "shapes"
    before = sorted(p.name for p in source.iterdir())
    assert main(["sample", str(out), "--size", "3", "--csv", str(source / "sample.csv")]) == 1
    assert main(["sample", str(out), "--size", "3", "--folders", str(source / "hand")]) == 1
    assert "source folder" in capsys.readouterr().err
    assert sorted(p.name for p in source.iterdir()) == before
