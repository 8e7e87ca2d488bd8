"""Files are evidence, end to end: the numbered cases of issue 11 that a whole run can show, through
`sort_images`, `resort`, `apply_corrections` and `undo` (or the command line in another process where
a kill or a second process is the point), with every file hashed before and after.

`Evidence` snapshots {path: SHA-256} of the source and the destination (a symbolic link as its target,
never followed) and checks, after a run, that each output.csv row names a file holding its bytes, that
each file the run placed is there exactly once, that the user's own files are untouched and that no
partial file is left; after undo, that the source is exactly as before and the destination holds only
what the user had.

Kills: `killed_at(work, ...)` runs `work` in a child forked from the test process whose
`Journal.write` SIGKILLs the child at a chosen journal line (after it reached the file, before it
is written, or halfway through it). The hook lives here, in the test, not in the package. The
children use the colour FakeEncoder with every embedding cached beforehand, so they load no model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import smart_sorter
from smart_sorter.cli import main
from smart_sorter.errors import BusyError, DestinationError, SourceError
from smart_sorter.options import STATE_FOLDER_NAME
from smart_sorter.runs.corrections import CorrectionLog, apply_corrections
from smart_sorter.storage.journal import Journal, journal_path, read_journal
from smart_sorter.storage.lock import DestinationLock
from smart_sorter.storage.placing import TEMP_PREFIX
from smart_sorter.storage.tables import shown_text
from tests.fakes import COLOUR_LABELS, FakeEncoder, colour_image, write_colour_images

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".jpg", ".png")
NEW_LABELS = ["red", "green", "blue"]  # with the template "{}": other folders than COLOUR_LABELS'
TAG_LABELS = [*COLOUR_LABELS, "a red or blue thing"]  # a red picture gets two tags


# Evidence ----------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (but the sorter's state folder) by relative path -> SHA-256; a
    symbolic link as '-> target', never followed."""
    found: dict[str, str] = {}
    for root, folders, names in os.walk(folder):
        here = Path(root)
        if here == folder:
            folders[:] = [name for name in folders if name != STATE_FOLDER_NAME]
        for name in [*names, *folders]:
            path = here / name
            key = path.relative_to(folder).as_posix()
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif path.is_file():
                found[key] = sha256(path)
    return found


def is_image(key: str) -> bool:
    return key.lower().endswith(IMAGE_SUFFIXES)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


@dataclass
class Evidence:
    """The source and the destination as they were before a run, and the checks after it."""

    source: Path
    out: Path
    before: dict[str, str]  # the source
    user: dict[str, str]  # what the destination held before: the user's files

    @classmethod
    def take(cls, source: Path, out: Path) -> Evidence:
        return cls(source, out, snapshot(source), snapshot(out))

    def _common(self) -> tuple[dict[str, str], dict[str, str]]:
        source, out = snapshot(self.source), snapshot(self.out)
        partial = [key for key in [*source, *out] if TEMP_PREFIX in key]
        assert not partial, f"partial files left: {partial}"
        changed = {key: out.get(key) for key, value in self.user.items() if out.get(key) != value}
        assert not changed, f"the user's files changed or went: {changed}"
        everywhere = set(source.values()) | set(out.values())
        lost = [key for key, value in self.before.items() if value not in everywhere]
        assert not lost, f"bytes lost: {lost}"
        return source, out

    def check_sorted(self, operation: str) -> pd.DataFrame:
        """After a run, a re-sort or corrections: each row names where its bytes are, each file placed once."""
        source, out = self._common()
        rows = read_table(self.out / "output.csv")
        assert rows["file"].is_unique and len(rows) == len(self.before), rows["file"].tolist()
        shown_out = {shown_text(key): value for key, value in out.items()}
        for row in rows.itertuples():
            if row.destination:
                assert shown_out.get(row.destination) == row.sha256, f"{row.file}: not at {row.destination}"
        copies = [name for row in rows.itertuples() for name in getattr(row, "copies", "").split("; ") if name]
        users = {shown_text(key) for key in self.user}
        ours = Counter(value for key, value in shown_out.items() if is_image(key) and key not in users)
        placed = Counter(row.sha256 for row in rows.itertuples() if row.action in ("copied", "moved"))
        placed += Counter(shown_out[name] for name in copies if name not in users)
        assert ours == placed, "a file placed twice, or a placed file missing"
        if operation == "copy":
            assert source == self.before
        else:
            duplicates = Counter(row.sha256 for row in rows.itertuples() if row.action == "duplicate")
            left = Counter(value for key, value in source.items() if is_image(key))
            assert left + placed - Counter(shown_out[name] for name in copies) + duplicates == Counter(
                self.before.values()
            ), "a moved file doubled or lost"
        return rows

    def check_undone(self) -> None:
        """After undo: the source exactly as before, the destination holding only the user's files."""
        source, out = self._common()
        assert source == self.before
        images = {key: value for key, value in out.items() if is_image(key) or value.startswith("-> ")}
        assert images == {key: value for key, value in self.user.items() if is_image(key) or value.startswith("-> ")}


def sort(source: Path, out: Path, encoder, labels=COLOUR_LABELS, **options):
    return smart_sorter.sort_images(source, out, labels, encoder=encoder, progress_bar=False, **options)


def resort(out: Path, encoder, labels=NEW_LABELS):
    return smart_sorter.resort(out, labels, template="{}", encoder=encoder)


# Killing -----------------------------------------------------------------------------------------
Moment = Callable[[int, str, dict], bool]  # (line number, event, fields) -> kill here?


def _work_until_killed(work: Callable[[], object], moment: Moment, when: str) -> None:
    written = 0
    real_write = Journal.write

    def write(journal: Journal, event: str, **fields) -> None:
        nonlocal written
        written += 1
        chosen = moment(written, event, fields)
        if chosen and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        if chosen and when == "torn":
            line = json.dumps({"event": event, **fields}, ensure_ascii=False, default=str)
            journal._handle.write(line[: len(line) // 2])
            journal._handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(journal, event, **fields)
        if chosen:
            os.kill(os.getpid(), signal.SIGKILL)

    Journal.write = write
    work()


def killed_at(work: Callable[[], object], moment: Moment, when: str = "after") -> bool:
    """Run `work` in a forked child killed (SIGKILL) at the first journal line `moment` chooses: after
    the line reached the file, `before` it is written, or `torn` halfway through it. True if the child
    was killed, False if the work ended first."""
    child = multiprocessing.get_context("fork").Process(target=_work_until_killed, args=(work, moment, when))
    child.start()
    child.join(timeout=120)
    if child.exitcode is None:
        child.kill()
        pytest.fail("the child hung")
    assert child.exitcode in (0, -signal.SIGKILL), f"the work failed in the child (exit code {child.exitcode})"
    return child.exitcode == -signal.SIGKILL


def at_line(number: int) -> Moment:
    return lambda written, event, fields: written == number


# Scenes ------------------------------------------------------------------------------------------
NON_UTF8 = os.fsdecode(b"blu\xe9_02.jpg")  # a name that is not valid UTF-8


def write_scene(work: Path, *, tags: bool = False) -> tuple[Path, Path]:
    """A source of four pictures (one with a name that is not UTF-8, two with one name and the same
    bytes in two folders) and a destination that already holds the user's identical copy of one."""
    source, out = work / "src", work / "out"
    write_colour_images(source, ["red", "green"])
    colour_image("blue", seed=2).save(source / NON_UTF8, format="JPEG", quality=92)
    (source / "sub").mkdir()
    shutil.copy2(source / "red_00.jpg", source / "sub" / "red_00.jpg")
    (out / "a green thing").mkdir(parents=True)
    shutil.copy2(source / "green_01.jpg", out / "a green thing" / "green_01.jpg")
    if tags:
        (out / "a red or blue thing").mkdir()
        shutil.copy2(source / "red_00.jpg", out / "a red or blue thing" / "red_00.jpg")
    return source, out


@dataclass
class Scene:
    """A source and a destination built once in `work`, kept aside and put back before each try, so
    that the absolute paths the journal records stay true."""

    work: Path
    kept: Path
    evidence: Evidence

    @classmethod
    def build(cls, tmp_path: Path, prepare: Callable[[Path, Path], None], *, tags: bool = False) -> Scene:
        work = tmp_path / "work"
        source, out = write_scene(work, tags=tags)
        evidence = Evidence.take(source, out)
        prepare(source, out)
        kept = tmp_path / "kept"
        shutil.copytree(work, kept, symlinks=True)
        return cls(work, kept, evidence)

    def reset(self) -> None:
        shutil.rmtree(self.work)
        shutil.copytree(self.kept, self.work, symlinks=True)

    @property
    def source(self) -> Path:
        return self.evidence.source

    @property
    def out(self) -> Path:
        return self.evidence.out


def warm_cache(source: Path, tmp_path: Path, encoder, labels=COLOUR_LABELS, **options) -> None:
    """Embed every picture once (into a throwaway copy), so that runs in a forked child need no model."""
    sort(source, tmp_path / "warm", encoder, labels, **options)
    shutil.rmtree(tmp_path / "warm")


# 1 -----------------------------------------------------------------------------------------------
def test_1_a_link_to_the_source_in_a_label_folder_is_not_its_duplicate_in_a_move(tmp_path, fake_encoder):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source, ["red", "green", "blue"])
    (out / "a red thing").mkdir(parents=True)
    (out / "a red thing" / "red_00.jpg").symlink_to(source / "red_00.jpg")
    evidence = Evidence.take(source, out)
    result = sort(source, out, fake_encoder, operation="move")
    rows = evidence.check_sorted("move").set_index("file")
    assert rows.loc["red_00.jpg", "action"] == "moved"
    assert rows.loc["red_00.jpg", "destination"] == "a red thing/red_00__2.jpg"
    assert sha256(out / "a red thing" / "red_00__2.jpg") == evidence.before["red_00.jpg"]
    assert set(result.table["status"]) == {"sorted"}
    smart_sorter.undo(out)
    evidence.check_undone()


# 2 -----------------------------------------------------------------------------------------------
class SwappingEncoder(FakeEncoder):
    """Does `swap` once while the model loads: after the run checked its folders and found its files."""

    def __init__(self, swap: Callable[[], None]) -> None:
        super().__init__()
        self.swap, self.swapped = swap, False

    def load(self) -> FakeEncoder:
        if not self.swapped:
            self.swapped = True
            self.swap()
        return super().load()


def test_2_label_folders_swapped_for_links_while_the_model_loads_are_never_written_through(tmp_path, fake_encoder):
    source, out, elsewhere = tmp_path / "src", tmp_path / "out", tmp_path / "elsewhere"
    write_colour_images(source, ["red", "green", "blue"])
    write_colour_images(elsewhere, ["green"], start=7)
    for label in COLOUR_LABELS:
        (out / label).mkdir(parents=True)
    evidence, before_elsewhere = Evidence.take(source, out), snapshot(elsewhere)

    def swap() -> None:  # one label folder becomes a link to the source, one a link elsewhere
        for label, target in (("a red thing", source), ("a green thing", elsewhere)):
            (out / label).rmdir()
            (out / label).symlink_to(target, target_is_directory=True)

    result = sort(source, out, SwappingEncoder(swap), operation="move")
    rows = result.table.set_index("file")
    assert dict(rows["status"]) == {"red_00.jpg": "error", "green_01.jpg": "error", "blue_02.jpg": "sorted"}
    assert "link" in rows.loc["red_00.jpg", "error"] and "link" in rows.loc["green_01.jpg", "error"]
    assert snapshot(source) == {name: evidence.before[name] for name in ("red_00.jpg", "green_01.jpg")}
    assert snapshot(elsewhere) == before_elsewhere  # nothing written outside the destination
    smart_sorter.undo(out)
    assert snapshot(source) == evidence.before and snapshot(elsewhere) == before_elsewhere


# 3 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("operation", ["copy", "move"])
def test_3_resort_then_undo_keeps_the_users_identical_files(tmp_path, fake_encoder, operation):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source, ["red", "green", "blue"])
    (out / "red").mkdir(parents=True)  # the folder the re-sort moves red_00 into already holds its bytes
    shutil.copy2(source / "red_00.jpg", out / "red" / "red_00.jpg")
    (out / "a blue thing").mkdir()  # the folder the run places blue_02 into already holds its bytes
    shutil.copy2(source / "blue_02.jpg", out / "a blue thing" / "blue_02.jpg")
    evidence = Evidence.take(source, out)
    sort(source, out, fake_encoder, operation=operation)
    evidence.check_sorted(operation)
    result = resort(out, fake_encoder)
    rows = evidence.check_sorted(operation).set_index("file")
    assert rows.loc["red_00.jpg", "destination"] == "red/red_00__2.jpg"
    assert result.moved == 2  # red_00 and green_01; blue_02's row names the user's file, which stays
    smart_sorter.undo(out)
    evidence.check_undone()


# 4 -----------------------------------------------------------------------------------------------
def stopped_run(source: Path, out: Path, encoder, **options) -> None:
    """A run stopped after its first batch: the destination holds an unfinished run with files."""
    stop = threading.Event()
    sort(source, out, encoder, batch_size=1, stop=stop, on_progress=lambda progress: stop.set(), **options)


def test_4_every_kind_of_work_on_a_destination_another_process_holds_is_told_it_is_busy(tmp_path, fake_encoder, capsys):
    from smart_sorter.validation.html_report import write_report

    source, other, out = tmp_path / "src", tmp_path / "other", tmp_path / "out"
    write_colour_images(source, ["red", "green", "blue"])
    write_colour_images(other, ["blue", "green"], start=5)
    evidence, before_other = Evidence.take(source, out), snapshot(other)
    stopped_run(source, out, fake_encoder, operation="move")
    CorrectionLog(out / "corrections.csv").record("red_00.jpg", "a red thing", "a blue thing")
    source_now, out_now = snapshot(source), snapshot(out)
    holder = DestinationLock(out.resolve(), "sorting run").acquire()  # the first run, started again elsewhere
    try:
        attempts = {
            "the same command": lambda: sort(source, out, fake_encoder, operation="move", batch_size=1),
            "another source": lambda: sort(other, out, fake_encoder, operation="move"),
            "another source and labels": lambda: sort(other, out, fake_encoder, NEW_LABELS),
            "a re-sort": lambda: resort(out, fake_encoder),
            "undo": lambda: smart_sorter.undo(out),
            "corrections": lambda: apply_corrections(out),
            "a report": lambda: write_report(out, tmp_path / "report.html"),
        }
        for name, attempt in attempts.items():
            with pytest.raises(BusyError, match="is in use by a sorting run") as raised:
                attempt()
            assert "nothing was changed" in str(raised.value), name
        command = ["--source", str(other), "--destination", str(out), "--labels", ",".join(COLOUR_LABELS),
                   "--model", "fake/colour-encoder", "--quiet"]  # fmt: skip
        for argv in (command, ["undo", str(out)], ["resort", str(out), "--labels", "x,y"], ["report", str(out)]):
            assert main(argv) == 1
            assert "is in use by a sorting run" in capsys.readouterr().err, argv
        assert (snapshot(source), snapshot(out), snapshot(other)) == (source_now, out_now, before_other)
    finally:
        holder.release()
    (out / "corrections.csv").unlink()
    sort(source, out, fake_encoder, operation="move", batch_size=1)  # the first run, finished
    evidence.check_sorted("move")
    smart_sorter.undo(out)
    evidence.check_undone()


def run_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "smart_sorter", *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def toy_command(source: Path, out: Path, model: Path) -> list[str]:
    from tests.toy_clip import TOY_LABELS

    return ["--source", str(source), "--destination", str(out), "--labels", ",".join(TOY_LABELS),
            "--model", str(model), "--operation", "move", "--batch_size", "4", "--quiet"]  # fmt: skip


@pytest.mark.slow
def test_4_a_second_process_on_a_held_destination_stops_at_once_and_changes_nothing(tmp_path, toy_clip):
    from tests.toy_clip import write_shapes

    source, out = tmp_path / "src", tmp_path / "out"
    write_shapes(source, 8, seed=3)
    evidence = Evidence.take(source, out)
    out.mkdir()
    with DestinationLock(out, "sorting run"):
        process = run_cli(*toy_command(source, out, toy_clip))
        _, error = process.communicate(timeout=300)
        assert process.returncode == 1, error
        assert "is in use by a sorting run" in error and "nothing was changed" in error
        assert snapshot(source) == evidence.before and snapshot(out) == {}
    process = run_cli(*toy_command(source, out, toy_clip))
    assert process.wait(timeout=300) == 0
    evidence.check_sorted("move")
    assert main(["undo", str(out)]) == 0
    evidence.check_undone()


@pytest.mark.slow
@pytest.mark.parametrize("second", ["the same command", "another source"])
def test_4_two_runs_started_at_once_sort_each_file_once(tmp_path, toy_clip, second):
    from tests.toy_clip import write_shapes

    source, other, out = tmp_path / "src", tmp_path / "other", tmp_path / "out"
    write_shapes(source, 12, seed=4)
    write_shapes(other, 12, seed=5)  # the same names, other pictures
    evidence = Evidence.take(source, out)
    before_other = snapshot(other)
    processes = [run_cli(*toy_command(source, out, toy_clip)),
                 run_cli(*toy_command(source if second == "the same command" else other, out, toy_clip))]  # fmt: skip
    outcomes = [(process.communicate(timeout=600)[1], process.returncode)[::-1] for process in processes]
    assert outcomes[0][0] == 0 or outcomes[1][0] == 0, outcomes
    for code, error in outcomes:
        assert code in (0, 1) and "Traceback" not in error, error
        if code == 1:  # it started while the other held the destination, or after the other had finished it
            assert "is in use by a sorting run" in error or "holds a finished run with other settings" in error, error
    if second == "another source":
        assert [code for code, _ in outcomes].count(0) == 1  # one sorts; the other is refused
        if outcomes[1][0] == 0:  # the other source won
            evidence, before_source = Evidence(other, out, before_other, {}), evidence.before
            assert snapshot(source) == before_source
        else:
            assert snapshot(other) == before_other
    evidence.check_sorted("move")
    assert not [path for path in out.rglob("*__2*")]  # no file sorted twice under a second name
    assert main(["undo", str(out)]) == 0
    evidence.check_undone()


# 5 -----------------------------------------------------------------------------------------------
def test_5_resort_of_a_move_with_identical_same_named_files_then_undo_restores_both(tmp_path, fake_encoder):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source / "a", ["red", "green"])
    (source / "b").mkdir()
    shutil.copy2(source / "a" / "red_00.jpg", source / "b" / "red_00.jpg")
    evidence = Evidence.take(source, out)
    sort(source, out, fake_encoder, operation="move")
    rows = evidence.check_sorted("move").set_index("file")
    assert rows.loc["b/red_00.jpg", "action"] == "duplicate"
    resort(out, fake_encoder)
    rows = evidence.check_sorted("move").set_index("file")
    assert rows.loc["a/red_00.jpg", "destination"] == rows.loc["b/red_00.jpg", "destination"] == "red/red_00.jpg"
    assert rows.loc["b/red_00.jpg", "label"] == rows.loc["a/red_00.jpg", "label"] == "red"  # the twin's row follows
    assert rows.loc["b/red_00.jpg", "score"] == rows.loc["a/red_00.jpg", "score"]
    assert rows.loc["b/red_00.jpg", "action"] == "duplicate"
    smart_sorter.undo(out)
    evidence.check_undone()


# 7 -----------------------------------------------------------------------------------------------
def found_the_users_file(written: int, event: str, fields: dict) -> bool:
    return event == "claiming_copy" and fields.get("action") == "duplicate"


@pytest.mark.parametrize("then", ["resume, then undo", "undo at once"])
def test_7_copy_to_tags_killed_after_a_copy_found_the_users_file_never_takes_it(tmp_path, fake_encoder, then):
    source, out = write_scene(tmp_path / "work", tags=True)
    evidence = Evidence.take(source, out)
    options = {"multi_label": True, "copy_tags": True}
    warm_cache(source, tmp_path, fake_encoder, TAG_LABELS, **options)
    assert killed_at(lambda: sort(source, out, fake_encoder, TAG_LABELS, **options), found_the_users_file)
    if then.startswith("resume"):
        sort(source, out, fake_encoder, TAG_LABELS, **options)
        rows = evidence.check_sorted("copy").set_index("file")
        assert "a red or blue thing/red_00.jpg" in rows.loc["red_00.jpg", "copies"]
    smart_sorter.undo(out)
    evidence.check_undone()


# 8 -----------------------------------------------------------------------------------------------
def moved_but_not_recorded(written: int, event: str, fields: dict) -> bool:
    return event == "placed"


@pytest.mark.parametrize("then", ["resort again, then undo", "undo at once"])
@pytest.mark.parametrize("when", ["before", "after"])  # the move's `placed` line: not written, or its row not yet
def test_8_a_resort_killed_between_its_move_and_its_journal_write_finishes_and_undoes(
    tmp_path, fake_encoder, when, then
):
    source, out = write_scene(tmp_path / "work")
    evidence = Evidence.take(source, out)
    sort(source, out, fake_encoder, operation="move")
    assert killed_at(lambda: resort(out, fake_encoder), moved_but_not_recorded, when=when)
    if then.startswith("resort"):
        result = resort(out, fake_encoder)
        assert not result.problems, result.problems
        rows = evidence.check_sorted("move")
        assert {name.split("/")[0] for name in rows["destination"]} == {"red", "blue", "a green thing"}
    smart_sorter.undo(out)
    evidence.check_undone()


# 11 ----------------------------------------------------------------------------------------------
def test_11_names_that_are_not_utf8_are_sorted_resumed_resorted_and_undone(tmp_path, fake_encoder):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source, ["red", "green"])
    folder = source / os.fsdecode(b"d\xf6ssier")
    folder.mkdir()
    for index, name in enumerate([b"caf\xe9.jpg", b"\xff\xfe.jpg", "Ζ.jpg".encode()]):
        colour_image(["blue", "red", "green"][index], seed=10 + index).save(folder / os.fsdecode(name), "JPEG")
    evidence = Evidence.take(source, out)
    before_bytes = sorted(os.listdir(os.fsencode(folder)))
    stopped_run(source, out, fake_encoder, operation="move")
    result = sort(source, out, fake_encoder, operation="move", batch_size=1)
    assert result.resumed_files >= 1 and set(result.table["status"]) == {"sorted"}
    rows = evidence.check_sorted("move")
    assert "d\\xf6ssier/caf\\xe9.jpg" in set(rows["file"])
    resort(out, fake_encoder)
    evidence.check_sorted("move")
    name = shown_text(f"{folder.name}/caf\udce9.jpg")
    CorrectionLog(out / "corrections.csv").record(name, "blue", "none")  # as the review reads it from output.csv
    assert apply_corrections(out).moved == 1
    rows = evidence.check_sorted("move").set_index("file")
    assert rows.loc[name, "destination"].startswith("uncertain/") and rows.loc[name, "corrected_from"] == "blue"
    smart_sorter.undo(out)
    evidence.check_undone()
    assert sorted(os.listdir(os.fsencode(folder))) == before_bytes


# 12 ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` made read-only for as long as the block lasts: by a read-only bind mount over itself
    where the tests run as root (chmod does not stop root), else by its permissions."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield folder
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and this machine does not allow a bind mount")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root, and this machine does not allow remounting a bind mount read-only")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_12_a_move_from_a_read_only_source_is_refused_before_anything_moves(tmp_path, fake_encoder, capsys):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source, ["red", "green"])
    write_colour_images(source / "sub", ["blue"], start=2)
    evidence = Evidence.take(source, out)
    with read_only(source / "sub"):
        with pytest.raises(SourceError, match="read-only") as raised:
            sort(source, out, fake_encoder, operation="move")
        assert "sub" in str(raised.value)
    with read_only(source) as view:
        with pytest.raises(SourceError, match="cannot be written to") as raised:
            sort(view, out, fake_encoder, operation="move")
        assert "nothing was moved" in str(raised.value)
        assert sort(view, out, fake_encoder).status_counts == {"sorted": 3}  # copying from it is fine
    evidence.check_sorted("copy")
    smart_sorter.undo(out)
    evidence.check_undone()


def test_12_a_read_only_destination_is_refused_with_a_sentence(tmp_path, fake_encoder, capsys):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source, ["red", "green", "blue"])
    (out / "a red thing").mkdir(parents=True)
    (out / "a red thing" / "mine.jpg").write_bytes(b"the user's")
    evidence = Evidence.take(source, out)
    with read_only(out) as view:
        for operation in ("copy", "move"):
            with pytest.raises(DestinationError, match="write to") as raised:
                sort(source, view, fake_encoder, operation=operation)
            assert str(view) in str(raised.value)
        assert snapshot(source) == evidence.before and snapshot(out) == evidence.user
    sort(source, out, fake_encoder, operation="move")
    with read_only(out) as view:
        for argv in (["undo", str(view)], ["resort", str(view), "--labels", "x,y"]):
            assert main(argv) == 1
            error = capsys.readouterr().err
            assert error.startswith("error: ") and "write to" in error and "Traceback" not in error
    smart_sorter.undo(out)
    evidence.check_undone()


# 13 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("operation", ["copy", "move"])
def test_13_a_source_file_swapped_for_a_link_after_the_scan_is_not_followed(tmp_path, fake_encoder, operation):
    source, out, outside = tmp_path / "src", tmp_path / "out", tmp_path / "outside"
    write_colour_images(source, ["red", "green", "blue"])
    write_colour_images(outside, ["red"], start=8)
    evidence, before_outside = Evidence.take(source, out), snapshot(outside)

    def swap() -> None:
        (source / "red_00.jpg").unlink()
        (source / "red_00.jpg").symlink_to(outside / "red_08.jpg")

    result = sort(source, out, SwappingEncoder(swap), operation=operation)
    row = result.table.set_index("file").loc["red_00.jpg"]
    assert row["status"] == "error" and "symbolic link" in row["error"] and not row["destination"]
    assert snapshot(outside) == before_outside  # neither sorted nor moved
    assert before_outside["red_08.jpg"] not in snapshot(out).values()
    smart_sorter.undo(out)
    assert snapshot(outside) == before_outside
    assert snapshot(source) == {**evidence.before, "red_00.jpg": f"-> {outside / 'red_08.jpg'}"}


# 15 ----------------------------------------------------------------------------------------------
class ChangingEncoder(FakeEncoder):
    """Turns a red source picture blue after it was read and hashed, before it is placed; with
    `keep_stamp`, keeping its size and modification time, as tools that keep times do."""

    def __init__(self, victim: Path, *, keep_stamp: bool) -> None:
        super().__init__()
        self.victim, self.keep_stamp, self.changed = victim, keep_stamp, False

    def embed_images(self, pixel_values):
        if not self.changed:
            self.changed = True
            stamp = self.victim.stat()
            colour_image("blue", seed=99).save(self.victim, "PNG", compress_level=0)  # the same size, uncompressed
            if self.keep_stamp:
                assert self.victim.stat().st_size == stamp.st_size
                os.utime(self.victim, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        return super().embed_images(pixel_values)


@pytest.mark.parametrize("keep_stamp", [False, True], ids=["new time", "time kept"])
@pytest.mark.parametrize("operation", ["copy", "move"])
def test_15_a_file_changed_during_a_run_is_sorted_by_the_next_run_as_its_advice_says(
    tmp_path, fake_encoder, operation, keep_stamp
):
    source, out = tmp_path / "src", tmp_path / "out"
    write_colour_images(source, ["green", "blue"], start=1)
    colour_image("red", seed=0).save(source / "red_00.png", "PNG", compress_level=0)
    changing = ChangingEncoder(source / "red_00.png", keep_stamp=keep_stamp)
    first = sort(source, out, changing, operation=operation)
    row = first.table.set_index("file").loc["red_00.png"]
    assert row["status"] == "error" and "run again to sort" in row["error"]
    again = sort(source, out, fake_encoder, operation=operation)
    row = again.table.set_index("file").loc["red_00.png"]
    assert (row["status"], row["label"]) == ("sorted", "a blue thing"), row["error"]
    assert row["sha256"] == sha256(out / row["destination"])
    assert set(again.table["status"]) == {"sorted"}


# Kills at every journal line -----------------------------------------------------------------------
def sort_scene(operation: str, **options) -> Callable:
    def build(tmp_path: Path, encoder) -> tuple[Scene, Callable[[], object], str]:
        scene = Scene.build(tmp_path, lambda source, out: None, tags=bool(options.get("copy_tags")))
        labels = TAG_LABELS if options.get("copy_tags") else COLOUR_LABELS
        warm_cache(scene.source, tmp_path, encoder, labels, operation="copy", **options)
        return scene, lambda: sort(scene.source, scene.out, encoder, labels, operation=operation, **options), operation

    return build


def resort_scene(tmp_path: Path, encoder) -> tuple[Scene, Callable[[], object], str]:
    def prepare(source: Path, out: Path) -> None:
        (out / "red").mkdir()
        shutil.copy2(source / "red_00.jpg", out / "red" / "red_00.jpg")  # the user's, where the re-sort goes
        sort(source, out, encoder, operation="move")

    scene = Scene.build(tmp_path, prepare)
    scene.evidence.user = {**scene.evidence.user, "red/red_00.jpg": scene.evidence.before["red_00.jpg"]}
    return scene, lambda: resort(scene.out, encoder), "move"


def corrections_scene(tmp_path: Path, encoder) -> tuple[Scene, Callable[[], object], str]:
    def prepare(source: Path, out: Path) -> None:
        sort(source, out, encoder, operation="move")
        log = CorrectionLog(out / "corrections.csv")
        log.record("red_00.jpg", "a red thing", "a blue thing")
        log.record(shown_text(NON_UTF8), "a blue thing", "none")  # as the review reads it from output.csv
        log.record("sub/red_00.jpg", "a red thing", "a green thing")  # a duplicate row: not the run's to move

    scene = Scene.build(tmp_path, prepare)
    return scene, lambda: apply_corrections(scene.out), "move"


def undo_scene(tmp_path: Path, encoder) -> tuple[Scene, Callable[[], object], str]:
    scene = Scene.build(tmp_path, lambda source, out: sort(source, out, encoder, operation="move"))
    return scene, lambda: smart_sorter.undo(scene.out), "undo"


KILLED_WORK = {
    "sort, copy": sort_scene("copy"),
    "sort, move": sort_scene("move"),
    "sort, move, no hard links": sort_scene("move"),
    "sort, copy to tags": sort_scene("copy", multi_label=True, copy_tags=True),
    "resort": resort_scene,
    "resort, no hard links": resort_scene,
    "corrections": corrections_scene,
    "undo": undo_scene,
}


def without_hard_links(monkeypatch) -> None:
    """As on exFAT or FAT: no hard links and no no-replace rename, so copies are published through a
    placeholder and moves are verified copies (the forked children inherit it)."""
    import errno

    from smart_sorter.storage import placing

    def refuse(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(placing, "_rename_noreplace", lambda folder, old, new: False)


def undo_or_nothing(out: Path) -> None:
    """Undo; a run killed before its journal recorded it placed nothing, and undo says there is nothing to undo."""
    try:
        smart_sorter.undo(out)
    except DestinationError as error:
        assert "No smart-sorter run is recorded" in str(error)
        assert read_journal(journal_path(out)).settings is None


@pytest.mark.slow
@pytest.mark.parametrize("work", list(KILLED_WORK))
def test_a_kill_at_every_journal_line_then_the_same_command_and_undo_lose_nothing(
    tmp_path, fake_encoder, monkeypatch, work
):
    """For each journal line: killed after it, and killed halfway through writing it (a torn line); then
    the same command again and undo, and (a second time) undo at once, without finishing the work."""
    if work.endswith("no hard links"):
        without_hard_links(monkeypatch)
    scene, command, operation = KILLED_WORK[work](tmp_path, fake_encoder)
    then = ["the same command, then undo"] + (["undo at once"] if operation != "undo" else [])
    line, when = 1, "after"
    while True:
        for after_the_kill in then:
            print(f"killed {when} journal line {line}; {after_the_kill}")  # shown when a check fails
            scene.reset()
            if not killed_at(command, at_line(line), when):
                assert line > 3, "the work wrote fewer journal lines than expected"
                return
            if after_the_kill.startswith("the same command"):
                command()
                if operation != "undo":
                    scene.evidence.check_sorted(operation)
            if operation != "undo":
                undo_or_nothing(scene.out)
            scene.evidence.check_undone()
        line, when = (line, "torn") if when == "after" else (line + 1, "after")
