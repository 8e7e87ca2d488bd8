"""Files are evidence: no loss, no overwrite, resumable, undoable; hostile labels and images."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from smart_sorter import sort_images
from smart_sorter.cli import main
from smart_sorter.errors import DestinationError, LabelError
from smart_sorter.storage.journal import journal_path
from smart_sorter.storage.placing import TEMP_PREFIX
from tests.factories import image_bytes, noise_image

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(folder: Path) -> Counter:
    return Counter(sha256(p) for p in folder.rglob("*") if p.is_file() and ".smart-sorter" not in p.parts
                   and p.suffix in (".jpg", ".png"))  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def make_photos(folder: Path, count: int, *, clashing_names: bool = False) -> Path:
    for index in range(count):
        sub = folder / f"part{index % 3}" if clashing_names else folder
        sub.mkdir(parents=True, exist_ok=True)
        name = f"img_{index // 3 if clashing_names else index}.jpg"
        (sub / name).write_bytes(image_bytes(noise_image(index, size=(24, 24)), "JPEG"))
    return folder


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def test_undo_of_a_copy_removes_only_the_copies_it_made(tmp_path, tiny_clip):
    source = make_photos(tmp_path / "src", 9, clashing_names=True)
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "img_0.jpg").write_bytes(b"already here before the run")
    before_source, before_out = snapshot(source), snapshot(out)
    sort_images(source, out, "a,b", model=str(tiny_clip), progress_bar=False)
    assert len([p for p in out.rglob("img_*") if p.is_file()]) == 10
    assert main(["undo", str(out)]) == 0
    assert snapshot(source) == before_source
    remaining = {k: v for k, v in snapshot(out).items() if not k.startswith(".smart-sorter/") and "undone" not in k}
    assert remaining == before_out  # exactly what was there before, untouched


def test_undo_of_a_move_puts_every_file_back(tmp_path, tiny_clip):
    source = make_photos(tmp_path / "src", 9, clashing_names=True)
    before = snapshot(source)
    out = tmp_path / "out"
    sort_images(source, out, "a,b", model=str(tiny_clip), operation="move", progress_bar=False)
    assert not list(source.rglob("*.jpg"))
    assert main(["undo", str(out)]) == 0
    assert snapshot(source) == before
    assert not [p for p in out.rglob("*.jpg")]
    assert main(["undo", str(out)]) == 1  # nothing left to undo: said, not crashed


def test_a_dry_run_is_a_plan_that_the_real_run_may_follow(tmp_path, tiny_clip):
    source = make_photos(tmp_path / "src", 4)
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "img_0.jpg").write_bytes(b"a different file already there")
    result = sort_images(source, out, "a,b", model=str(tiny_clip), dry_run=True, operation="move", progress_bar=False)
    assert len(list(source.glob("*.jpg"))) == 4
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["plan.csv", "smart-sorter-plan.json"]
    assert "Planned" in result.summary() and "no file was placed" in result.summary()
    plan = read_table(result.csv_path)
    assert set(plan["action"]) == {"planned"} and set(plan["label"]) <= {"a", "b"} and len(plan) == 4
    # the plan shows where each file would go: its label's folder, a free name
    assert all(row.destination.split("/")[0] == row.label for row in plan.itertuples())
    assert "a/img_0.jpg" not in set(plan["destination"]) and plan["destination"].is_unique
    assert main(["undo", str(out)]) == 1 and main(["resort", str(out), "--labels", "x,y"]) == 1
    real = sort_images(source, out, "a,b", model=str(tiny_clip), operation="move", progress_bar=False)
    done = read_table(real.csv_path)
    assert set(done["action"]) == {"moved"}
    assert sorted(done["destination"]) == sorted(plan["destination"])  # the plan came true
    with pytest.raises(DestinationError, match="into the source folder"):
        sort_images(source, tmp_path / "o2", "a,b", model=str(tiny_clip), dry_run=True,
                    output_file=source / "table.csv", progress_bar=False)  # fmt: skip


def test_a_different_run_into_the_same_destination_is_refused_before_anything_moves(tmp_path, tiny_clip):
    source = make_photos(tmp_path / "src", 4)
    out = tmp_path / "out"
    sort_images(source, out, "a,b", model=str(tiny_clip), progress_bar=False)
    before = snapshot(out)
    with pytest.raises(DestinationError, match="other settings"):
        sort_images(source, out, "cats,dogs", model=str(tiny_clip), operation="move", progress_bar=False)
    assert snapshot(out) == before and len(list(source.glob("*.jpg"))) == 4


@pytest.mark.parametrize("labels", [["../escape", "/etc", "..", "CON"], ["a/b", "c\\\\d", "nul.txt", "  "]])
def test_hostile_labels_create_nothing_outside_the_destination(tmp_path, tiny_clip, labels):
    source = make_photos(tmp_path / "src", 6)
    out = tmp_path / "box" / "out"
    out.parent.mkdir()
    outside_before = sorted(p.name for p in (tmp_path).iterdir())
    try:
        sort_images(source, out, labels, model=str(tiny_clip), progress_bar=False)
    except LabelError:
        assert not out.exists()  # refused before any file was touched
    else:
        for placed in out.rglob("*.jpg"):
            assert placed.resolve().parent.parent == out.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) in ([], ["out"])


def test_clashing_labels_are_refused_before_any_file_moves(tmp_path, tiny_clip):
    source = make_photos(tmp_path / "src", 3)
    with pytest.raises(LabelError, match="would share the folder"):
        sort_images(source, tmp_path / "out", ["Army.", "army", "b"], model=str(tiny_clip), operation="move",
                    progress_bar=False)  # fmt: skip
    assert len(list(source.glob("*.jpg"))) == 3 and not (tmp_path / "out").exists()


def hostile_images(folder: Path) -> dict[str, str]:
    """File name -> expected status."""
    from PIL import Image

    folder.mkdir(parents=True)
    cases = {}
    frames = [Image.new("RGB", (16, 16), (i % 256, 0, 0)) for i in range(300)]
    (folder / "animation.gif").write_bytes(image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    cases["animation.gif"] = "sorted"
    (folder / "png-named.jpg").write_bytes(image_bytes(noise_image(1), "PNG"))
    cases["png-named.jpg"] = "sorted"
    (folder / "tall.png").write_bytes(image_bytes(Image.new("RGB", (3, 20000), (0, 128, 0)), "PNG"))
    cases["tall.png"] = "sorted"
    (folder / "wide.png").write_bytes(image_bytes(Image.new("L", (30000, 2), 200), "PNG"))
    cases["wide.png"] = "sorted"
    (folder / "cmyk.jpg").write_bytes(image_bytes(Image.new("CMYK", (30, 30), (0, 100, 200, 0)), "JPEG"))
    cases["cmyk.jpg"] = "sorted"
    (folder / "rgba.png").write_bytes(image_bytes(Image.new("RGBA", (30, 30), (0, 0, 0, 0)), "PNG"))
    cases["rgba.png"] = "sorted"
    good = image_bytes(noise_image(2, size=(300, 300)), "JPEG")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    cases["truncated.jpg"] = "error"
    (folder / "zero.jpg").write_bytes(b"")
    cases["zero.jpg"] = "error"
    (folder / "script.png").write_text("<script>alert(1)</script>")
    cases["script.png"] = "error"
    return cases


def test_hostile_images_end_as_rows_while_the_run_completes(tmp_path, tiny_clip, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)
    cases = hostile_images(tmp_path / "src")
    (tmp_path / "src" / "bomb.png").write_bytes(image_bytes(Image.new("L", (1000, 1000)), "PNG"))
    cases["bomb.png"] = "error"
    result = sort_images(tmp_path / "src", tmp_path / "out", "a,b", model=str(tiny_clip), progress_bar=False)
    table = result.table.set_index("file")
    assert dict(table["status"]) == cases
    assert "too large" in table.loc["bomb.png", "error"]


def run_cli_in_subprocess(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "smart_sorter", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def count_done(journal: Path) -> int:
    if not journal.exists():
        return 0
    return sum(1 for line in journal.read_text(errors="replace").splitlines() if '"event": "done"' in line)


@pytest.mark.slow
def test_a_move_killed_with_sigkill_and_run_again_ends_with_each_file_once(tmp_path, tiny_clip):
    source = make_photos(tmp_path / "src", 240, clashing_names=True)
    before = tree_hashes(source)
    out = tmp_path / "out"
    command = ["--source", str(source), "--destination", str(out), "--labels", "a,b,c", "--model", str(tiny_clip),
               "--operation", "move", "--batch_size", "2", "--quiet"]  # fmt: skip
    process = run_cli_in_subprocess(*command)
    journal = journal_path(out)
    deadline = time.time() + 120
    while count_done(journal) < 30 and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = count_done(journal)
    assert 30 <= killed_after < 240, "the run was not killed midway"
    assert tree_hashes(source) + tree_hashes(out) >= before  # nothing lost even now

    from smart_sorter.pipeline.encoder import DualEncoder

    encoder = DualEncoder(str(tiny_clip), device="cpu").load()
    embedded = []
    original = encoder.embed_images
    encoder.embed_images = lambda pixels, **options: embedded.append(len(pixels)) or original(pixels, **options)
    result = sort_images(source, out, "a,b,c", model=str(tiny_clip), operation="move", batch_size=2,
                         encoder=encoder, progress_bar=False)  # fmt: skip
    assert sum(embedded) <= 240 - killed_after  # files done before the kill are not scored again
    assert not list(source.rglob("*.jpg"))
    assert tree_hashes(out) == before  # each file exactly once
    assert not [p for p in out.rglob(f"{TEMP_PREFIX}*")]
    table = read_table(result.csv_path)
    assert len(table) == 240 and table["file"].is_unique
    assert sorted(table["sha256"]) == sorted(before.elements())
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["status"] == "finished" and manifest["resumed"] is True
    assert main(["undo", str(out)]) == 0
    assert tree_hashes(source) == before


def test_a_full_disk_stops_the_run_with_a_message_and_the_same_command_finishes_it(
    tmp_path, tiny_clip, monkeypatch, capsys
):
    import errno

    from smart_sorter.storage import placing

    source = make_photos(tmp_path / "src", 8)
    before = tree_hashes(source)
    out = tmp_path / "out"
    real_write = placing._write_temp_copy
    written = []

    def fill_up(source_path, temp, sha):
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(source_path)
        return real_write(source_path, temp, sha)

    monkeypatch.setattr(placing, "_write_temp_copy", fill_up)
    command = ["--source", str(source), "--destination", str(out), "--labels", "a,b", "--model", str(tiny_clip),
               "--batch_size", "2", "--quiet"]  # fmt: skip
    assert main(command) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: The disk holding") and "run the same command again" in message
    assert len([p for p in out.rglob("*.jpg")]) == 3
    assert not [p for p in out.rglob(f"{TEMP_PREFIX}*")]
    assert json.loads((out / "smart-sorter-run.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()  # space freed
    assert main(command) == 0
    table = read_table(out / "output.csv")
    assert len(table) == 8 and table["file"].is_unique
    assert tree_hashes(out) == before and tree_hashes(source) == before


def test_a_run_that_failed_before_doing_anything_binds_nothing(tmp_path, tiny_clip, capsys):
    source = make_photos(tmp_path / "src", 3)
    out = tmp_path / "out"
    assert main(["--source", str(source), "--destination", str(out), "--labels", "a,b", "--model", "nobody/nothing",
                 "--quiet"]) == 1  # fmt: skip
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err
    assert main(["--source", str(source), "--destination", str(out), "--labels", "a,b", "--model", str(tiny_clip),
                 "--quiet"]) == 0  # fmt: skip
    assert len(read_table(out / "output.csv")) == 3


def test_a_run_that_did_nothing_never_lets_a_new_run_write_over_a_users_file(tmp_path, tiny_clip, capsys):
    source = make_photos(tmp_path / "src", 2)
    out = tmp_path / "out"
    assert main(["--source", str(source), "--destination", str(out), "--labels", "a,b", "--model", "nobody/nothing",
                 "--quiet"]) == 1  # fmt: skip
    mine = tmp_path / "my-table.csv"
    mine.write_text("my own notes")
    assert main(["--source", str(source), "--destination", str(out), "--labels", "a,b", "--model", str(tiny_clip),
                 "--output_file", str(mine), "--quiet"]) == 1  # fmt: skip
    assert "already exists" in capsys.readouterr().err
    assert mine.read_text() == "my own notes"
    assert not (out / "output.csv").exists()  # the failed run's empty table was ours and is gone


def test_a_label_folder_swapped_for_a_link_while_the_model_loads_is_never_written_through(tmp_path, tiny_clip):
    from smart_sorter.pipeline.encoder import DualEncoder

    source = make_photos(tmp_path / "src", 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    for label in ("a", "b"):
        (out / label).mkdir(parents=True)
    before_source, before_elsewhere = snapshot(source), snapshot(elsewhere)

    class SwappingEncoder(DualEncoder):
        def load(self):  # while the model loads, label folders become links: one to the source, one elsewhere
            for label, target in (("a", source), ("b", elsewhere)):
                if not (out / label).is_symlink():
                    (out / label).rmdir()
                    (out / label).symlink_to(target, target_is_directory=True)
            return super().load()

    result = sort_images(source, out, "a,b", model=str(tiny_clip), operation="move", progress_bar=False,
                         encoder=SwappingEncoder(str(tiny_clip), device="cpu"))  # fmt: skip
    assert snapshot(source) == before_source  # no source was moved onto itself or deleted
    assert snapshot(elsewhere) == before_elsewhere  # nothing written outside the destination
    assert set(result.table["status"]) == {"error"}
    assert all("link" in reason for reason in result.table["error"])
