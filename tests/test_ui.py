"""The notebook form driven without a kernel: fields set, buttons clicked, outcomes asserted on the
files and the status text (a click swallows a handler's exception, so only outcomes tell)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

from smart_sorter.notebook.form import SorterApp  # noqa: E402
from tests.toy_clip import TOY_LABELS, write_shapes  # noqa: E402


def fill(app: SorterApp, source: Path, destination: Path, model: Path, labels: str = ", ".join(TOY_LABELS)) -> None:
    app.source.value, app.destination.value = str(source), str(destination)
    app.model.value, app.labels.value = str(model), labels


def run(app: SorterApp) -> None:
    app.start.click()
    assert app.wait(timeout=300), "the run did not end"


def test_the_form_has_the_fields_of_the_product_brief_and_builds_without_torch():
    code = (
        "import sys; from smart_sorter.ui import SorterApp; app = SorterApp();"
        "fields = [app.source, app.destination, app.model, app.labels, app.operation];"
        "print(all(hasattr(f, 'value') for f in fields), app.start.description, app.model.value,"
        " 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["True", "Start", "openai/clip-vit-large-patch14", "False", "False"]


@pytest.mark.slow
def test_sorts_through_the_form_and_shows_counts_and_thumbnails(toy_clip, tmp_path):
    truth = write_shapes(tmp_path / "shapes", 24, seed=11)
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip)
    app.batch_size.value = 8
    run(app)
    assert "Finished" in app.status.value, app.status.value
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert len(table) == 24
    right = sum((out / truth[name] / name).is_file() for name in truth)
    assert right >= 22, f"only {right} of 24 shapes in their folder"
    assert app.progress.value == app.progress.max == 24
    for label in TOY_LABELS:
        assert f"<td>{label}</td>" in app.counts.value
    assert app.results.value.count("data:image/jpeg;base64,") >= 4
    assert str(out / "output.csv") in app.status.value
    assert not app.start.disabled and app.stop.disabled


@pytest.mark.slow
def test_stop_ends_after_the_current_batch_and_start_finishes_the_rest(toy_clip, tmp_path):
    write_shapes(tmp_path / "shapes", 20, seed=12)
    source_hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "shapes").iterdir()}
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip)
    app.batch_size.value = 4
    app.start.click()
    app.stop.click()  # while the model loads: the run stops after its first batch
    assert app.wait(timeout=300)
    assert "Stopped" in app.status.value and "4 of 20 files done" in app.status.value, app.status.value
    assert app.result is not None and app.result.stopped_early
    assert len(app.result.table) == 4
    run(app)  # the same settings: the run resumes
    assert "Finished" in app.status.value and "4 of them done by the earlier" in app.status.value, app.status.value
    placed = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("[!.]*/*")}
    assert placed == source_hashes  # every file once, byte for byte
    assert len(pd.read_csv(out / "output.csv")) == 20


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"source": ""}, "Fill in the source folder"),
        ({"labels": "only one"}, "At least two labels"),
        ({"source": "/no/such/folder"}, "does not exist"),
        ({"model": "/no/such/model"}, "/no/such/model"),
    ],
)
@pytest.mark.slow
def test_mistakes_become_sentences_and_the_form_stays_usable(toy_clip, tmp_path, change, expected):
    write_shapes(tmp_path / "shapes", 4, seed=13)
    app = SorterApp()
    fill(app, tmp_path / "shapes", tmp_path / "sorted", toy_clip)
    for name, value in change.items():
        getattr(app, name).value = value
    run(app)
    assert expected in app.status.value, app.status.value
    assert "Traceback" not in app.status.value
    assert not app.start.disabled
    assert not list((tmp_path / "sorted").glob("[!.]*/*"))  # nothing was placed
    assert sorted(p.name for p in (tmp_path / "shapes").iterdir()) == sorted(
        f"shape_{i:03d}.{'png' if i % 2 else 'jpg'}" for i in range(4)
    )


@pytest.mark.slow
def test_label_advice_and_uncertain_and_multi_label_from_the_form(toy_clip, tmp_path):
    write_shapes(tmp_path / "shapes", 12, seed=14)
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip, labels="circle\nsquare\ntriangle: a photo of a triangle\ncross")
    app.multi_label.value = True
    app.threshold.value = 0.99
    run(app)
    assert "Finished" in app.status.value, app.status.value
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert {"tags", "score:circle", "score:cross"} <= set(table.columns)
    assert (table["status"] == "uncertain").any()
    uncertain = table[table["status"] == "uncertain"]["file"]
    assert all((out / "uncertain" / Path(name).name).is_file() for name in uncertain)


def test_in_colab_the_form_offers_to_mount_drive_and_says_there_is_no_gpu(monkeypatch):
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    app = SorterApp()
    assert app.mount_drive is not None
    assert any("No GPU" in getattr(child, "value", "") for child in app.children)
    app.mount_drive.click()
    assert mounted == ["/content/drive"]
    assert app.source.value == "/content/drive/MyDrive/"
    assert "mounted" in app.status.value


@pytest.mark.slow
def test_a_labels_file_path_in_the_labels_box_is_read_as_a_labels_file(toy_clip, tmp_path):
    write_shapes(tmp_path / "shapes", 8, seed=15)
    labels_file = tmp_path / "labels.yaml"
    labels_file.write_text(
        "round:\n  prompts: [This is a photo of red circle.]\n"
        "angular:\n  prompts: [This is a photo of blue square., This is a photo of green triangle.]\n"
        "nothing:\n  prompts: [This is a photo of yellow cross.]\n  negative: true\n"
    )
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip, labels=str(labels_file))
    run(app)
    assert "Finished" in app.status.value, app.status.value
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert len(table) == 8 and set(table["label"]) <= {"round", "angular", "nothing"}
    assert (table[table["label"] == "nothing"]["status"] == "uncertain").all()  # negative: no folder
    assert not (out / "nothing").exists()
    assert "round" in set(table["label"]) and "angular" in set(table["label"])
