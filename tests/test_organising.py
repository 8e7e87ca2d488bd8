"""Property: whatever the tree, the clashes and the operation, no bytes are lost or overwritten."""

import hashlib
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smart_sorter.core.rows import make_row
from smart_sorter.storage.journal import Journal, journal_path, read_journal
from smart_sorter.storage.organising import Organiser, ToPlace, recover
from smart_sorter.storage.placing import clash_key

CONTENTS = [b"alpha", b"beta", b"gamma", b"delta"]
NAMES = ["a.jpg", "b.jpg", "a__2.jpg", "noext"]
LABELS = ["cat", "dog"]

source_files = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(NAMES), st.integers(0, 3), st.sampled_from(LABELS)),
    max_size=12,
)
existing_files = st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(NAMES), st.integers(0, 3)), max_size=5)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashes(folder: Path) -> Counter:
    return Counter(digest(p.read_bytes()) for p in folder.rglob("*") if p.is_file() and ".smart-sorter" not in p.parts)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=source_files, existing=existing_files, operation=st.sampled_from(["copy", "move"]))
def test_placing_keeps_every_byte_and_changes_nothing_already_there(files, existing, operation):
    with tempfile.TemporaryDirectory() as work:
        source, destination = Path(work) / "src", Path(work) / "out"
        placed_sources = {}
        for folder, name, content, label in files:
            path = source / f"d{folder}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(CONTENTS[content])
            placed_sources[path] = label
        for label, name, content in existing:
            path = destination / label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(CONTENTS[content])
        before_destination = {p: p.read_bytes() for p in destination.rglob("*") if p.is_file()}
        before = hashes(source) + hashes(destination)

        journal = Journal(journal_path(destination))
        organiser = Organiser(destination, operation, journal)
        duplicates, copies = Counter(), Counter()
        for path, label in placed_sources.items():
            data = path.read_bytes()
            row = make_row(path.relative_to(source).as_posix(), digest(data), categories=(label,), order=(0,),
                           probabilities=(1.0,))  # fmt: skip
            row = organiser.place(path, destination / label, row)
            assert row["status"] == "sorted" and (destination / row["destination"]).read_bytes() == data
            if row["action"] == "duplicate" and operation == "move":
                duplicates[digest(data)] += 1
            if row["action"] == "copied":
                copies[digest(data)] += 1
        journal.close()

        for path, data in before_destination.items():
            assert path.read_bytes() == data  # nothing that was there changed
        after = hashes(source) + hashes(destination)
        # a copy adds its copies; a move onto identical bytes drops only the redundant one
        assert after + duplicates == before + copies
        assert set(after) == set(before)
        if operation == "copy":
            assert hashes(source) == Counter(digest(p.read_bytes()) for p in placed_sources)
        state = read_journal(journal_path(destination))
        assert len(state.done_rows) == len(placed_sources)
        assert recover(state, destination).to_place == {}


def _sources_and_rows(source: Path, files: list[tuple[int, str, int, str]]) -> list[tuple[Path, dict, str]]:
    placed = {}  # a path given twice is one file, with its last content and label
    for folder, name, content, label in files:
        path = source / f"d{folder}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(CONTENTS[content])
        row = make_row(path.relative_to(source).as_posix(), digest(CONTENTS[content]), categories=(label,),
                       order=(0,), probabilities=(1.0,))  # fmt: skip
        placed[path] = (path, row, label)
    return list(placed.values())


def _place_in_parallel_and_one_by_one(work: Path, files, existing, operation) -> tuple[list, list]:
    """The rows of placing `files` with place_all in 8 threads and, in a copy of the same trees, one by one."""
    outcomes = []
    for kind in ("parallel", "serial"):
        source, destination = work / kind / "src", work / kind / "out"
        placed = _sources_and_rows(source, files)
        for label, name, content in existing:
            path = destination / label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(CONTENTS[content])
        journal = Journal(journal_path(destination))
        organiser = Organiser(destination, operation, journal)
        if kind == "parallel":
            to_place = [ToPlace(path, destination / label, row) for path, row, label in placed]
            rows = organiser.place_all(to_place, workers=8)
        else:
            rows = [organiser.place(path, destination / label, row) for path, row, label in placed]
        journal.close()
        state = read_journal(journal_path(destination))
        assert state.torn_lines == 0 and len(state.done_rows) == len(placed)  # whole lines from every thread
        outcomes.append([(row["file"], row["destination"], row["action"]) for row in rows])
    return outcomes[0], outcomes[1]


def test_files_placed_in_parallel_get_the_names_and_order_of_one_by_one(tmp_path):
    names = ["a.jpg", "a__2.jpg", "A.jpg", "b.jpg", "a__2__2.jpg", "c.png", "a.jpg"]
    files = [(index, name, index % 4, LABELS[index % 2]) for index, name in enumerate(names * 3)]
    existing = [("cat", "a.jpg", 1), ("cat", "a__2.jpg", 3), ("dog", "b__2.jpg", 0)]
    for operation in ("copy", "move"):
        parallel, serial = _place_in_parallel_and_one_by_one(tmp_path / operation, files, existing, operation)
        assert parallel == serial


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=source_files, existing=existing_files, operation=st.sampled_from(["copy", "move"]))
def test_parallel_placing_is_one_by_one_placing_whatever_the_clashes(files, existing, operation):
    with tempfile.TemporaryDirectory() as work:
        parallel, serial = _place_in_parallel_and_one_by_one(Path(work), files, existing, operation)
        assert parallel == serial


def test_clash_keys_join_the_names_that_can_take_each_other(tmp_path):
    assert clash_key("a.jpg") == clash_key("A__2.jpg") == clash_key("a__2__3.JPG") == "a.jpg"
    assert clash_key("noext__4") == "noext" and clash_key("a.tar__2.gz") == "a.tar.gz"
    assert clash_key("b.jpg") != clash_key("a.jpg") and clash_key("__2.jpg") == "__2.jpg"


def test_an_error_in_one_placement_stops_the_rest_and_is_raised(tmp_path, monkeypatch):
    from smart_sorter.errors import DiskFullError
    from smart_sorter.storage import organising

    placed = _sources_and_rows(tmp_path / "src", [(0, f"{index}.jpg", index % 4, "cat") for index in range(40)])
    real_place_file = organising.place_file
    started = []

    def place_file(source, *args, **kwargs):
        started.append(source.name)
        if source.name == "3.jpg":
            raise DiskFullError.at(tmp_path / "out" / "cat")
        return real_place_file(source, *args, **kwargs)

    monkeypatch.setattr(organising, "place_file", place_file)
    organiser = Organiser(tmp_path / "out", "copy", None)
    with pytest.raises(DiskFullError):
        organiser.place_all([ToPlace(path, tmp_path / "out" / "cat", row) for path, row, _ in placed], workers=2)
    assert len(started) < 40  # the other thread stopped after the error instead of placing every file


def test_rows_are_recorded_in_the_files_order_whichever_thread_finishes_first(tmp_path, monkeypatch):
    from smart_sorter.storage import organising

    placed = _sources_and_rows(tmp_path / "src", [(0, f"{index}.jpg", index % 4, "cat") for index in range(12)])
    real_place_file = organising.place_file

    def place_file(source, *args, **kwargs):
        time.sleep(0.05 if source.name == "0.jpg" else 0.0)  # the first file finishes last
        return real_place_file(source, *args, **kwargs)

    monkeypatch.setattr(organising, "place_file", place_file)
    destination = tmp_path / "out"
    journal = Journal(journal_path(destination))
    rows = Organiser(destination, "copy", journal).place_all(
        [ToPlace(path, destination / "cat", row) for path, row, _ in placed], workers=4
    )
    journal.close()
    expected = [row["file"] for _, row, _ in placed]
    assert [row["file"] for row in rows] == expected
    assert [row["file"] for row in read_journal(journal_path(destination)).done_rows] == expected
