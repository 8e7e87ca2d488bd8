import os

import pytest

from smart_sorter.errors import DiskFullError, PlacementError
from smart_sorter.storage.placing import TEMP_PREFIX, candidate_names, place_file, sha256_of


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "src" / "photo.jpg"
    path.parent.mkdir()
    path.write_bytes(b"evidence bytes")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    return path


def test_copy_keeps_bytes_and_timestamps_and_leaves_the_source(source_file, tmp_path):
    placement = place_file(source_file, tmp_path / "out" / "cat", "copy", sha256_of(source_file))
    placed = placement.path
    assert placed == tmp_path / "out" / "cat" / "photo.jpg" and placement.action == "copied"
    assert placed.read_bytes() == b"evidence bytes" and source_file.exists()
    assert placed.stat().st_mtime == 1_600_000_000
    assert not [p for p in placed.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_taken_name_is_never_overwritten(source_file, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"someone else's file")
    first = place_file(source_file, folder, "copy", sha256_of(source_file))
    source_file.write_bytes(b"other evidence")
    second = place_file(source_file, folder, "copy", sha256_of(source_file))
    assert (folder / "photo.jpg").read_bytes() == b"someone else's file"
    assert [first.path.name, second.path.name] == ["photo__2.jpg", "photo__3.jpg"]
    assert (folder / "photo__2.jpg").read_bytes() == b"evidence bytes"


def test_identical_bytes_already_there_are_a_duplicate_not_a_second_copy(source_file, tmp_path):
    folder = tmp_path / "out"
    first = place_file(source_file, folder, "copy", sha256_of(source_file))
    again = place_file(source_file, folder, "copy", sha256_of(source_file))
    assert again.path == first.path and again.action == "duplicate"
    assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg"]


def test_a_move_onto_identical_bytes_removes_the_source_only(source_file, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"evidence bytes")
    placement = place_file(source_file, folder, "move", sha256_of(source_file))
    assert placement.action == "duplicate" and not source_file.exists()
    assert (folder / "photo.jpg").read_bytes() == b"evidence bytes"


def test_announce_names_each_claim_before_it_happens(source_file, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"taken")
    seen = []

    def announce(name, temp, action):
        seen.append((name, bool(temp), action, (folder / name).exists() if name else None))

    place_file(source_file, folder, "copy", sha256_of(source_file), announce=announce)
    assert seen == [("", True, "copied", None), ("photo__2.jpg", True, "copied", False)]


def test_move_removes_the_source_only_after_placing(source_file, tmp_path):
    digest = sha256_of(source_file)
    placement = place_file(source_file, tmp_path / "out", "move", digest)
    assert placement.action == "moved" and not source_file.exists() and sha256_of(placement.path) == digest


def test_a_file_changed_since_hashing_is_not_placed(source_file, tmp_path):
    for operation in ("copy", "move"):
        with pytest.raises(PlacementError, match="changed while"):
            place_file(source_file, tmp_path / "out", operation, "0" * 64)
    assert source_file.read_bytes() == b"evidence bytes"
    assert not list((tmp_path / "out").iterdir())


def test_a_full_disk_stops_with_nothing_half_written(source_file, tmp_path, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match="full"):
        place_file(source_file, tmp_path / "out", "copy", sha256_of(source_file))
    assert not list((tmp_path / "out").iterdir())
    assert source_file.read_bytes() == b"evidence bytes"


def test_move_across_file_systems_copies_verifies_then_deletes(source_file, tmp_path, monkeypatch):
    import errno

    real_link = os.link

    def cross_device(src, dst, *args, **kwargs):
        if os.fspath(src) == os.fspath(source_file):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", cross_device)
    digest = sha256_of(source_file)
    placement = place_file(source_file, tmp_path / "out", "move", digest)
    assert placement.action == "moved" and not source_file.exists() and sha256_of(placement.path) == digest


def test_without_hard_links_names_are_claimed_exclusively(source_file, tmp_path, monkeypatch):
    import errno

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"taken")
    placed = place_file(source_file, folder, "copy", sha256_of(source_file)).path
    assert placed.name == "photo__2.jpg" and placed.read_bytes() == b"evidence bytes"
    assert (folder / "photo.jpg").read_bytes() == b"taken"


def test_candidate_names_are_deterministic_and_not_drive_style():
    names = candidate_names("a.tar.jpg")
    assert [next(names) for _ in range(3)] == ["a.tar.jpg", "a.tar__2.jpg", "a.tar__3.jpg"]
    names = candidate_names("noext")
    assert [next(names) for _ in range(2)] == ["noext", "noext__2"]


@pytest.fixture
def quick_retries(monkeypatch):
    from smart_sorter.storage import retrying

    monkeypatch.setattr(retrying, "DELAYS", (0.0, 0.0, 0.0))


def test_transient_errors_are_retried(source_file, tmp_path, monkeypatch, quick_retries):
    import errno

    from smart_sorter.storage import placing

    real_write = placing._write_temp_copy
    failures = []

    def flaky(source, temp, sha):
        if len(failures) < 2:
            failures.append(1)
            temp.write_bytes(b"half")  # a partial temp file, as a dropped mount leaves
            temp.unlink()
            raise OSError(errno.EIO, "Input/output error")
        return real_write(source, temp, sha)

    monkeypatch.setattr(placing, "_write_temp_copy", flaky)
    placement = place_file(source_file, tmp_path / "out", "copy", sha256_of(source_file))
    assert placement.path.read_bytes() == b"evidence bytes" and len(failures) == 2


def test_a_copy_that_keeps_failing_halfway_leaves_nothing_and_keeps_the_source(
    source_file, tmp_path, monkeypatch, quick_retries
):
    import errno

    real_open = open

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle

        def write(self, chunk):
            self.handle.write(chunk[: len(chunk) // 2])
            raise OSError(errno.EIO, "Input/output error")

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    def failing_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return HalfWriter(handle) if "x" in mode else handle

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(PlacementError, match="still failing after several tries"):
        place_file(source_file, tmp_path / "out", "copy", sha256_of(source_file))
    monkeypatch.undo()
    assert source_file.read_bytes() == b"evidence bytes"
    assert list((tmp_path / "out").iterdir()) == []  # no temporary file, nothing under a final name
