"""Small JPEG previews of sorted files, embedded as data URIs in the notebook and the HTML report.

A video's preview is its frame at a given moment (the one that matched its label best), and its strip
a few of its scored frames with their times, that moment's marked; an animated image sorted by its
frames (`animated="frames"`) is shown the same way, its frames read with Pillow.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DecodeError
from .animation import animation_frames_at
from .decoding import decode_image
from .video import SNIFF_BYTES, frames_at, sniff_video_format, video_support

THUMBNAIL_PIXELS = 160
# distinct on photos and for most colour-blind readers (Okabe-Ito)
BOX_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0))
STRIP_FRAMES = 6  # frames shown of a video


@dataclass(frozen=True)
class StripFrame:
    """One frame of a video's strip: its time, a data URI, and whether it is the best-matching one."""

    time: float
    image: str
    best: bool


def _jpeg(image: Any, size: int, boxes: Sequence[Any] = ()) -> bytes:
    full_width = image.width
    image.thumbnail((size, size))
    if boxes:
        draw_boxes(image, boxes, image.width / full_width)
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


def thumbnail_jpeg(
    path: Path, size: int = THUMBNAIL_PIXELS, boxes: Sequence[Any] = (), *, moment: float = 0.0
) -> bytes | None:
    """The image at `path` shrunk to fit `size` x `size`, as JPEG bytes (a video's frame at `moment`);
    None when it cannot be read (a preview is never worth a failure: the file's own row already says
    what is wrong with it). `boxes` (detections: label, score, box in pixels of the image) are drawn on it."""
    if is_video(path):  # never read whole: it may be gigabytes
        frames = frames_at(str(path), [moment], short_side=2 * size)
        return _jpeg(frames[0][1], size) if frames else None
    try:  # with boxes, decoded whole: they are in pixels of the full image
        data = Path(path).read_bytes()
        if moment:  # an animation's frame
            frames = animation_frames_at(data, [moment], short_side=2 * size)
            return _jpeg(frames[0][1], size) if frames else None
        image = decode_image(data, draft_size=None if boxes else (size, size))
    except (OSError, DecodeError):
        return None
    return _jpeg(image, size, boxes)


def thumbnail_uri(
    path: Path, size: int = THUMBNAIL_PIXELS, boxes: Sequence[Any] = (), *, moment: float = 0.0
) -> str | None:
    """A `data:image/jpeg;base64,...` preview that an HTML page shows with no file access."""
    data = thumbnail_jpeg(path, size, boxes, moment=moment)
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
    frames = frames_at(str(path), chosen, short_side=2 * size) if is_video(path) else _animation_at(path, chosen, size)
    nearest = min(frames, key=lambda frame: abs(frame[0] - best))[0] if frames and best is not None else None
    return [StripFrame(moment, _uri(_jpeg(image, size)), moment == nearest) for moment, image in frames]


def _animation_at(path: Path, moments: list[float], size: int) -> list[tuple[float, Any]]:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    return animation_frames_at(data, moments, short_side=2 * size)


def draw_boxes(image: Any, boxes: Sequence[Any], scale: float = 1.0) -> None:
    """Each detection's box on `image` (PIL, changed in place), in one colour per object, with its label and
    score; boxes are in pixels of the original image, `scale` times that of `image`."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    colours: dict[str, tuple[int, int, int]] = {}
    for found in boxes:
        colour = colours.setdefault(found["label"], BOX_COLOURS[len(colours) % len(BOX_COLOURS)])
        left, top, right, bottom = (float(v) * scale for v in found["box"])
        draw.rectangle((left, top, max(left, right), max(top, bottom)), outline=colour, width=2)
        draw.text((left + 3, top + 1), f"{found['label']} {float(found['score']):.2f}", fill=colour)
