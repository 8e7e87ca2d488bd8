"""Reading files ahead of the model: read and hash in many threads, decode in a few, yielded in order.

Each file is opened once, without following a symlink and without waiting on a FIFO, checked to
be a regular file on the open descriptor, then hashed in chunks; only images within the size
limit are kept in memory for decoding, so a huge file costs a chunk of memory, not its size.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from ..errors import DecodeError
from ..options import MEGABYTE, SortOptions
from ..storage.retrying import retry_io
from .finding import OPEN_FLAGS, FoundFile, not_regular

MAX_IMAGE_BYTES = SortOptions.max_image_mb * MEGABYTE  # larger files are hashed (streamed) but not decoded
_CHUNK = 1024 * 1024
_MB = 1024 * 1024
# Threads reading files: they mostly wait (on a network file system, tens of milliseconds per call),
# so many can be in flight without taking CPU from decoding or the model.
READERS = 16


@dataclass
class Prepared:
    """One file after the decoding worker: its hash and model input, or why it failed."""

    found: FoundFile
    sha256: str
    pixels: Any = None
    error: str = ""
    cached: bool = False  # its embedding is in the cache: not decoded
    stamp: tuple[int, int] | None = None  # size and mtime (ns) as it was hashed; None: the hash was known


@dataclass(frozen=True)
class FileBytes:
    """A file's SHA-256 and, when it is within the size limit, its bytes (else None)."""

    sha256: str
    data: bytes | None
    size: int
    stamp: tuple[int, int] = (0, 0)  # size and mtime (ns) of the open file, before it was read


def _open(found: FoundFile) -> int:
    """A descriptor of the regular file `found` names, or DecodeError with the reason."""
    # a symlink found inside the source is followed; any other path must not have become one
    flags = OPEN_FLAGS if found.link_to is None else OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = retry_io(lambda: os.open(found.path, flags))
    except OSError as error:
        if error.errno == errno.ELOOP and found.link_to is None:
            raise DecodeError("became a symbolic link after it was found; not followed") from None
        raise DecodeError(f"cannot read file: {error.strerror or error}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise DecodeError(f"{not_regular(status.st_mode)}; not read")
        if found.link_to is not None and (status.st_dev, status.st_ino) != found.link_to:
            raise DecodeError("symbolic link leads to another file than when it was found; not read")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def read_file(found: FoundFile, *, max_bytes: int = MAX_IMAGE_BYTES) -> FileBytes:
    """Open `found` once, hash it in chunks, and keep its bytes when there are at most `max_bytes`.

    Raises DecodeError for a path that is no longer a regular file or cannot be read.
    """
    descriptor = _open(found)
    try:
        status = os.fstat(descriptor)
        size = status.st_size
        digest = hashlib.sha256()
        parts: list[bytes] | None = []
        offset = 0
        # a file within the limit is read in one piece (one allocation, no join); others in chunks
        want = size if 0 < size <= max_bytes else _CHUNK
        while True:
            try:
                chunk = retry_io(partial(os.pread, descriptor, want, offset))
            except OSError as error:
                raise DecodeError(f"cannot read file: {error.strerror or error}") from None
            if not chunk:
                break
            offset += len(chunk)
            digest.update(chunk)
            if parts is not None and offset <= max_bytes:
                parts.append(chunk)
            else:
                parts = None  # over the limit: hashed on, kept no longer
            want = _CHUNK
    finally:
        os.close(descriptor)
    data = None if parts is None else parts[0] if len(parts) == 1 else b"".join(parts)
    return FileBytes(digest.hexdigest(), data, offset, (status.st_size, status.st_mtime_ns))


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"larger than the {max_bytes / _MB:g} MB limit for images ({size / _MB:.0f} MB); hashed but not"
        " decoded. Raise the image size limit to sort it"
    )


def _yield_to_model() -> None:
    """Decoding threads run at a lower priority so they use the time the model leaves idle."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _read_one(found: FoundFile, max_bytes: int, cached: frozenset[str] | set[str]) -> tuple[Prepared, bytes | None]:
    """The file read and hashed, with its bytes when they are still to be decoded (else None)."""
    try:
        bytes_read = read_file(found, max_bytes=max_bytes)
    except DecodeError as error:
        return Prepared(found, "", error=str(error)), None
    except MemoryError:
        return Prepared(found, "", error="image too large for the memory available"), None
    prepared = Prepared(found, bytes_read.sha256, cached=bytes_read.sha256 in cached, stamp=bytes_read.stamp)
    if prepared.cached:
        return prepared, None
    if bytes_read.data is None:
        prepared.error = _too_large(bytes_read.size, max_bytes)
        return prepared, None
    return prepared, bytes_read.data


def _decode(prepare: Callable[[bytes], Any], prepared: Prepared, data: bytes, held: threading.Semaphore) -> Prepared:
    """Prepare one file's bytes (in a decoding worker), then free its reader's slot."""
    try:
        prepared.pixels = prepare(data)
    except DecodeError as error:
        prepared.error = str(error)
    except MemoryError:
        prepared.error = "image too large for the memory available"
    finally:
        held.release()
    return prepared


def prepared_stream(
    files: Iterable[FoundFile],
    prepare: Callable[[bytes], Any],
    *,
    workers: int,
    lookahead: int,
    known_hashes: Mapping[str, str] | None = None,
    cached: frozenset[str] | set[str] = frozenset(),
    max_bytes: int = MAX_IMAGE_BYTES,
    readers: int = READERS,
) -> Iterator[Prepared]:
    """Read and hash files in `readers` threads and prepare them in `workers` threads, yielded in order.

    Reading waits on the disk or the network and decoding on the CPU: apart, many reads can be in
    flight (hiding a network file system's latency) while decoding uses only the cores it is given.
    At most `readers` files' bytes are held between reading and decoding. A file whose hash is in
    `cached` is not decoded; one listed in `known_hashes` (unchanged since it was last hashed) with a
    cached embedding is not even read. A file over `max_bytes` is only hashed and becomes an error row.
    """
    known_hashes = known_hashes or {}
    held = threading.BoundedSemaphore(readers)  # files read and waiting for a decoder

    def read(found: FoundFile) -> Prepared | Future[Prepared]:
        if known_hashes.get(found.relative) in cached:
            return Prepared(found, known_hashes[found.relative], cached=True)
        held.acquire()
        try:
            prepared, data = _read_one(found, max_bytes, cached)
        except BaseException:
            held.release()
            raise
        if data is None:
            held.release()
            return prepared
        return decoders.submit(_decode, prepare, prepared, data, held)

    with (
        ThreadPoolExecutor(max_workers=readers, thread_name_prefix="smart-sorter-read") as reading,
        ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="smart-sorter-decode", initializer=_yield_to_model
        ) as decoders,
    ):
        iterator = iter(files)
        ahead = max(lookahead, 2 * readers)
        pending: deque[Future[Prepared | Future[Prepared]]] = deque(
            reading.submit(read, found) for found in islice(iterator, ahead)
        )
        while pending:
            done = pending.popleft().result()
            for found in islice(iterator, 1):
                pending.append(reading.submit(read, found))
            yield done.result() if isinstance(done, Future) else done


def chunks(items: Iterator[Prepared], size: int) -> Iterator[list[Prepared]]:
    while chunk := list(islice(items, size)):
        yield chunk
