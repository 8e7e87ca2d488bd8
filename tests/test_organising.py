"""Property: whatever the tree, the clashes and the operation, no bytes are lost or overwritten."""

import hashlib
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smart_sorter.core.rows import make_row
from smart_sorter.storage.journal import Journal, journal_path, read_journal
from smart_sorter.storage.organising import Organiser, recover

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
