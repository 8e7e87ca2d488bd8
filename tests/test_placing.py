import os
from pathlib import Path

import pytest

from smart_sorter.errors import DiskFullError, PlacementError
from smart_sorter.storage.placing import TEMP_PREFIX, candidate_names, holds_same_bytes, place_file, sha256_of


@pytest.fixture
def source_file(tmp_path):
    path = tmp_path / "src" / "photo.jpg"
    path.parent.mkdir()
    path.write_bytes(b"evidence bytes")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    path.chmod(0o640)
    return path


def test_copy_keeps_bytes_and_timestamps_and_leaves_the_source(source_file, tmp_path):
    placement = place_file(source_file, tmp_path / "out" / "cat", "copy", sha256_of(source_file))
    placed = placement.path
    assert placed == tmp_path / "out" / "cat" / "photo.jpg" and placement.action == "copied"
    assert placed.read_bytes() == b"evidence bytes" and source_file.exists()
    assert placed.stat().st_mtime == 1_600_000_000 and placed.stat().st_mode == source_file.stat().st_mode
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
        if os.path.basename(os.fspath(src)) == source_file.name:
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
            (tmp_path / "out" / temp.name).write_bytes(b"half")  # a partial temp file, as a dropped mount leaves
            temp.remove()
            raise OSError(errno.EIO, "Input/output error")
        return real_write(source, temp, sha)

    monkeypatch.setattr(placing, "_write_temp_copy", flaky)
    placement = place_file(source_file, tmp_path / "out", "copy", sha256_of(source_file))
    assert placement.path.read_bytes() == b"evidence bytes" and len(failures) == 2


def test_a_copy_that_keeps_failing_halfway_leaves_nothing_and_keeps_the_source(
    source_file, tmp_path, monkeypatch, quick_retries
):
    import errno

    real_write = os.write

    def half_write(descriptor, data):
        real_write(descriptor, bytes(data[: len(data) // 2]))
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(PlacementError, match="still failing after several tries"):
        place_file(source_file, tmp_path / "out", "copy", sha256_of(source_file))
    monkeypatch.undo()
    assert source_file.read_bytes() == b"evidence bytes"
    assert list((tmp_path / "out").iterdir()) == []  # no temporary file, nothing under a final name


# Links on the destination side are never followed, and never taken for a duplicate.


def test_a_link_to_the_source_in_the_label_folder_is_not_a_duplicate_and_the_move_keeps_the_bytes(
    source_file, tmp_path
):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").symlink_to(source_file)
    placement = place_file(source_file, folder, "move", sha256_of(source_file))
    assert placement.action == "moved" and placement.path.name == "photo__2.jpg"
    assert placement.path.read_bytes() == b"evidence bytes" and not placement.path.is_symlink()
    assert (folder / "photo.jpg").is_symlink() and not source_file.exists()


def test_a_hard_link_of_the_source_is_not_its_own_duplicate(source_file, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    os.link(source_file, folder / "photo.jpg")
    placement = place_file(source_file, folder, "move", sha256_of(source_file))
    assert placement.action == "moved" and placement.path.name == "photo__2.jpg"
    assert placement.path.read_bytes() == b"evidence bytes" and not source_file.exists()


def test_holds_same_bytes_does_not_follow_links(source_file, tmp_path):
    link = tmp_path / "link.jpg"
    link.symlink_to(source_file)
    digest = sha256_of(source_file)
    assert holds_same_bytes(source_file, digest) and not holds_same_bytes(link, digest)
    assert not holds_same_bytes(tmp_path, digest)


@pytest.mark.parametrize("operation", ["copy", "move"])
@pytest.mark.parametrize("with_root", [False, True])
def test_a_label_folder_swapped_for_a_link_is_refused(source_file, tmp_path, operation, with_root):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat").symlink_to(elsewhere)
    root = out if with_root else None
    with pytest.raises(PlacementError, match="symbolic link or a file, not a folder"):
        place_file(source_file, out / "cat", operation, sha256_of(source_file), root=root)
    assert source_file.read_bytes() == b"evidence bytes" and list(elsewhere.iterdir()) == []


def test_with_root_a_link_anywhere_between_root_and_folder_is_refused(source_file, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "cat").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "group").symlink_to(elsewhere)
    with pytest.raises(PlacementError, match="symbolic link"):
        place_file(source_file, out / "group" / "cat", "move", sha256_of(source_file), root=out)
    assert source_file.exists() and list((elsewhere / "cat").iterdir()) == []
    placed = place_file(source_file, out / "a" / "b", "copy", sha256_of(source_file), root=out).path
    assert placed == out / "a" / "b" / "photo.jpg" and placed.read_bytes() == b"evidence bytes"


def test_a_label_folder_that_is_a_file_is_refused(source_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat").write_bytes(b"not a folder")
    with pytest.raises(PlacementError, match="not a folder"):
        place_file(source_file, out / "cat", "move", sha256_of(source_file))
    assert source_file.exists()


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_a_source_swapped_for_a_link_after_the_scan_is_refused_not_followed(source_file, tmp_path, operation):
    digest = sha256_of(source_file)
    elsewhere = tmp_path / "elsewhere.jpg"
    source_file.rename(elsewhere)
    source_file.symlink_to(elsewhere)  # same bytes behind it, but not the scanned file
    with pytest.raises(PlacementError, match="symbolic link"):
        place_file(source_file, tmp_path / "out", operation, digest)
    assert source_file.is_symlink() and elsewhere.read_bytes() == b"evidence bytes"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_source_that_is_no_longer_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(PlacementError, match="no longer a regular file"):
        place_file(fifo, tmp_path / "out", "move", "0" * 64)
    assert fifo.exists()


@pytest.mark.parametrize("cross_device", [False, True])
def test_a_source_folder_that_is_read_only_moves_nothing(source_file, tmp_path, monkeypatch, cross_device):
    import errno

    real_unlink, real_link = os.unlink, os.link

    def read_only(path, *args, **kwargs):
        in_source_folder = kwargs.get("dir_fd") is None or os.path.samestat(
            os.fstat(kwargs["dir_fd"]), os.stat(source_file.parent)
        )
        if os.path.basename(os.fspath(path)) == source_file.name and "out" not in os.fspath(path) and in_source_folder:
            raise OSError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_unlink(path, *args, **kwargs)

    def no_link_across(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(src)) == source_file.name:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", read_only)
    if cross_device:
        monkeypatch.setattr(os, "link", no_link_across)
    folder = tmp_path / "out"
    with pytest.raises(PlacementError, match="read-only; its copy was removed again, so nothing was moved"):
        place_file(source_file, folder, "move", sha256_of(source_file))
    assert source_file.read_bytes() == b"evidence bytes" and list(folder.iterdir()) == []


def test_dedupe_false_never_takes_an_existing_file_as_the_placement(source_file, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"evidence bytes")  # a user's own identical file
    digest = sha256_of(source_file)
    copied = place_file(source_file, folder, "copy", digest, dedupe=False)
    assert copied.action == "copied" and copied.path.name == "photo__2.jpg"
    moved = place_file(source_file, folder, "move", digest, dedupe=False)
    assert moved.action == "moved" and moved.path.name == "photo__3.jpg" and not source_file.exists()
    assert all(p.read_bytes() == b"evidence bytes" for p in folder.iterdir())


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_names_that_are_not_utf8_are_placed(tmp_path, operation):
    raw = os.fsencode(tmp_path) + b"/src/\xff\xfe.jpg"
    os.makedirs(os.path.dirname(raw))
    with open(raw, "wb") as handle:
        handle.write(b"evidence bytes")
    source = Path(os.fsdecode(raw))
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / source.name).write_bytes(b"taken")
    placement = place_file(source, folder, operation, sha256_of(source))
    assert os.fsencode(placement.path.name) == b"\xff\xfe__2.jpg"
    assert placement.path.read_bytes() == b"evidence bytes"
    assert source.exists() == (operation == "copy")


# Without hard links (exFAT, FAT, some network mounts): never a half-written file under a final name.


@pytest.fixture
def no_hard_links(monkeypatch):
    import errno

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)


@pytest.fixture
def no_renameat2(monkeypatch):
    from smart_sorter.storage import placing

    monkeypatch.setattr(placing, "_rename_noreplace", lambda folder, old, new: False)


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_without_links_or_renameat2_a_placeholder_is_replaced_by_the_verified_copy(
    source_file, tmp_path, monkeypatch, no_hard_links, no_renameat2, operation
):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"taken")
    seen, real_replace = [], os.replace

    def announce(name, temp, action):
        seen.append((name, bool(temp), (folder / name).exists() if name else None))

    def replace(old, new, *args, **kwargs):
        placeholder = folder / os.fspath(new)
        seen.append(("replacing", placeholder.stat().st_size, (folder / os.fspath(old)).read_bytes()))
        return real_replace(old, new, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    placement = place_file(source_file, folder, operation, sha256_of(source_file), announce=announce)
    assert placement.path.name == "photo__2.jpg" and placement.path.read_bytes() == b"evidence bytes"
    assert placement.path.stat().st_mtime == 1_600_000_000
    tried_link = [("photo__2.jpg", False, False)] if operation == "move" else []
    assert seen == [*tried_link, ("", True, None), ("photo__2.jpg", True, False), ("replacing", 0, b"evidence bytes")]
    assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg", "photo__2.jpg"]
    assert source_file.exists() == (operation == "copy")


def test_without_links_renameat2_publishes_where_the_file_system_has_it(
    source_file, tmp_path, monkeypatch, no_hard_links
):
    from smart_sorter.storage import placing

    results, real = [], placing._rename_noreplace
    monkeypatch.setattr(placing, "_rename_noreplace", lambda *args: results.append(real(*args)) or results[-1])
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"taken")
    placement = place_file(source_file, folder, "copy", sha256_of(source_file))
    assert placement.path.name == "photo__2.jpg" and placement.path.read_bytes() == b"evidence bytes"
    if results != [True]:
        pytest.skip(f"this file system has no RENAME_NOREPLACE ({results})")
    assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg", "photo__2.jpg"]


def test_a_publish_that_keeps_failing_leaves_no_placeholder(
    source_file, tmp_path, monkeypatch, no_hard_links, no_renameat2, quick_retries
):
    import errno

    def failing_replace(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PlacementError, match="still failing"):
        place_file(source_file, tmp_path / "out", "move", sha256_of(source_file))
    assert list((tmp_path / "out").iterdir()) == [] and source_file.read_bytes() == b"evidence bytes"


def test_metadata_the_file_system_refuses_is_not_an_error(source_file, tmp_path, monkeypatch):
    import errno

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(os, "utime", refuse)
    monkeypatch.setattr(os, "chmod", refuse)
    placement = place_file(source_file, tmp_path / "out", "copy", sha256_of(source_file))
    assert placement.action == "copied" and placement.path.read_bytes() == b"evidence bytes"


KILLED_PLACEMENT = """
import os, signal, sys
from pathlib import Path
from smart_sorter.storage import placing

step, source, folder, log = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
def no_links(*args, **kwargs):
    raise OSError(1, "Operation not permitted")
os.link = no_links
placing._rename_noreplace = lambda folder, old, new: False
kill = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if step == "copying":
    real_write = os.write
    def write(descriptor, data):
        real_write(descriptor, bytes(data[:1000]))
        kill()
    os.write = write
elif step == "publishing":
    os.replace = kill
def announce(name, temp, action):
    with open(log, "a") as handle:
        handle.write(f"{name}|{temp}\\n")
placing.place_file(source, folder, "move", placing.sha256_of(source), announce=announce)
"""


@pytest.mark.parametrize("step", ["copying", "publishing"])
def test_a_kill_without_hard_links_leaves_nothing_half_written_under_a_final_name(tmp_path, step):
    import subprocess
    import sys

    source = tmp_path / "src" / "photo.jpg"
    source.parent.mkdir()
    source.write_bytes(os.urandom(3_000_000))
    folder, log = tmp_path / "out", tmp_path / "announced.txt"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"someone else's file")
    process = subprocess.run([sys.executable, "-c", KILLED_PLACEMENT, step, source, folder, log])
    assert process.returncode == -9  # killed at that step
    assert sha256_of(source) and source.stat().st_size == 3_000_000  # the source is untouched
    assert (folder / "photo.jpg").read_bytes() == b"someone else's file"
    claims = [line.split("|") for line in log.read_text().splitlines()]
    temps = {temp for _, temp in claims if temp}
    finals = [p for p in folder.iterdir() if p.name not in temps and p.name != "photo.jpg"]
    for path in finals:  # only our empty placeholder, announced with its temporary file
        assert path.stat().st_size == 0 and [path.name, *temps] in claims
    assert bool(finals) == (step == "publishing")
    temp_files = [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert len(temp_files) == 1 and temp_files[0].name in temps
