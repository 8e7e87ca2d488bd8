"""The notebook form driven without a kernel: fields set, buttons clicked, outcomes asserted on the
files and the status text (a click swallows a handler's exception, so only outcomes tell)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

import smart_sorter  # noqa: E402
from smart_sorter import SortOptions  # noqa: E402
from smart_sorter.notebook.form import FormSettings, SorterApp  # noqa: E402
from tests.toy_clip import TOY_LABELS, write_shapes  # noqa: E402

LONG = "a photo of something that is neither a circle nor a square nor a triangle nor a cross at all"


def fill(app: SorterApp, source: Path, destination: Path, model: Path, labels: str = ", ".join(TOY_LABELS)) -> None:
    app.source.value, app.destination.value = str(source), str(destination)
    app.model.value, app.labels.value = str(model), labels


def run(app: SorterApp, button=None) -> None:
    (button or app.start).click()
    assert app.wait(timeout=300), "the run did not end"


def hashes(folder: Path, pattern: str = "*") -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob(pattern) if p.is_file()}


def fake_colab(monkeypatch) -> list[str]:
    """A stand-in `google.colab` whose `drive.mount` records the mount point."""
    mounted: list[str] = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    return mounted


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
    fill(app, tmp_path / "shapes", out, toy_clip, labels="circle, square, triangle, cross, " + LONG)
    app.multi_label.value = True
    app.threshold.value = 0.99
    run(app)
    assert "Finished" in app.status.value, app.status.value
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert {"tags", "score:circle", "score:cross"} <= set(table.columns)
    assert (table["status"] == "uncertain").any()
    uncertain = table[table["status"] == "uncertain"]["file"]
    assert all((out / "uncertain" / Path(name).name).is_file() for name in uncertain)
    # the advice (single-word labels here) is one folded list, not lines between the status and the counts
    notes = app.advice.value.count("<li>")
    assert notes >= 1 and "single-word" in app.advice.value.lower() and "characters long" in app.advice.value
    assert app.advice_box.get_title(0) == f"Advice ({notes})"
    assert app.advice_box.layout.display is None and app.advice_box.selected_index is None
    assert "<li>" not in app.status.value
    order = list(app.children)
    assert order.index(app.status) < order.index(app.counts) < order.index(app.advice_box)


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


def test_the_form_shows_the_defaults_of_sort_options_and_builds_sort_options(tmp_path):
    fields = ("model", "operation", "batch_size", "top_k", "template", "preprocess", "precision", "multi_label",
              "copy_tags", "dry_run")  # fmt: skip

    def shown(app: SorterApp) -> dict[str, object]:
        return {name: getattr(app, name).value for name in fields}

    app = SorterApp(source="in", destination="out", labels="a cat, a dog")
    defaults = SortOptions()
    assert shown(app) == {name: getattr(defaults, name) for name in fields}
    settings = app.settings()
    assert isinstance(settings, FormSettings) and settings.options == defaults
    assert (settings.source, settings.destination, settings.labels) == (Path("in"), Path("out"), "a cat, a dog")

    # other starting options are what the form shows and gives back: the widgets hold no defaults of their own
    chosen = SortOptions(model="my/model", operation="move", batch_size=7, top_k=5, template="a {}", preprocess="exact",
                         threshold=0.3, multi_label=True, copy_tags=True, dry_run=True, device="cpu")  # fmt: skip
    app = SorterApp(source="in", destination="out", labels="a, b", options=chosen)
    assert shown(app) == {name: getattr(chosen, name) for name in fields}
    assert app.threshold.value == 0.3
    assert app.settings().options == chosen  # device, which the form does not show, is kept too
    app.batch_size.value, app.threshold.value = 16, 0.0
    assert app.settings().options == chosen.with_changes(batch_size=16, threshold=None)
    app.preprocess.value, app.precision.value = "fast", "bf16"
    assert app.settings().options.precision == "bf16"


def test_a_bad_setting_is_a_sentence_before_anything_runs(tmp_path):
    app = SorterApp(source=str(tmp_path), destination=str(tmp_path / "out"), labels="a cat, a dog")
    app.template.value = "a photo of"
    app.start.click()
    assert not app.running and "needs exactly one {}" in app.status.value, app.status.value
    assert not (tmp_path / "out").exists()


def test_widget_parts_that_differ_between_ipywidgets_7_and_8():
    import ipywidgets

    app = SorterApp()
    assert ipywidgets.__version__.split(".")[0] in ("7", "8")
    assert app.advanced.get_title(0) == "Advanced settings" and app.advanced.selected_index is None
    assert app.source.style.description_width == "140px"
    assert app.model.ensure_option is False and app.model.value in app.model.options
    # FontAwesome 4 (ipywidgets 7) and 5 (ipywidgets 8) both know these; brand icons (google) they do not share
    buttons = [app.start, app.stop, app.resort, app.undo]
    assert {button.icon for button in buttons} <= {"play", "stop", "retweet", "undo", "folder-open"}


def test_a_finished_run_run_again_says_it_was_already_done(toy_clip, tmp_path):
    write_shapes(tmp_path / "shapes", 8, seed=16)
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip)
    run(app)
    assert "Finished" in app.status.value, app.status.value
    results = [*out.glob("[!.]*/*"), out / "output.csv"]  # the label folders and the table, not the lock
    before = {p: p.stat().st_mtime_ns for p in results}
    run(app)
    assert "Already done: all 8 files were sorted before; nothing was changed" in app.status.value, app.status.value
    assert app.result.already_done and app.results.value.count("data:image/jpeg") >= 4
    assert {p: p.stat().st_mtime_ns for p in [*out.glob("[!.]*/*"), out / "output.csv"]} == before


def test_a_busy_destination_is_said_before_the_model_loads(tmp_path):
    from smart_sorter.storage.lock import DestinationLock

    write_shapes(tmp_path / "shapes", 2, seed=5)
    (tmp_path / "out").mkdir()
    app = SorterApp()
    fill(app, tmp_path / "shapes", tmp_path / "out", tmp_path / "no-such-model")
    with DestinationLock(tmp_path / "out", "sorting run"):
        run(app)
    assert "is in use by a sorting run" in app.status.value and "nothing was changed" in app.status.value
    assert not app.start.disabled and app.resort.layout.display == "none"


def test_a_dry_run_says_planned_points_at_the_plan_and_shows_no_thumbnails(toy_clip, tmp_path):
    write_shapes(tmp_path / "shapes", 8, seed=17)
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip)
    app.dry_run.value = True
    run(app)
    assert app.status.value.count("Planned") == 1 and "would be sorted" in app.status.value, app.status.value
    assert str(out / "plan.csv") in app.status.value and (out / "plan.csv").is_file()
    assert app.results.value == "" and "<td>" in app.counts.value
    assert not list(out.glob("[!.]*/*"))  # no file placed


def test_other_labels_on_a_finished_destination_offer_re_sort_which_moves_the_files(toy_clip, tmp_path):
    truth = write_shapes(tmp_path / "shapes", 12, seed=18)
    source = hashes(tmp_path / "shapes")
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip)
    assert app.resort.layout.display == "none"
    run(app)
    assert "Finished" in app.status.value, app.status.value
    placed = {p.relative_to(out) for p in out.glob("[!.]*/*")}

    renamed = {label: label.split()[1] + "s" for label in TOY_LABELS}  # red circle -> circles, ...
    app.labels.value = "\n".join(f"{name}: This is a photo of {label}." for label, name in renamed.items())
    run(app)
    assert "the Re-sort button" in app.status.value, app.status.value
    assert {p.relative_to(out) for p in out.glob("[!.]*/*")} == placed  # refused: nothing changed yet
    assert app.resort.layout.display is None and not app.resort.disabled

    run(app, app.resort)
    assert "Re-sorted" in app.status.value and "changed folder" in app.status.value, app.status.value
    assert app.resort.layout.display == "none"
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert set(table["label"]) <= set(renamed.values())
    assert all((out / row.label / row.file).is_file() for row in table.itertuples())  # where the table says
    right = sum((out / renamed[label] / name).is_file() for name, label in truth.items())
    assert right >= 11, f"only {right} of 12 shapes in their new folder"
    assert not any((out / label).exists() for label in TOY_LABELS)  # the old folders are gone
    assert hashes(out, "[!.]*/*") == source  # every file once, byte for byte
    assert hashes(tmp_path / "shapes") == source  # copies: the source untouched
    assert "<td>circles</td>" in app.counts.value and app.results.value.count("data:image/jpeg") >= 2


def test_undo_asks_for_a_second_click_then_removes_the_copies(toy_clip, tmp_path):
    write_shapes(tmp_path / "shapes", 8, seed=19)
    source = hashes(tmp_path / "shapes")
    out = tmp_path / "sorted"
    app = SorterApp()
    fill(app, tmp_path / "shapes", out, toy_clip)
    run(app)
    assert len(hashes(out, "[!.]*/*")) == 8

    app.undo.click()  # the first click only asks
    assert app.undo.description == "Confirm undo" and "Confirm undo" in app.status.value
    assert len(hashes(out, "[!.]*/*")) == 8
    app.destination.value = str(tmp_path / "elsewhere")  # changing the destination cancels
    assert app.undo.description == "Undo"
    app.destination.value = str(out)
    app.undo.click()
    assert len(hashes(out, "[!.]*/*")) == 8
    run(app, app.undo)  # the second click on the same destination undoes
    assert "removed 8 copy" in app.status.value, app.status.value
    assert hashes(out, "[!.]*/*") == {}
    assert hashes(tmp_path / "shapes") == source and app.undo.description == "Undo"

    run(app)  # the destination is free again: the same sorting runs anew
    assert "Finished" in app.status.value, app.status.value
    assert hashes(out, "[!.]*/*") == source


def test_in_colab_mounting_drive_proposes_drive_folders_and_keeps_the_cache_there(monkeypatch):
    monkeypatch.delenv("SMART_SORTER_HOME", raising=False)
    mounted = fake_colab(monkeypatch)
    app = SorterApp(source="imgs", destination="sorted-imgs", labels="a, b")
    assert app.mount_drive is not None and app.mount_drive.layout.width == "auto"  # the label is not cut off
    assert "No GPU" in app.gpu_note.value
    assert "vanish with the runtime" in app.drive_warning.value  # a local destination, in Colab
    app.mount_drive.click()
    assert mounted == ["/content/drive"] and "mounted" in app.status.value
    assert app.source.value == "/content/drive/MyDrive/"
    assert app.destination.value == "/content/drive/MyDrive/sorted-images"
    assert app.drive_warning.value == ""
    assert os.environ["SMART_SORTER_HOME"] == "/content/drive/MyDrive/smart-sorter-cache"
    assert "smart-sorter-cache" in app.status.value
    app.destination.value = "/content/sorted"
    assert "vanish with the runtime" in app.drive_warning.value
    app.destination.value = "/content/drive/MyDrive/cases/sorted"
    assert app.drive_warning.value == ""


def test_in_colab_mounting_drive_keeps_what_the_user_chose(monkeypatch, tmp_path):
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "my-cache"))
    fake_colab(monkeypatch)
    app = SorterApp(source="imgs", destination="sorted-imgs")
    app.source.value, app.destination.value = "/content/photos", "/content/drive/MyDrive/out"
    app.mount_drive.click()
    assert (app.source.value, app.destination.value) == ("/content/photos", "/content/drive/MyDrive/out")
    assert os.environ["SMART_SORTER_HOME"] == str(tmp_path / "my-cache")


def test_outside_colab_there_is_no_drive_button_and_no_warning(monkeypatch):
    monkeypatch.setattr(smart_sorter.notebook.form, "in_colab", lambda: False)
    app = SorterApp(destination="sorted-imgs")
    assert app.mount_drive is None and app.drive_warning.value == ""
