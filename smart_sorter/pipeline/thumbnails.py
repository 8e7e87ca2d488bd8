"""Small JPEG previews of sorted files, embedded as data URIs in the notebook and the HTML report.

A video's preview is its frame at a given moment (the one that matched its label best), and its strip
a few of its scored frames with their times, that moment's marked.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DecodeError
from .decoding import decode_image
from .video import SNIFF_BYTES, frames_at, sniff_video_format, video_support

THUMBNAIL_PIXELS = 160
STRIP_FRAMES = 6  # frames shown of a video


@dataclass(frozen=True)
class StripFrame:
    """One frame of a video's strip: its time, a data URI, and whether it is the best-matching one."""

    time: float
    image: str
    best: bool


def _jpeg(image: Any, size: int) -> bytes:
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def is_video(path: Path) -> bool:
    """Whether the file at `path` is a video container (by its first bytes) that PyAV can be asked to read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    return sniff_video_format(head) is not None and video_support()


def thumbnail_jpeg(path: Path, size: int = THUMBNAIL_PIXELS, *, moment: float = 0.0) -> bytes | None:
    """The image at `path` shrunk to fit `size` x `size`, as JPEG bytes (a video's frame at `moment`);
    None when it cannot be read (a preview is never worth a failure: the file's own row already says
    what is wrong with it)."""
    if is_video(path):  # never read whole: it may be gigabytes
        frames = frames_at(str(path), [moment], short_side=2 * size)
        return _jpeg(frames[0][1], size) if frames else None
    try:
        image = decode_image(Path(path).read_bytes(), draft_size=(size, size))
    except (OSError, DecodeError):
        return None
    return _jpeg(image, size)


def thumbnail_uri(path: Path, size: int = THUMBNAIL_PIXELS, *, moment: float = 0.0) -> str | None:
    """A `data:image/jpeg;base64,...` preview that an HTML page shows with no file access."""
    data = thumbnail_jpeg(path, size, moment=moment)
    return None if data is None else _uri(data)


def strip_moments(times: list[float], best: float | None, count: int = STRIP_FRAMES) -> list[float]:
    """At most `count` of a video's scored frame times, spread over them, always with the best one."""
    times = sorted(set(times))
    if len(times) > count:
        step = (len(times) - 1) / (count - 1)
        times = sorted({times[round(index * step)] for index in range(count)})
    if best is not None and best not in times:
        times = sorted([*(times[:-1] if len(times) >= count else times), best])
    return times


def video_strip(path: Path, times: list[float], best: float | None, size: int = 64) -> list[StripFrame]:
    """Previews of a video's frames at (at most STRIP_FRAMES of) `times`, the one at `best` marked."""
    chosen = strip_moments(times, best)
    frames = frames_at(str(path), chosen, short_side=2 * size)
    nearest = min(frames, key=lambda frame: abs(frame[0] - best))[0] if frames and best is not None else None
    return [StripFrame(moment, _uri(_jpeg(image, size)), moment == nearest) for moment, image in frames]
