"""Reading files ahead of the model: read, hash and decode in worker threads, yielded in order."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..errors import DecodeError
from ..storage.retrying import retry_io
from .finding import FoundFile


@dataclass
class Prepared:
    """One file after the decoding worker: its hash and model input, or why it failed."""

    found: FoundFile
    sha256: str
    pixels: Any = None
    error: str = ""
    cached: bool = False  # its embedding is in the cache: not decoded


def _yield_to_model() -> None:
    """Decoding threads run at a lower priority so they use the time the model leaves idle."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def prepared_stream(
    files: Iterable[FoundFile],
    prepare: Callable[[bytes], Any],
    *,
    workers: int,
    lookahead: int,
    known_hashes: Mapping[str, str] | None = None,
    cached: frozenset[str] | set[str] = frozenset(),
) -> Iterator[Prepared]:
    """Read, hash and prepare files in worker threads, `lookahead` files ahead, yielded in order.

    A file whose hash is in `cached` is not decoded; one listed in `known_hashes` (unchanged since
    it was last hashed) with a cached embedding is not even read.
    """
    known_hashes = known_hashes or {}

    def work(found: FoundFile) -> Prepared:
        if known_hashes.get(found.relative) in cached:
            return Prepared(found, known_hashes[found.relative], cached=True)
        try:
            data = retry_io(found.path.read_bytes)
        except OSError as error:
            return Prepared(found, "", error=f"cannot read file: {error.strerror or error}")
        prepared = Prepared(found, hashlib.sha256(data).hexdigest())
        if prepared.sha256 in cached:
            prepared.cached = True
            return prepared
        try:
            prepared.pixels = prepare(data)
        except DecodeError as error:
            prepared.error = str(error)
        except MemoryError:
            prepared.error = "image too large for the memory available"
        return prepared

    with ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="smart-sorter-decode", initializer=_yield_to_model
    ) as pool:
        iterator = iter(files)
        pending: deque[Future[Prepared]] = deque(pool.submit(work, found) for found in islice(iterator, lookahead))
        while pending:
            done = pending.popleft().result()
            for found in islice(iterator, 1):
                pending.append(pool.submit(work, found))
            yield done


def chunks(items: Iterator[Prepared], size: int) -> Iterator[list[Prepared]]:
    while chunk := list(islice(items, size)):
        yield chunk
