import os

import pytest

from smart_sorter.errors import DiskFullError, PlacementError
from smart_sorter.placing import TEMP_PREFIX, candidate_names, place_file, sha256_of


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "src" / "photo.jpg"
    path.parent.mkdir()
    path.write_bytes(b"evidence bytes")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    return path


def test_copy_keeps_bytes_and_timestamps_and_leaves_the_source(source_file, tmp_path):
    placed = place_file(source_file, tmp_path / "out" / "cat", "copy", sha256_of(source_file))
    assert placed == tmp_path / "out" / "cat" / "photo.jpg"
    assert placed.read_bytes() == b"evidence bytes" and source_file.exists()
    assert placed.stat().st_mtime == 1_600_000_000
    assert not [p for p in placed.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_taken_name_is_never_overwritten(source_file, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"someone else's file")
    first = place_file(source_file, folder, "copy", sha256_of(source_file))
    second = place_file(source_file, folder, "copy", sha256_of(source_file))
    assert (folder / "photo.jpg").read_bytes() == b"someone else's file"
    assert [first.name, second.name] == ["photo__2.jpg", "photo__3.jpg"]


def test_move_removes_the_source_only_after_placing(source_file, tmp_path):
    digest = sha256_of(source_file)
    placed = place_file(source_file, tmp_path / "out", "move", digest)
    assert not source_file.exists() and sha256_of(placed) == digest


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
    placed = place_file(source_file, tmp_path / "out", "move", digest)
    assert not source_file.exists() and sha256_of(placed) == digest


def test_without_hard_links_names_are_claimed_exclusively(source_file, tmp_path, monkeypatch):
    import errno

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"taken")
    placed = place_file(source_file, folder, "copy", sha256_of(source_file))
    assert placed.name == "photo__2.jpg" and placed.read_bytes() == b"evidence bytes"
    assert (folder / "photo.jpg").read_bytes() == b"taken"


def test_candidate_names_are_deterministic_and_not_drive_style():
    names = candidate_names("a.tar.jpg")
    assert [next(names) for _ in range(3)] == ["a.tar.jpg", "a.tar__2.jpg", "a.tar__3.jpg"]
    names = candidate_names("noext")
    assert [next(names) for _ in range(2)] == ["noext", "noext__2"]
