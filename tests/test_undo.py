"""`runs.undo.undo_run` on runs sorted by the colour FakeEncoder: copies removed, moves put back to their
exact source path, anything that is not ours or not safe to remove kept and listed."""

import hashlib
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

import smart_sorter
from smart_sorter.errors import DestinationError
from smart_sorter.options import STATE_FOLDER_NAME
from smart_sorter.runs.undo import undo_run
from tests.fakes import COLOUR_LABELS, write_colour_images

COLOURS = ["red", "green", "blue", "red", "blue", "green"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (but the sorter's state) by relative path -> SHA-256."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and STATE_FOLDER_NAME not in path.relative_to(folder).parts
    }


def images(folder: Path) -> list[str]:
    return sorted(name for name in snapshot(folder) if name.endswith(".jpg"))


@pytest.fixture
def source(tmp_path) -> Path:
    """Six coloured JPEGs, half of them in a subfolder."""
    folder = tmp_path / "src"
    write_colour_images(folder, COLOURS[:3])
    write_colour_images(folder / "sub" / "deeper", COLOURS[3:], start=3)
    return folder


def sort(source: Path, out: Path, encoder, labels=COLOUR_LABELS, **options):
    return smart_sorter.sort_images(source, out, labels, encoder=encoder, progress_bar=False, **options)


def test_undo_of_a_copy_removes_its_copies_and_its_label_folders(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    before = snapshot(source)
    sort(source, out, fake_encoder)
    assert len(images(out)) == 6
    result = undo_run(out)
    assert (result.restored, result.removed_copies, result.kept) == (0, 6, [])
    assert snapshot(source) == before
    assert images(out) == [] and not [p for p in out.iterdir() if p.is_dir() and p.name != STATE_FOLDER_NAME]
    assert result.summary().startswith("Put back 0 moved file(s) and removed 6 copy(ies).")


def test_undo_of_a_move_puts_each_file_back_at_its_exact_path(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    before = snapshot(source)
    sort(source, out, fake_encoder, operation="move")
    assert images(source) == []
    result = undo_run(out)
    assert (result.restored, result.removed_copies, result.kept) == (6, 0, [])
    assert snapshot(source) == before
    assert images(out) == [] and sorted(p.name for p in out.iterdir() if p.is_dir()) == [STATE_FOLDER_NAME]


def test_a_copy_whose_source_is_gone_is_kept_and_listed(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    sort(source, out, fake_encoder)
    (source / "red_00.jpg").unlink()
    result = undo_run(out)
    assert result.removed_copies == 5 and len(result.kept) == 1
    assert result.kept[0].startswith("a red thing/red_00.jpg: its source") and "so this copy is kept" in result.kept[0]
    assert images(out) == ["a red thing/red_00.jpg"]  # the only copy left of that picture
    assert "Kept 1 file(s) in the destination:" in result.summary()


def test_a_placed_file_changed_since_is_kept_and_listed(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    sort(source, out, fake_encoder, operation="move")
    edited = out / "a green thing" / "green_01.jpg"
    edited.write_bytes(edited.read_bytes() + b"annotated by the investigator")
    result = undo_run(out)
    assert result.restored == 5
    assert result.kept == ["a green thing/green_01.jpg: missing or changed since it was sorted; nothing done"]
    assert edited.read_bytes().endswith(b"annotated by the investigator")  # never deleted nor moved
    assert not (source / "green_01.jpg").exists() and len(images(source)) == 5


def test_a_moved_file_whose_source_name_was_taken_is_put_back_beside_it(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    sort(source, out, fake_encoder, operation="move")
    (source / "blue_02.jpg").write_bytes(b"a new file under the old name")
    result = undo_run(out)
    assert result.restored == 6 and len(result.kept) == 1
    assert result.kept[0].startswith("a blue thing/blue_02.jpg: put back as blue_02__2.jpg")
    assert (source / "blue_02.jpg").read_bytes() == b"a new file under the old name"


def test_a_users_files_and_folders_in_the_destination_stay(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    (out / "a red thing").mkdir(parents=True)
    (out / "a red thing" / "red_00.jpg").write_bytes((source / "red_00.jpg").read_bytes())  # same bytes, before
    (out / "a blue thing").mkdir()
    (out / "a blue thing" / "notes.txt").write_text("mine")
    before = snapshot(out)
    result = sort(source, out, fake_encoder)
    assert result.table.set_index("file").loc["red_00.jpg", "action"] == "duplicate"
    undone = undo_run(out)
    assert undone.removed_copies == 5 and undone.kept == []
    after = {name: sha for name, sha in snapshot(out).items() if "-undone-" not in name}
    assert after == before  # exactly what was there before the run, nothing else
    assert not (out / "a green thing").exists()


@pytest.mark.parametrize("operation", ["move", "copy"])
def test_undo_after_a_resort_removes_the_old_and_the_new_label_folders(source, tmp_path, fake_encoder, operation):
    out = tmp_path / "out"
    before = snapshot(source)
    sort(source, out, fake_encoder, ["a red thing", "a plain thing"], operation=operation)
    assert {name.split("/")[0] for name in images(out)} == {"a red thing", "a plain thing"}
    resorted = smart_sorter.resort(out, COLOUR_LABELS, encoder=fake_encoder)
    assert resorted.moved == 4  # green and blue leave "a plain thing"
    assert {name.split("/")[0] for name in images(out)} == {"a red thing", "a green thing", "a blue thing"}
    assert not (out / "a plain thing").exists()
    result = undo_run(out)
    assert (result.restored + result.removed_copies, result.kept) == (6, [])
    assert snapshot(source) == before
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [STATE_FOLDER_NAME]


def test_undo_of_a_stopped_run_puts_back_what_it_moved(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    before = snapshot(source)
    stop = threading.Event()
    stop.set()
    stopped = sort(source, out, fake_encoder, operation="move", batch_size=2, stop=stop)
    assert stopped.stopped_early and len(images(out)) == 2 and len(images(source)) == 4
    result = undo_run(out)
    assert (result.restored, result.kept) == (2, [])
    assert snapshot(source) == before and images(out) == []


def test_undo_twice_says_nothing_is_recorded(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    sort(source, out, fake_encoder)
    undo_run(out)
    kept = snapshot(out)
    assert len(kept) == 2 and all(name.startswith(("output-undone-", "smart-sorter-run-undone-")) for name in kept)
    with pytest.raises(DestinationError, match="No smart-sorter run is recorded in .*; nothing for the undo"):
        undo_run(out)
    assert snapshot(out) == kept


def test_undo_of_a_dry_run_says_it_placed_nothing(source, tmp_path, fake_encoder):
    out = tmp_path / "out"
    sort(source, out, fake_encoder, dry_run=True)
    with pytest.raises(DestinationError, match=r"holds only a dry run \(plan.csv\): no file was placed"):
        undo_run(out)
    assert sorted(snapshot(out)) == ["plan.csv", "smart-sorter-plan.json"]


def test_undo_of_a_folder_that_never_held_a_run(tmp_path):
    with pytest.raises(DestinationError, match="No smart-sorter run is recorded"):
        undo_run(tmp_path)


def test_a_name_that_is_not_utf8_is_moved_and_put_back_byte_for_byte(tmp_path, fake_encoder):
    source = tmp_path / "src"
    write_colour_images(source, ["red", "blue"])
    odd = os.fsdecode(b"rouge \xe9t\xe9.jpg")  # Latin-1 bytes, as an old camera or a Windows share names it
    (source / "red_00.jpg").rename(source / odd)
    before = snapshot(source)
    result = sort(source, tmp_path / "out", fake_encoder, operation="move")
    assert (tmp_path / "out" / "a red thing" / odd).is_file() and not (source / odd).exists()
    assert "rouge \\xe9t\\xe9.jpg" in set(pd.read_csv(result.csv_path, dtype=str)["file"])
    assert (undo_run(tmp_path / "out").restored, snapshot(source)) == (2, before)


def test_an_undo_killed_while_renaming_the_tables_is_finished_by_running_it_again(
    source, tmp_path, fake_encoder, monkeypatch
):
    out = tmp_path / "out"
    before = snapshot(source)
    sort(source, out, fake_encoder, operation="move")
    renamed = []
    real_rename = Path.rename

    def killed_at_the_journal(path, target):
        if path.name == "journal.jsonl":
            raise KeyboardInterrupt  # stands in for a kill after the tables, before the journal
        renamed.append(Path(target).name)
        return real_rename(path, target)

    monkeypatch.setattr(Path, "rename", killed_at_the_journal)
    with pytest.raises(KeyboardInterrupt):
        undo_run(out)
    monkeypatch.undo()
    assert snapshot(source) == before and images(out) == []
    assert renamed and not (out / "output.csv").exists()
    with pytest.raises(DestinationError, match=r"An undo of the run in .* was interrupted.*smart-sorter undo"):
        sort(source, out, fake_encoder, operation="move")
    assert snapshot(source) == before and images(out) == []
    result = undo_run(out)
    assert (result.restored, result.removed_copies, result.kept) == (0, 0, [])
    kept = sorted(snapshot(out))
    stamp = renamed[0].removeprefix("output-undone-").removesuffix(".csv")
    assert kept == sorted(renamed)  # output.csv and the manifest, under their first names
    assert list((out / STATE_FOLDER_NAME).glob(f"journal-undone-{stamp}.jsonl"))
    sort(source, out, fake_encoder)  # the destination is free for a new run
    assert len(images(out)) == 6
