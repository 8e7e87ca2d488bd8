"""The run's orchestration with the colour FakeEncoder, in milliseconds: sorting, stopping and resuming,
a finished run run again, another run's labels, dry runs, re-sorting and the Python API's settings.
(The same paths with real models are covered end to end in test_cli, test_safety and test_resorting.)"""

import hashlib
import json
import threading
from pathlib import Path

import pandas as pd
import pytest

import smart_sorter
from smart_sorter import SortOptions
from smart_sorter.errors import OptionError, OtherRunError
from smart_sorter.options import MANIFEST_FILE_NAME, STATE_FOLDER_NAME
from smart_sorter.storage.journal import journal_path, read_journal
from tests.fakes import COLOUR_LABELS, LABEL_OF, write_colour_images

COLOURS = ["red", "green", "blue", "green", "red", "blue", "blue"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def placed(out: Path) -> dict[str, str]:
    """Each placed image by name -> its label folder."""
    return {
        path.name: path.parent.name
        for path in out.rglob("*.jpg")
        if STATE_FOLDER_NAME not in path.relative_to(out).parts
    }


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


@pytest.fixture
def source(tmp_path) -> tuple[Path, dict[str, str]]:
    """Seven coloured JPEGs and their colours."""
    folder = tmp_path / "src"
    return folder, write_colour_images(folder, COLOURS)


def sort(source: Path, out: Path, encoder, labels=COLOUR_LABELS, **options):
    return smart_sorter.sort_images(source, out, labels, encoder=encoder, progress_bar=False, **options)


def test_a_copy_sorts_each_file_by_its_colour_and_leaves_the_source_alone(source, tmp_path, fake_encoder):
    folder, truth = source
    before = {name: sha256(folder / name) for name in truth}
    out = tmp_path / "out"
    result = sort(folder, out, fake_encoder, batch_size=3)
    assert placed(out) == {name: LABEL_OF[colour] for name, colour in truth.items()}
    assert {name: sha256(folder / name) for name in truth} == before
    assert all(sha256(out / LABEL_OF[colour] / name) == before[name] for name, colour in truth.items())
    table = read_table(result.csv_path)
    assert len(table) == 7 and set(table["action"]) == {"copied"} and set(table["status"]) == {"sorted"}
    assert result.label_counts == {"a red thing": 2, "a green thing": 2, "a blue thing": 3}
    manifest = json.loads(result.manifest_path.read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["model"]["id"] == fake_encoder.model_id
    assert fake_encoder.embedded_images == 7 and fake_encoder.image_batches == [3, 3, 1]


def test_a_move_empties_the_source_and_every_hash_arrives(source, tmp_path, fake_encoder):
    folder, truth = source
    before = sorted(sha256(folder / name) for name in truth)
    out = tmp_path / "out"
    result = sort(folder, out, fake_encoder, operation="move")
    assert list(folder.rglob("*.jpg")) == []
    assert sorted(sha256(out / row.destination) for row in result.table.itertuples()) == before
    assert set(result.table["action"]) == {"moved"}


def test_a_run_stopped_after_one_batch_resumes_and_does_each_file_once(source, tmp_path, fake_encoder):
    folder, truth = source
    out = tmp_path / "out"
    stop = threading.Event()
    stop.set()  # asked before the first batch ends: that batch is finished and recorded, no more
    first = sort(folder, out, fake_encoder, operation="move", batch_size=2, stop=stop)
    assert first.stopped_early and len(first.table) == 2 and len(placed(out)) == 2
    assert json.loads(first.manifest_path.read_text())["status"] == "stopped"
    second = sort(folder, out, fake_encoder, operation="move", batch_size=2)
    assert not second.stopped_early and second.resumed_files == 2
    table = read_table(second.csv_path)
    assert sorted(table["file"]) == sorted(truth) and table["file"].is_unique
    assert placed(out) == {name: LABEL_OF[colour] for name, colour in truth.items()}
    assert list(folder.rglob("*.jpg")) == []
    assert fake_encoder.embedded_images == 7  # the files of the first batch were not scored again
    assert len(read_journal(journal_path(out)).done_rows) == 7


def test_a_finished_run_run_again_does_nothing_and_leaves_the_manifest(source, tmp_path, fake_encoder):
    folder, _ = source
    out = tmp_path / "out"
    first = sort(folder, out, fake_encoder)
    manifest, table = (out / MANIFEST_FILE_NAME).read_bytes(), (out / "output.csv").read_bytes()
    loads = fake_encoder.loads
    again = sort(folder, out, fake_encoder)
    assert again.already_done and "Nothing to do" in again.summary()
    assert (out / MANIFEST_FILE_NAME).read_bytes() == manifest and (out / "output.csv").read_bytes() == table
    assert fake_encoder.embedded_images == 7 and fake_encoder.loads == loads  # the model was not even asked for
    assert again.table["file"].tolist() == first.table["file"].tolist()


def test_a_new_file_in_the_source_of_a_finished_run_is_sorted_alone(source, tmp_path, fake_encoder):
    folder, truth = source
    out = tmp_path / "out"
    sort(folder, out, fake_encoder)
    write_colour_images(folder, ["green"], start=20)
    again = sort(folder, out, fake_encoder)
    assert not again.already_done and again.resumed_files == 7 and len(again.table) == 8
    assert fake_encoder.embedded_images == 8
    assert placed(out)["green_20.jpg"] == "a green thing"


def test_other_labels_on_a_finished_destination_point_to_resort(source, tmp_path, fake_encoder):
    folder, _ = source
    out = tmp_path / "out"
    sort(folder, out, fake_encoder)
    before = placed(out)
    with pytest.raises(OtherRunError) as raised:
        sort(folder, out, fake_encoder, ["a red thing", "a blue thing"])
    error = raised.value
    assert error.only_labels_changed and error.differences == ["prompts"]
    assert "smart-sorter resort" in error.message_for("cli") and "smart_sorter.resort(" in str(error)
    assert "Re-sort button" in error.message_for("form")
    assert placed(out) == before


def test_other_settings_on_a_destination_are_refused_with_what_changed(source, tmp_path, fake_encoder):
    folder, _ = source
    out = tmp_path / "out"
    sort(folder, out, fake_encoder)
    with pytest.raises(OtherRunError) as raised:
        sort(folder, out, fake_encoder, operation="move")
    assert not raised.value.only_labels_changed and "operation changed" in raised.value.message_for("cli")
    assert "smart-sorter undo" in raised.value.message_for("cli")
    assert len(list(folder.glob("*.jpg"))) == 7


def test_a_dry_run_plans_and_the_real_run_follows_the_plan(source, tmp_path, fake_encoder):
    folder, truth = source
    out = tmp_path / "out"
    (out / "a red thing").mkdir(parents=True)
    (out / "a red thing" / "red_00.jpg").write_bytes(b"another picture under the same name")
    plan = sort(folder, out, fake_encoder, operation="move", dry_run=True)
    assert plan.dry_run and "Planned 7 of 7" in plan.summary()
    assert len(list(folder.glob("*.jpg"))) == 7 and placed(out) == {"red_00.jpg": "a red thing"}
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["plan.csv", "smart-sorter-plan.json"]
    planned = read_table(plan.csv_path)
    assert set(planned["action"]) == {"planned"} and "a red thing/red_00.jpg" not in set(planned["destination"])
    real = sort(folder, out, fake_encoder, operation="move")
    done = read_table(real.csv_path)
    assert set(done["action"]) == {"moved"}
    assert dict(zip(done["file"], done["destination"])) == dict(zip(planned["file"], planned["destination"]))
    assert fake_encoder.embedded_images == 7  # the plan's embeddings were cached


def test_resort_moves_files_to_their_new_labels_from_the_cache(source, tmp_path, fake_encoder):
    folder, truth = source
    out = tmp_path / "out"
    sort(folder, out, fake_encoder, ["a red thing", "a plain thing"], operation="move")
    assert set(placed(out).values()) == {"a red thing", "a plain thing"}
    embedded = fake_encoder.embedded_images
    result = smart_sorter.resort(out, COLOUR_LABELS, encoder=fake_encoder)
    assert result.moved == 5 and result.unchanged == 2 and result.problems == []
    assert placed(out) == {name: LABEL_OF[colour] for name, colour in truth.items()}
    assert not (out / "a plain thing").exists()
    assert fake_encoder.embedded_images == embedded  # no image through the model again
    table = read_table(result.csv_path)
    assert dict(zip(table["file"], table["label"])) == {name: LABEL_OF[colour] for name, colour in truth.items()}
    assert all((out / destination).is_file() for destination in table["destination"])
    assert json.loads((out / MANIFEST_FILE_NAME).read_text())["labels"] == COLOUR_LABELS


def test_sort_images_takes_options_and_settings_on_top(source, tmp_path, fake_encoder):
    folder, _ = source
    options = SortOptions(operation="move", batch_size=5, top_k=2)
    result = smart_sorter.sort_images(folder, tmp_path / "out", COLOUR_LABELS, options, encoder=fake_encoder,
                                      progress_bar=False, batch_size=4)  # fmt: skip
    recorded = json.loads(result.manifest_path.read_text())["options"]
    assert (recorded["operation"], recorded["batch_size"], recorded["top_k"]) == ("move", 4, 2)
    assert fake_encoder.image_batches == [4, 3]
    assert list(result.table.columns[-2:]) == ["label_2", "score_2"]


def test_an_unknown_setting_names_the_valid_ones(source, tmp_path, fake_encoder):
    folder, _ = source
    with pytest.raises(OptionError, match="Unknown setting\\(s\\) batchsize; the settings are model, operation, "):
        smart_sorter.sort_images(folder, tmp_path / "out", COLOUR_LABELS, encoder=fake_encoder, batchsize=4)
    with pytest.raises(OptionError, match="operation must be one of copy, move; got 'mvoe'"):
        smart_sorter.sort_images(folder, tmp_path / "out", COLOUR_LABELS, encoder=fake_encoder, operation="mvoe")
    assert not (tmp_path / "out").exists()


def test_other_labels_on_a_stopped_run_say_to_finish_or_undo_it_first(source, tmp_path, fake_encoder):
    folder, _ = source
    out = tmp_path / "out"
    stop = threading.Event()
    stop.set()
    sort(folder, out, fake_encoder, batch_size=2, stop=stop)
    with pytest.raises(OtherRunError) as raised:
        sort(folder, out, fake_encoder, ["a red thing", "a blue thing"])
    assert not raised.value.finished and not raised.value.only_labels_changed
    message = raised.value.message_for("cli")
    assert "an unfinished run" in message and "Start it again with its own settings" in message
    assert "smart-sorter undo" in message and "resort" not in message
