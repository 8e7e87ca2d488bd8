"""The review widget driven without a kernel: decisions saved as made, applied without losing a file."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

import smart_sorter  # noqa: E402
from smart_sorter.cli import main  # noqa: E402
from smart_sorter.notebook.review import ReviewApp  # noqa: E402
from smart_sorter.runs.corrections import read_corrections  # noqa: E402


def placed_hashes(out):
    """The bytes in the label folders, as a sorted list of hashes."""
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("[!.]*/*"))


@pytest.mark.slow
def test_least_confident_first_with_label_and_runners_up(sorted_shapes):
    out, _ = sorted_shapes
    app = ReviewApp(out)
    scores = app.queue["score"].tolist()
    assert scores == sorted(scores) and len(scores) == 24
    assert app.image.value[:2] == b"\xff\xd8"  # a JPEG preview of the first file
    assert app.queue.iloc[0]["label"] in app.info.value and "next:" in app.info.value
    assert [button.tooltip for button in app.label_buttons] == list(app.categories)


@pytest.mark.slow
def test_review_saves_each_decision_and_applies_corrections_without_losing_a_file(sorted_shapes, tmp_path):
    out, truth = sorted_shapes
    source = out.parent / "shapes"
    before = placed_hashes(out)
    app = ReviewApp(out)
    first, second, third, fourth = (app.queue.iloc[i] for i in range(4))
    app.right.click()  # the first is right
    other = next(label for label in app.categories if label != second["label"])
    app.label_buttons[app.categories.index(other)].click()  # the second is corrected by its button
    app.key_input.value = "w"  # the third fits no label: the key w
    app.key_input.value = "s"  # the fourth is skipped
    assert app.key_input.value == ""
    saved = read_corrections(out / "corrections.csv")  # on disk already, before anything is applied
    assert {name: row["verdict"] for name, row in saved.items()} == {
        first["file"]: "right",
        second["file"]: "corrected",
        third["file"]: "wrong",
    }
    assert saved[second["file"]]["label"] == other and saved[third["file"]]["label"] == "none"
    assert "3 reviewed" in app.counter.value and app.current["file"] != fourth["file"]

    app.apply.click()
    assert "Moved 2 corrected file(s)" in app.status.value, app.status.value
    name2, name3 = second["file"], third["file"]
    assert (out / other / name2).is_file() and (out / "uncertain" / name3).is_file()
    assert placed_hashes(out) == before  # the same bytes, each once
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    row2 = table[table["file"] == name2].iloc[0]
    assert (
        row2["label"] == other
        and row2["destination"] == f"{other}/{name2}"
        and row2["corrected_from"] == second["_predicted"]
    )
    assert table[table["file"] == name3].iloc[0]["status"] == "uncertain"
    assert len(table) == 24

    evaluation = smart_sorter.evaluate(out / "output.csv", out / "corrections.csv", bootstrap=0)
    assert evaluation.n == 3  # the corrections are truth for evaluate, which measures what the sorter said:
    assert evaluation.accuracy == pytest.approx(1 / 3)  # one right, one corrected, one wrong

    ReviewApp(out)  # a new session continues where this one stopped
    assert len(ReviewApp(out).queue) == 21

    assert main(["undo", str(out)]) == 0  # the corrected moves are undone too: every file back at its source
    assert sorted(p.name for p in source.iterdir()) == sorted(truth)


@pytest.mark.slow
def test_apply_refuses_a_label_the_run_does_not_have(sorted_shapes):
    out, _ = sorted_shapes
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    (out / "corrections.csv").write_text(
        "file,predicted,label,verdict,reviewed\n" + f"{table['file'][0]},x,purple hexagon,corrected,now\n"
    )
    result = ReviewApp(out)
    result.apply.click()
    assert "not one of the run's labels" in result.status.value
    assert (out / table["destination"][0]).is_file()
