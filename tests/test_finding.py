import contextlib
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from smart_sorter.pipeline.finding import find_images, sniff_image_format
from tests.factories import image_bytes, noise_image


def relatives(scan):
    return [item.relative for item in scan.files]


def test_finds_images_recursively_in_sorted_order(tmp_path):
    for name in ["b.jpg", "a.png", "z/c.webp", "y/x/d.gif", "A.JPEG"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}[
            name.rsplit(".", 1)[1].lower()
        ]
        path.write_bytes(image_bytes(noise_image(1), fmt))
    assert relatives(find_images(tmp_path)) == ["A.JPEG", "a.png", "b.jpg", "y/x/d.gif", "z/c.webp"]


def test_content_counts_as_much_as_the_name(tmp_path):
    (tmp_path / "photo.bin").write_bytes(image_bytes(noise_image(1), "JPEG"))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.jpg").write_text("not an image")
    scan = find_images(tmp_path)
    assert relatives(scan) == ["fake.jpg", "photo.bin"]
    assert scan.skipped_other == 1


def test_hidden_files_and_the_destination_are_skipped(tmp_path):
    for name in [".hidden.jpg", ".cache/a.jpg", "sorted/cat/a.jpg", "keep.jpg"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(noise_image(2), "JPEG"))
    assert relatives(find_images(tmp_path, exclude=(tmp_path / "sorted",))) == ["keep.jpg"]


def test_symlinks_do_not_lead_outside_and_loops_do_not_hang(tmp_path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(image_bytes(noise_image(3), "JPEG"))
    source = tmp_path / "source"
    source.mkdir()
    (source / "inside.jpg").write_bytes(image_bytes(noise_image(4), "JPEG"))
    os.symlink(outside, source / "link-out.jpg")
    os.symlink(source, source / "loop")
    assert relatives(find_images(source)) == ["inside.jpg"]


def test_sniffing_recognises_the_formats():
    assert sniff_image_format(image_bytes(noise_image(1), "PNG")[:16]) == "PNG"
    assert sniff_image_format(image_bytes(noise_image(1), "WEBP")[:16]) == "WEBP"
    assert sniff_image_format(image_bytes(noise_image(1), "BMP")[:16]) == "BMP"
    assert sniff_image_format(image_bytes(noise_image(1), "TIFF")[:16]) == "TIFF"
    assert sniff_image_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    assert sniff_image_format(b"hello world12345") is None


# --- files that are not plain images: listed with a reason, never opened in a way that blocks ---


def finished_within(seconds, function, *args, release=None):
    """Run `function` in a thread; fail (after calling `release` to unblock it) if it does not return."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function(*args)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if release is not None:
            release()
        thread.join(5)
        pytest.fail(f"{function.__name__} did not return within {seconds} s")
    return result["value"]


def unblock_fifo(path):
    """Open a FIFO for writing and close it, releasing a reader that waits for a writer."""

    def release():
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    return release


def skips(scan):
    return {item.relative: item.reason for item in scan.skipped}


def test_a_fifo_is_listed_not_opened_and_does_not_hang_the_scan(tmp_path):
    (tmp_path / "real.jpg").write_bytes(image_bytes(noise_image(1), "JPEG"))
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe-without-extension")
    scan = finished_within(10, find_images, tmp_path, release=unblock_fifo(tmp_path / "pipe-without-extension"))
    assert relatives(scan) == ["real.jpg"]
    assert skips(scan) == {"pipe.jpg": "not a regular file (a FIFO)"}
    assert scan.skipped_other == 1  # not named like an image: counted, never sniffed


def test_a_device_named_like_an_image_is_listed_not_found(tmp_path):
    try:
        os.mknod(tmp_path / "zero.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless
    except (PermissionError, AttributeError):
        pytest.skip("cannot create a device file here (needs root on Linux)")
    scan = find_images(tmp_path)
    assert relatives(scan) == [] and skips(scan) == {"zero.jpg": "not a regular file (a character device)"}


def test_a_folder_that_cannot_be_read_is_listed(tmp_path, monkeypatch):
    # Tests run as root, whom chmod 000 does not stop: the walk's scandir refuses one folder instead.
    for name in ["ok/a.jpg", "locked/b.jpg", "locked/deeper/c.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(image_bytes(noise_image(2), "JPEG"))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = find_images(tmp_path)
    assert relatives(scan) == ["ok/a.jpg"]
    assert skips(scan) == {"locked": "folder cannot be read (permission denied)"}


def as_nobody(function, *args):
    """`function(*args)` in a forked child that has given up root for `nobody`; its repr comes back."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(writer, repr(function(*args)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(child, 0)
    return output


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to become another user")
def test_a_folder_that_cannot_be_read_is_listed_for_a_real_user():
    """The same with real permissions: the walk runs as `nobody` (forked), on a chmod 000 folder."""
    top = Path(tempfile.mkdtemp(prefix="smart-sorter-permissions-"))  # tmp_path's parents are root-only
    try:
        os.chmod(top, 0o755)
        for name in ["ok/a.jpg", "locked/b.jpg"]:
            (top / name).parent.mkdir(parents=True, exist_ok=True)
            (top / name).write_bytes(image_bytes(noise_image(2), "JPEG"))
            os.chmod(top / name, 0o644)
        os.chmod(top / "ok", 0o755)
        os.chmod(top / "locked", 0o000)
        summary = as_nobody(lambda: (relatives(scan := find_images(top)), skips(scan)))
        assert summary == repr((["ok/a.jpg"], {"locked": "folder cannot be read (permission denied)"}))
    finally:
        os.chmod(top / "locked", 0o755)
        shutil.rmtree(top)


def test_paths_longer_than_the_system_allows_are_listed(tmp_path):
    """Built with descriptors (openat), as a deep tree copied from elsewhere can be."""
    limit = os.pathconf(tmp_path, "PC_PATH_MAX")
    (tmp_path / "short.jpg").write_bytes(image_bytes(noise_image(1), "JPEG"))
    parts, length = [], len(str(tmp_path))
    while length + 51 < limit - 300:
        parts.append("d" * 50)
        length += 51
    parts.append("e" * (limit - 101 - length))  # the deepest folder's path is 100 short of the limit
    folder = os.open(tmp_path, os.O_RDONLY)
    for part in parts:
        os.mkdir(part, dir_fd=folder)
        inner = os.open(part, os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    long_name = "f" * 150 + ".jpg"  # this file's path passes the limit
    with os.fdopen(os.open(long_name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder), "wb") as handle:
        handle.write(image_bytes(noise_image(2), "JPEG"))
    os.mkdir("x" * 150, dir_fd=folder)  # and so does this folder's
    os.close(folder)
    scan = find_images(tmp_path)
    deep = "/".join(parts)
    assert relatives(scan) == ["short.jpg"]
    too_long = "path longer than the operating system allows"
    assert skips(scan) == {
        f"{deep}/{long_name}": f"cannot be examined ({too_long})",
        f"{deep}/{'x' * 150}": f"folder cannot be read ({too_long})",
    }


def test_links_to_folders_and_out_of_the_source_are_listed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.jpg").write_bytes(image_bytes(noise_image(3), "JPEG"))
    (outside / "notes.txt").write_text("hello")
    source = tmp_path / "source"
    source.mkdir()
    (source / "inside.jpg").write_bytes(image_bytes(noise_image(4), "JPEG"))
    os.symlink(outside / "o.jpg", source / "link-out.jpg")
    os.symlink(outside / "notes.txt", source / "link-out.txt")
    os.symlink(outside, source / "folder-link")
    os.symlink(source / "inside.jpg", source / "link-in.jpg")
    os.symlink(source / "missing.jpg", source / "broken.jpg")
    scan = find_images(source)
    assert relatives(scan) == ["inside.jpg", "link-in.jpg"]
    inside = os.stat(source / "inside.jpg")
    assert scan.files[1].link_to == (inside.st_dev, inside.st_ino) and scan.files[0].link_to is None
    assert skips(scan) == {
        "broken.jpg": "broken symbolic link",
        "folder-link": "symbolic link to a folder; not entered",
        "link-out.jpg": "symbolic link leading outside the source",
    }
    assert scan.skipped_other == 1  # link-out.txt


def test_names_that_are_not_utf8_are_found(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    with open(name, "wb") as handle:
        handle.write(image_bytes(noise_image(5), "JPEG"))
    with open(os.fsencode(tmp_path) + b"/\xff\xfe-no-extension", "wb") as handle:
        handle.write(image_bytes(noise_image(6), "PNG"))
    scan = find_images(tmp_path)
    assert [os.fsencode(item.relative) for item in scan.files] == [b"caf\xe9.jpg", b"\xff\xfe-no-extension"]
    assert scan.files[0].path.read_bytes()[:3] == b"\xff\xd8\xff"
