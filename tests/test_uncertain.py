"""The uncertain bucket: weak best labels go to uncertain/ instead of a label folder."""

import pytest

from smart_sorter import sort_images
from smart_sorter.cli import main
from smart_sorter.core.scoring import Ranking, is_uncertain
from smart_sorter.errors import LabelError, OptionError


@pytest.mark.parametrize(
    "probabilities, threshold, margin, expected",
    [
        ((0.6, 0.3), 0.5, None, False),
        ((0.4, 0.3), 0.5, None, True),
        ((0.6, 0.5), None, 0.2, True),
        ((0.6, 0.3), None, 0.2, False),
        ((0.6,), None, 0.2, False),
        ((0.6, 0.5), None, None, False),
    ],
)
def test_is_uncertain(probabilities, threshold, margin, expected):
    ranking = Ranking(tuple(range(len(probabilities))), probabilities)
    assert is_uncertain(ranking, threshold=threshold, margin=margin) is expected


def test_a_threshold_sends_weak_files_to_uncertain(photo_folder, tiny_clip, tmp_path):
    result = sort_images(photo_folder, tmp_path / "out", "cat,dog,bird", model=str(tiny_clip), threshold=0.999,
                         progress_bar=False)  # fmt: skip
    table = result.table
    assert set(table["status"]) == {"uncertain"}
    assert all(dest.startswith("uncertain/") for dest in table["destination"])
    assert set(table["label"]) <= {"cat", "dog", "bird"}  # the best guess stays visible
    assert len(list((tmp_path / "out" / "uncertain").iterdir())) == 6
    assert result.label_counts["uncertain"] == 6


@pytest.mark.slow
def test_the_toy_model_is_sure_of_clear_shapes(toy_clip, tmp_path, capsys):
    from tests.toy_clip import TOY_LABELS, write_shapes

    truth = write_shapes(tmp_path / "shapes", 24, seed=7)
    assert main(["--source", str(tmp_path / "shapes"), "--destination", str(tmp_path / "out"), "--labels",
                 ",".join(TOY_LABELS), "--model", str(toy_clip), "--margin", "0.3", "--quiet"]) == 0  # fmt: skip
    placed = {path.name: path.parent.name for path in (tmp_path / "out").rglob("shape_*")}
    assert placed.keys() == truth.keys()
    sure = [name for name, folder in placed.items() if folder != "uncertain"]
    assert len(sure) >= 18
    assert all(placed[name] == truth[name] for name in sure)
    assert "uncertain" in capsys.readouterr().out or len(sure) == 24


def test_a_label_named_uncertain_is_refused_when_the_bucket_is_on(photo_folder, tiny_clip, tmp_path):
    with pytest.raises(LabelError, match="uncertain"):
        sort_images(photo_folder, tmp_path / "out", "uncertain,sure", model=str(tiny_clip), threshold=0.5,
                    progress_bar=False)  # fmt: skip
    with pytest.raises(OptionError, match="between 0 and 1"):
        sort_images(photo_folder, tmp_path / "out", "a,b", model=str(tiny_clip), threshold=1.5, progress_bar=False)


def test_a_labels_file_can_set_a_threshold_per_category(photo_folder, tiny_clip, tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        "strict:\n  prompts: [a photo of a cat]\n  threshold: 0.999\nlenient:\n  prompts: [a photo of a dog]\n"
    )
    result = sort_images(photo_folder, tmp_path / "out", labels, model=str(tiny_clip), progress_bar=False)
    table = result.table
    assert (table[table["label"] == "strict"]["status"] == "uncertain").all()
    assert (table[table["label"] == "lenient"]["status"] == "sorted").all()
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.name.startswith(".")) == sorted(
        {"uncertain" for s in table["status"] if s == "uncertain"}
        | {"lenient" for s in table["label"] if s == "lenient"}
    )


@pytest.mark.parametrize("value", [1.5, "high", True])
def test_bad_per_category_thresholds_are_refused(value):
    from smart_sorter.core.labels import labels_from_mapping

    with pytest.raises(LabelError, match="between 0 and 1"):
        labels_from_mapping({"a": {"prompts": ["x"], "threshold": value}, "b": ["y"]})


@pytest.mark.slow
def test_a_negative_category_sends_what_it_wins_to_uncertain(toy_clip, tmp_path):
    from tests.toy_clip import write_shapes

    truth = write_shapes(tmp_path / "shapes", 24, seed=5)
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        "red circle: [This is a photo of red circle.]\n"
        "blue square: [This is a photo of blue square.]\n"
        "none of these:\n  negative: true\n"
        "  prompts: [This is a photo of green triangle., This is a photo of yellow cross.]\n"
    )
    result = sort_images(tmp_path / "shapes", tmp_path / "out", labels, model=str(toy_clip), progress_bar=False)
    placed = {path.name: path.parent.name for path in (tmp_path / "out").rglob("shape_*")}
    expected = {name: label if label in ("red circle", "blue square") else "uncertain" for name, label in truth.items()}
    assert sum(placed[name] == folder for name, folder in expected.items()) >= 22
    assert not (tmp_path / "out" / "none of these").exists()
    negative_rows = result.table[result.table["label"] == "none of these"]
    assert (negative_rows["status"] == "uncertain").all() and len(negative_rows) >= 8


def test_every_category_negative_is_refused():
    from smart_sorter.core.labels import labels_from_mapping

    with pytest.raises(LabelError, match="at least one must be a real label"):
        labels_from_mapping({"a": {"prompts": ["x"], "negative": True}, "b": {"prompts": ["y"], "negative": True}})
