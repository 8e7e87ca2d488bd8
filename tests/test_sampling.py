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


def test_sample_as_csv_leaves_the_label_empty_for_an_unswayed_coder(sorted_shapes, tmp_path, capsys):
    out, truth = sorted_shapes
    sheet = tmp_path / "sample.csv"
    assert main(["sample", str(out), "--size", "6", "--csv", str(sheet)]) == 0
    filled = pd.read_csv(sheet, keep_default_na=False)
    assert list(filled.columns) == ["file", "destination", "label"] and set(filled["label"]) == {""}
    assert all((out / destination).is_file() for destination in filled["destination"])
    filled["label"] = [truth[name] for name in filled["file"]]
    filled.to_csv(sheet, index=False)
    assert main(["evaluate", "--results", str(out), "--truth", str(sheet), "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    assert "Compared 6 hand-labelled file(s)" in printed and "accuracy" in printed and "95% CI" in printed
    assert main(["sample", str(out), "--size", "6", "--csv", str(sheet)]) == 1  # never written over


def test_sample_as_folders_then_dragged_into_label_folders_is_truth(sorted_shapes, tmp_path):
    out, truth = sorted_shapes
    hand = tmp_path / "hand"
    assert main(["sample", str(out), "--size", "5", "--folders", str(hand), "--seed", "4"]) == 0
    waiting = sorted((hand / "_to_label").iterdir())
    assert len(waiting) == 5
    sorted_bytes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("[!.]*/*")}
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in waiting} <= sorted_bytes  # exact copies
    assert (hand / "none").is_dir()
    for index, path in enumerate(waiting):  # a person drags each file into its right folder, renaming one
        target = hand / truth[path.name] / (f"renamed_{index}.png" if index == 0 else path.name)
        target.parent.mkdir(exist_ok=True)
        shutil.move(path, target)
    result = smart_sorter.evaluate(out, hand, bootstrap=0)
    assert result.n == 5 and result.accuracy >= 0.8
