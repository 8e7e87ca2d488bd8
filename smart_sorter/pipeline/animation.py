"""Frames of an animated GIF, WebP or PNG (APNG), sampled like a video's, read with Pillow.

With `--animated frames`, an image file holding more than one frame is scored as a video is: the same
sampling (`frames` evenly spaced, `every` S seconds, or with `keyframes` every frame, at most
MAX_SAMPLED_FRAMES), at times given by the frames' own durations. A frame shown for less than 20 ms (or
for no stated time) lasts 100 ms, as FFmpeg and browsers play it, so that a 100,000-frame animation with
zero delays does not claim to last no time at all. The file is read twice: once for the frames' durations
(Pillow composes each frame on the way), once for the chosen frames; each pass is bounded (MAX_DECODED_FRAMES
frames, half of MAX_DECODE_SECONDS: the two cost at most what one video may), and an animation whose canvas is
larger than MAX_ANIMATION_PIXELS is refused before any frame is composed (Pillow keeps whole canvases for it).
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable
from typing import Any

from ..errors import DecodeError
from .decoding import to_rgb
from .video import MAX_DECODE_SECONDS, MAX_SAMPLED_FRAMES, DecodeBudget, Sampling, VideoFrames

ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # Pillow's names of the formats that may hold an animation
ANIMATED_SUFFIXES = frozenset([".gif", ".png", ".apng", ".webp"])
MAX_ANIMATION_PIXELS = 2048 * 2048  # the canvas (a 1440p screen recording fits), kept whole while frames are composed
PASS_SECONDS = MAX_DECODE_SECONDS / 2  # each of the two passes: an animation costs at most what a video may
SHORTEST_FRAME_MS = 20  # a frame shown less than this ...
DEFAULT_FRAME_MS = 100  # ... lasts this long (FFmpeg's GIF rule; browsers do alike)


def _open_animation(data: bytes) -> Any:
    """The Pillow image of an animation's bytes, or None when they hold no animation (or no readable image:
    the image decoder then says what is wrong)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ANIMATED_FORMATS or not getattr(image, "is_animated", False):
            return None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError):
        return None
    width, height = image.size
    if width * height > MAX_ANIMATION_PIXELS:
        raise DecodeError(
            f"animation too large to play safely ({width}x{height} pixels, limit {MAX_ANIMATION_PIXELS});"
            " sort with the animated setting 'first' to score its first frame"
        )
    return image


def _frame_ms(image: Any) -> float:
    duration = image.info.get("duration")
    try:
        milliseconds = float(duration) if duration is not None else 0.0
    except (TypeError, ValueError):
        milliseconds = 0.0
    return DEFAULT_FRAME_MS if not milliseconds >= SHORTEST_FRAME_MS else milliseconds


def _seek(image: Any, index: int) -> bool:
    """Compose frame `index` (False at the end, or where the file stops making sense)."""
    try:
        image.seek(index)
        image.load()  # WebP says a frame's duration once it is decoded
    except (EOFError, OSError, ValueError, SyntaxError, IndexError, TypeError):
        return False
    return True


def frame_starts(image: Any) -> tuple[list[float], float]:
    """Each frame's start (seconds) and the animation's length, as far as the budget reads it."""
    starts: list[float] = []
    elapsed, budget = 0.0, DecodeBudget(PASS_SECONDS)
    while budget.spend() and _seek(image, len(starts)):
        starts.append(elapsed / 1000)
        elapsed += _frame_ms(image)
    return starts, elapsed / 1000


def chosen_frames(starts: list[float], duration: float, sampling: Sampling) -> list[int]:
    """The indices of the frames to score: those on show at the sampling's moments (with `keyframes`, every
    frame, thinned evenly over the duration to at most MAX_SAMPLED_FRAMES)."""
    if sampling.keyframes:
        gap, chosen = duration / MAX_SAMPLED_FRAMES, [0]
        for index, start in enumerate(starts):
            if start >= starts[chosen[-1]] + gap - 1e-9 and len(chosen) < MAX_SAMPLED_FRAMES:
                chosen.append(index)
        return chosen
    on_show = [max(0, bisect.bisect_right(starts, moment + 1e-9) - 1) for moment in sampling.targets(duration)]
    return sorted(set(on_show))


def _upright_rgb(image: Any, short_side: int | None) -> Any:
    """The composed frame as a new RGB image (transparency on white), its short side at most `short_side`."""
    from PIL import Image

    frame = to_rgb(image)
    frame = frame.copy() if frame is image else frame  # the next seek draws over the animation's own canvas
    if short_side and min(frame.size) > short_side:
        scale = short_side / min(frame.size)
        size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        frame = frame.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    return frame


def _frames(image: Any, indices: list[int], short_side: int | None) -> list[tuple[int, Any]]:
    """The frames at `indices` (ascending), as far as the file and the budget allow."""
    budget, read, last = DecodeBudget(PASS_SECONDS), [], -1
    for index in indices:
        budget.decoded += max(0, index - last - 1)  # the frames composed on the way count too
        last = index
        if not budget.spend() or not _seek(image, index):
            break
        read.append((index, _upright_rgb(image, short_side)))
    return read


def sample_animation(
    data: bytes, sampling: Sampling, prepare: Callable[[Any], Any], *, short_side: int | None = None
) -> VideoFrames | None:
    """An animated image's sampled frames prepared as model inputs, or None when `data` is no animation
    (a still image, or one the image decoder is to judge). DecodeError when it cannot be played."""
    image = _open_animation(data)
    if image is None:
        return None
    with image:
        starts, duration = frame_starts(image)
        if len(starts) < 2:
            return None  # one frame could be read: an image like any other (the decoder says if it is damaged)
        frames = _frames(image, chosen_frames(starts, duration, sampling), short_side)
    if not frames:
        raise DecodeError("no frame of the animation could be decoded (the file is damaged)")
    times = tuple(starts[index] for index, _ in frames)
    return VideoFrames(times, duration, [prepare(frame) for _, frame in frames], animated=True)


def animation_frames_at(data: bytes, moments: list[float], *, short_side: int | None = None) -> list[tuple[float, Any]]:
    """The frames on show at `moments` (seconds), as (their start, RGB Pillow image): for previews. Not an
    animation, or unreadable: what could be composed, maybe nothing; never an error."""
    try:
        image = _open_animation(data)
    except DecodeError:
        return []
    if image is None:
        return []
    with image:
        starts, _ = frame_starts(image)
        if not starts:
            return []
        indices = sorted({max(0, bisect.bisect_right(starts, moment + 1e-9) - 1) for moment in moments})
        return [(starts[index], frame) for index, frame in _frames(image, indices, short_side)]
