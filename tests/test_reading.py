"""Reading files for the model: opened once, regular files only, hashed in chunks, bytes within a limit."""

import hashlib
import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from smart_sorter.errors import DecodeError
from smart_sorter.pipeline import reading
from smart_sorter.pipeline.finding import FoundFile, find_images
from smart_sorter.pipeline.reading import MAX_IMAGE_BYTES, prepared_stream, read_file
from tests.factories import image_bytes, noise_image
from tests.test_finding import finished_within, unblock_fifo


def stream(files, prepare=lambda data: len(data), **options):
    options = {"workers": 2, "lookahead": 3, **options}
    return list(prepared_stream(files, prepare, **options))


def found(path, root):
    return FoundFile(path, path.relative_to(root).as_posix())


def test_rows_come_in_order_with_hashes_and_prepared_inputs(tmp_path):
    files = []
    for index in range(7):
        path = tmp_path / f"{index}.png"
        path.write_bytes(image_bytes(noise_image(index), "PNG"))
        files.append(found(path, tmp_path))
    items = stream(files)
    assert [item.found for item in items] == files
    for item in items:
        data = item.found.path.read_bytes()
        assert item.sha256 == hashlib.sha256(data).hexdigest() and item.pixels == len(data) and not item.error


def test_known_and_cached_files_are_not_decoded_or_not_read(tmp_path):
    paths = [tmp_path / name for name in ("a.jpg", "b.jpg", "c.jpg")]
    for index, path in enumerate(paths):
        path.write_bytes(image_bytes(noise_image(index), "JPEG"))
    files = [found(path, tmp_path) for path in paths]
    sha_b = hashlib.sha256(paths[1].read_bytes()).hexdigest()
    paths[0].unlink()  # known and cached: not even opened, so its absence does not matter
    prepared = []
    items = stream(files, lambda data: prepared.append(data) or "pixels",
                   known_hashes={"a.jpg": "known"}, cached={"known", sha_b})  # fmt: skip
    assert [(item.cached, item.error, item.pixels) for item in items] == [
        (True, "", None), (True, "", None), (False, "", "pixels"),
    ]  # fmt: skip
    assert items[0].sha256 == "known" and items[1].sha256 == sha_b and len(prepared) == 1


def test_each_file_is_opened_once_without_following_links_or_blocking(tmp_path, monkeypatch):
    path = tmp_path / "a.jpg"
    path.write_bytes(image_bytes(noise_image(1), "JPEG"))
    opened = []
    real_open = os.open

    def spy(name, flags, *args, **kwargs):
        opened.append((os.fspath(name), flags))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    [item] = stream([found(path, tmp_path)])
    assert not item.error and len(opened) == 1 and opened[0][0] == str(path)
    assert opened[0][1] & os.O_NOFOLLOW and opened[0][1] & os.O_NONBLOCK and opened[0][1] & os.O_CLOEXEC


def test_a_fifo_put_in_place_after_the_scan_is_an_error_row_not_a_hang(tmp_path):
    path = tmp_path / "photo.jpg"
    os.mkfifo(path)
    items = finished_within(10, stream, [found(path, tmp_path)], release=unblock_fifo(path))
    assert [item.error for item in items] == ["not a regular file (a FIFO); not read"]


def test_a_device_is_an_error_row_not_read_into_memory():
    items = stream([FoundFile(Path("/dev/null"), "null.jpg")])  # /dev/null: harmless if it were read
    assert [item.error for item in items] == ["not a regular file (a character device); not read"]


def test_a_file_swapped_for_a_symlink_after_the_scan_is_not_followed(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(image_bytes(noise_image(1), "JPEG"))
    (tmp_path / "secret.jpg").write_bytes(image_bytes(noise_image(2), "JPEG"))
    [photo, _] = find_images(tmp_path).files
    (tmp_path / "photo.jpg").unlink()
    os.symlink(tmp_path / "secret.jpg", tmp_path / "photo.jpg")
    [item] = stream([photo])
    assert item.error == "became a symbolic link after it was found; not followed" and item.pixels is None


def test_a_symlink_found_inside_the_source_is_read_unless_pointed_elsewhere_since(tmp_path):
    for index, name in enumerate(["a.jpg", "b.jpg"]):
        (tmp_path / name).write_bytes(image_bytes(noise_image(index), "JPEG"))
    os.symlink(tmp_path / "a.jpg", tmp_path / "link.jpg")
    link = find_images(tmp_path).files[2]
    assert link.relative == "link.jpg"
    [item] = stream([link])
    assert not item.error and item.sha256 == hashlib.sha256((tmp_path / "a.jpg").read_bytes()).hexdigest()
    (tmp_path / "link.jpg").unlink()
    os.symlink(tmp_path / "b.jpg", tmp_path / "link.jpg")
    [item] = stream([link])
    assert item.error == "symbolic link leads to another file than when it was found; not read"


def test_a_file_over_the_limit_is_hashed_in_chunks_not_decoded(tmp_path):
    path = tmp_path / "huge.jpg"
    content = image_bytes(noise_image(1), "JPEG") + os.urandom(24 * 1024 * 1024)
    path.write_bytes(content)
    prepared = []
    tracemalloc.start()
    try:
        [item] = stream([found(path, tmp_path)], prepared.append, max_bytes=2 * 1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert item.sha256 == hashlib.sha256(content).hexdigest() and prepared == []
    assert item.error.startswith("larger than the 2 MB limit for images (24 MB); hashed but not decoded")
    assert peak < 8 * 1024 * 1024  # chunks, not the file


def test_the_limit_defaults_to_the_module_constant_and_a_file_at_it_is_read(tmp_path):
    assert MAX_IMAGE_BYTES >= 100 * 1024 * 1024
    path = tmp_path / "a.png"
    path.write_bytes(image_bytes(noise_image(1), "PNG"))
    size = path.stat().st_size
    assert read_file(found(path, tmp_path), max_bytes=size).data == path.read_bytes()
    assert read_file(found(path, tmp_path), max_bytes=size - 1).data is None


def test_a_file_that_grew_after_it_was_measured_is_still_limited(tmp_path, monkeypatch):
    path = tmp_path / "growing.jpg"
    path.write_bytes(b"x" * 1200)
    real_fstat = os.fstat

    def measured_earlier(descriptor):
        values = list(real_fstat(descriptor))
        values[6] = 900  # st_size when measured; 1200 bytes by the time they are read
        return os.stat_result(values)

    monkeypatch.setattr(reading, "_CHUNK", 200)
    monkeypatch.setattr(os, "fstat", measured_earlier)
    grown = read_file(found(path, tmp_path), max_bytes=1000)
    assert grown.data is None and grown.size == 1200
    assert grown.sha256 == hashlib.sha256(b"x" * 1200).hexdigest()
    assert read_file(found(path, tmp_path), max_bytes=1200).data == b"x" * 1200


def test_unreadable_files_give_the_reason(tmp_path):
    with pytest.raises(DecodeError, match="cannot read file: No such file"):
        read_file(FoundFile(tmp_path / "gone.jpg", "gone.jpg"))


def test_names_that_are_not_utf8_are_read(tmp_path):
    with open(os.fsencode(tmp_path) + b"/caf\xe9.jpg", "wb") as handle:
        handle.write(image_bytes(noise_image(5), "JPEG"))
    [item] = stream(find_images(tmp_path).files)
    assert not item.error and os.fsencode(item.found.relative) == b"caf\xe9.jpg"


def test_workers_read_in_parallel_threads(tmp_path):
    names = set()
    for index in range(6):
        (tmp_path / f"{index}.jpg").write_bytes(b"x")
    stream(find_images(tmp_path).files, lambda data: names.add(threading.current_thread().name))
    assert names and all(name.startswith("smart-sorter-decode") for name in names)


def test_reads_wait_in_many_threads_while_decoding_keeps_to_its_workers(tmp_path, monkeypatch):
    """A network file system's latency is hidden by many reads in flight; decoding uses only its workers."""
    import time

    from smart_sorter.pipeline import reading

    for index in range(40):
        (tmp_path / f"{index}.jpg").write_bytes(image_bytes(noise_image(index % 4), "JPEG"))
    lock, reading_now, most_reading, waiting, most_waiting = threading.Lock(), [0], [0], [0], [0]
    real_read = reading.read_file

    def slow_read(found, **options):  # 50 ms per file, as a remote disk
        with lock:
            reading_now[0] += 1
            most_reading[0] = max(most_reading[0], reading_now[0])
        time.sleep(0.05)
        with lock:
            reading_now[0] -= 1
            waiting[0] += 1
            most_waiting[0] = max(most_waiting[0], waiting[0])
        return real_read(found, **options)

    decoders = set()

    def prepare(data):
        with lock:
            waiting[0] -= 1
        decoders.add(threading.current_thread().name)
        return len(data)

    monkeypatch.setattr(reading, "read_file", slow_read)
    files = find_images(tmp_path).files
    started = time.perf_counter()
    items = stream(files, prepare, readers=8, workers=2)
    seconds = time.perf_counter() - started
    assert [item.found.relative for item in items] == [found.relative for found in files]  # in order
    assert all(item.pixels and not item.error for item in items)
    assert most_reading[0] >= 6 and seconds < 40 * 0.05 / 3  # in one thread it would take 2 s
    assert len(decoders) <= 2 and all(name.startswith("smart-sorter-decode") for name in decoders)
    assert most_waiting[0] <= 8  # bytes held between reading and decoding: at most one file per reader
