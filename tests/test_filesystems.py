"""Placing onto real file systems without hard links: exFAT (exfat-fuse) and FAT (fusefat).

Each test mounts a small image in tmp_path and unmounts it afterwards. Where mounting is not
possible (no FUSE, no tools, not root for exFAT's loop device) the tests skip and say why, except
when SMART_SORTER_REQUIRE_FUSE=1 (set by .ci/run, which installs the tools): then they fail. The same
code paths are always exercised by the emulations in test_placing.py (no os.link, no renameat2).
"""

import errno
import hashlib
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from smart_sorter.storage.placing import TEMP_PREFIX, place_file, sha256_of


def unavailable(reason: str) -> None:
    if os.environ.get("SMART_SORTER_REQUIRE_FUSE") == "1":
        pytest.fail(f"SMART_SORTER_REQUIRE_FUSE=1 but {reason}")
    pytest.skip(reason)


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def mount_exfat(image: Path, mountpoint: Path) -> list[str]:
    """Mount an exFAT image; returns the commands that undo it."""
    if not shutil.which("mkfs.exfat") or not shutil.which("mount.exfat-fuse"):
        unavailable("exFAT tools missing: apt-get install exfat-fuse exfatprogs")
    if os.geteuid() != 0 or not shutil.which("losetup"):
        unavailable("exfat-fuse needs a block device, and making a loop device needs root")
    if run("mkfs.exfat", str(image)).returncode:
        unavailable("mkfs.exfat failed")
    loop = run("losetup", "--find", "--show", str(image))
    if loop.returncode:
        unavailable(f"no loop device for the exFAT image: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    mounted = run("mount.exfat-fuse", device, str(mountpoint))
    if mounted.returncode:
        run("losetup", "-d", device)
        unavailable(f"cannot mount exFAT with FUSE here: {mounted.stderr.strip()}")
    return [f"fusermount -u {mountpoint}", f"losetup -d {device}"]


def mount_fat(image: Path, mountpoint: Path) -> list[str]:
    if not shutil.which("mkfs.vfat") or not shutil.which("fusefat"):
        unavailable("FAT tools missing: apt-get install fusefat dosfstools")
    if run("mkfs.vfat", str(image)).returncode:
        unavailable("mkfs.vfat failed")
    mounted = run("fusefat", "-o", "rw+", str(image), str(mountpoint))
    if mounted.returncode:
        unavailable(f"cannot mount FAT with FUSE here: {mounted.stderr.strip()}")
    return [f"fusermount -u {mountpoint}"]


@pytest.fixture(params=["exfat", "fat"])
def mounted(request, tmp_path) -> Path:
    """An empty, freshly made file system of that kind, mounted in tmp_path."""
    if not Path("/dev/fuse").exists() or not shutil.which("fusermount"):
        unavailable("FUSE is not available on this machine (/dev/fuse, fusermount)")
    image, mountpoint = tmp_path / f"{request.param}.img", tmp_path / request.param
    mountpoint.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    undo = (mount_exfat if request.param == "exfat" else mount_fat)(image, mountpoint)
    request.addfinalizer(lambda: [run(*command.split()) for command in undo])
    return mountpoint


def has_no_hard_links(folder: Path) -> bool:
    (folder / "probe").write_bytes(b"")
    try:
        os.link(folder / "probe", folder / "probe-link")
    except OSError as error:
        return error.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)
    finally:
        for name in ("probe", "probe-link"):
            (folder / name).unlink(missing_ok=True)
    return False


def make_source(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (1_600_000_000, 1_600_000_000))  # an even second: FAT keeps two-second times
    return path


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.slow
def test_copy_and_move_onto_a_file_system_without_hard_links(mounted, tmp_path):
    assert has_no_hard_links(mounted)  # so every placement here had to do without them
    folder = mounted / "cat"
    copied_source = make_source(tmp_path / "one", "photo.jpg", os.urandom(3_000_000))
    copied = place_file(copied_source, folder, "copy", sha256_of(copied_source))
    assert copied.path == folder / "photo.jpg" and copied.action == "copied"
    assert sha256_of(copied.path) == sha256_of(copied_source) and copied.path.stat().st_nlink == 1
    assert copied.path.stat().st_mtime == 1_600_000_000

    moved_source = make_source(tmp_path / "two", "photo.jpg", b"other evidence")  # same name, other bytes
    digest = sha256_of(moved_source)
    moved = place_file(moved_source, folder, "move", digest)  # across file systems
    assert moved.path == folder / "photo__2.jpg" and moved.action == "moved" and not moved_source.exists()
    assert sha256_of(moved.path) == digest

    again = place_file(moved.path, mounted / "dog", "move", digest)  # within the mount: no link either
    assert again.path == mounted / "dog" / "photo__2.jpg" and again.action == "moved"
    assert not moved.path.exists() and sha256_of(again.path) == digest

    duplicate = place_file(copied_source, folder, "copy", sha256_of(copied_source))
    assert duplicate.action == "duplicate" and duplicate.path == copied.path
    fresh = place_file(copied_source, folder, "copy", sha256_of(copied_source), dedupe=False)
    assert fresh.path == folder / "photo__2.jpg" and fresh.action == "copied"  # the first __2 moved on to dog/
    assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg", "photo__2.jpg"]
    assert not leftovers(mounted)


@pytest.mark.slow
def test_permissions_the_file_system_refuses_are_not_an_error(mounted, tmp_path):
    probe = mounted / "probe"
    probe.write_bytes(b"")
    try:
        os.chmod(probe, 0o600)
        refused = False
    except OSError:
        refused = True
    probe.unlink()
    assert refused or mounted.name == "exfat"  # FAT via FUSE has no chmod; exFAT accepts and ignores it
    source = make_source(tmp_path / "src", "photo.jpg", b"evidence bytes")
    os.chmod(source, 0o640)
    placed = place_file(source, mounted / "cat", "move", sha256_of(source))
    assert placed.action == "moved" and placed.path.read_bytes() == b"evidence bytes" and not source.exists()
    assert placed.path.stat().st_mtime == 1_600_000_000
    assert not leftovers(mounted)


def tree_hashes(folder: Path) -> Counter:
    return Counter(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.jpg") if ".smart-sorter" not in p.parts
    )


@pytest.mark.slow
def test_a_whole_sorting_run_into_a_file_system_without_hard_links(mounted, tmp_path, tiny_clip):
    import pandas as pd

    from smart_sorter import sort_images
    from tests.factories import image_bytes, noise_image

    source = tmp_path / "photos"
    source.mkdir()
    for index in range(6):
        (source / f"img_{index}.jpg").write_bytes(image_bytes(noise_image(index, size=(24, 24)), "JPEG"))
    before = tree_hashes(source)
    out = mounted / "sorted"
    result = sort_images(source, out, "a,b", model=str(tiny_clip), operation="move", batch_size=2, progress_bar=False)
    assert not list(source.rglob("*.jpg")) and tree_hashes(out) == before
    table = pd.read_csv(result.csv_path, keep_default_na=False, dtype=str)
    assert len(table) == 6 and set(table["action"]) == {"moved"} and not table["error"].any()
    assert not leftovers(mounted)
