"""Frames of one untrusted video, sampled with PyAV without decoding the whole stream.

Three ways to choose the frames: `frames` evenly spaced (the middle of each of N equal parts),
`every` S seconds, or the keyframes alone (the decoder skips every other frame, so nothing between
keyframes is decoded). For the first two, frames no other frame depends on are not decoded either,
and a chosen moment is reached by seeking to the keyframe before it, unless that moment is near or
seeking has been seen not to help (a video with one keyframe). Every video is bounded: at most
`MAX_SAMPLED_FRAMES` frames sampled, `MAX_DECODED_FRAMES` decoded and `MAX_DECODE_SECONDS` spent;
a frame larger than `MAX_VIDEO_PIXELS` is refused before it is decoded. Frames are converted to RGB at
reduced size (twice the model's input on the short side, as JPEGs are drafted), turned upright by the
stream's rotation, and given to `prepare` as Pillow images.

PyAV (`av`) is the `video` extra: it is imported here alone, inside the functions that need it.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import DecodeError
from ..options import MAX_VIDEO_FRAMES as MAX_SAMPLED_FRAMES  # per video, whatever the sampling asks

MAX_DECODED_FRAMES = 3000  # frames decoded to reach the sampled ones (a 2-minute 25 fps stretch)
MAX_DECODE_SECONDS = 60.0  # wall-clock seconds per video; the frames sampled by then are scored
MAX_VIDEO_PIXELS = 8192 * 8192  # a larger frame is refused unread (FFmpeg would allocate it)
SEEK_FRAMES = 48  # a moment fewer frames ahead is reached by decoding on rather than seeking
SEEK_GAP = 2.0  # ... or fewer seconds ahead, when the frame rate is unknown
VIDEO_EXTRA = "pip install 'smart-sorter[video]'"
SNIFF_BYTES = 512  # three MPEG-TS packets' sync bytes are within it
# Container signatures: ISO BMFF (MP4, MOV, M4V, 3GP), EBML (WebM, MKV), RIFF AVI, FLV, MPEG-TS.
_BMFF_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")
VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".webm", ".mkv", ".avi", ".flv", ".ts", ".mts", ".m2ts"]
)


def sniff_video_format(head: bytes) -> str | None:
    """The video container a file's first bytes announce, or None."""
    if head[4:8] == b"ftyp" and head[8:12] not in _BMFF_IMAGE_BRANDS:
        return "MP4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") and len(head) >= 8:
        return "MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"FLV\x01"):
        return "FLV"
    if _is_transport_stream(head):
        return "MPEG-TS"
    return None


def _is_transport_stream(head: bytes) -> bool:
    """MPEG-TS: 188-byte packets each starting with the sync byte 0x47 (M2TS: 192 bytes, 4 of them a
    timestamp before it), seen in three packets in a row."""
    return any(
        len(head) > offset + 2 * size and all(head[offset + index * size] == 0x47 for index in range(3))
        for offset, size in ((0, 188), (4, 192))
    )


def video_support() -> bool:
    """Whether PyAV is installed (the `video` extra), without importing it."""
    return importlib.util.find_spec("av") is not None


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video are scored."""

    frames: int = 8
    every: float | None = None
    keyframes: bool = False

    @property
    def key(self) -> str:
        """Names this sampling in the cache: the same settings find the same frames."""
        how = "keyframes" if self.keyframes else f"every={self.every:g}" if self.every else f"frames={self.frames}"
        return f"{how};max={MAX_SAMPLED_FRAMES}"

    def targets(self, duration: float | None) -> list[float]:
        """The moments (seconds) to sample in a video of `duration`, at most MAX_SAMPLED_FRAMES. Of a video
        whose container does not say how long it is (a live recording), one every `every` seconds (every
        second for evenly spaced frames) from its start, as far as it goes."""
        if not duration:
            return [index * (self.every or 1.0) for index in range(MAX_SAMPLED_FRAMES if self.every else self.frames)]
        if self.every:
            count = min(MAX_SAMPLED_FRAMES, max(1, math.ceil(duration / self.every - 1e-9)))
            step = max(self.every, duration / count)
            return [index * step for index in range(count)]
        count = min(self.frames, MAX_SAMPLED_FRAMES)
        return [(index + 0.5) * duration / count for index in range(count)]


@dataclass
class VideoFrames:
    """A video's sampled frames as model inputs (None when its embeddings are cached), their times
    (seconds), and its duration (None when the container does not say); `animated` for the frames of an
    animated image (GIF, WebP, APNG) rather than of a video."""

    times: tuple[float, ...]
    duration: float | None
    pixels: list[Any] | None = None
    animated: bool = False


def frame_key(video_sha256: str, moment: float) -> str:
    """The cache's name of a video's frame: the video's hash and the frame's time in milliseconds."""
    return f"{video_sha256}@{round(moment * 1000)}ms"


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # av.time_base
    return None


def _check_stream(container: Any) -> Any:
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams})
        raise DecodeError(f"no video stream ({' and '.join(kinds) or 'nothing'} only)")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > MAX_VIDEO_PIXELS:
        raise DecodeError(f"video too large to decode safely ({width}x{height} pixels, limit {MAX_VIDEO_PIXELS})")
    return stream


class DecodeBudget:
    """What one video (or animation pass) may still cost: frames decoded and wall-clock seconds."""

    def __init__(self, seconds: float = MAX_DECODE_SECONDS) -> None:
        self.decoded = 0
        self.deadline = time.monotonic() + seconds

    def spend(self) -> bool:
        """Count one decoded frame; False once the video has cost all it may."""
        self.decoded += 1
        return self.decoded <= MAX_DECODED_FRAMES and time.monotonic() < self.deadline


def _frames(container: Any, stream: Any, budget: DecodeBudget) -> Iterator[Any]:
    """Decoded frames from the current position; corrupt packets are passed over, and decoding stops
    at the end of the stream, at the first unreadable stretch after a frame, or when the budget is spent."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # a corrupt packet: the next keyframe recovers
            for frame in frames:
                if not budget.spend():
                    return
                yield frame
    except (av.error.FFmpegError, OSError, EOFError):
        return  # truncated or unreadable from here on: what was decoded stands


def _upright(image: Any, rotation: float) -> Any:
    """The frame turned as its display matrix says (counterclockwise degrees, as PyAV reports them)."""
    from PIL import Image

    turns = round(rotation / 90) % 4
    transposes = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
    return image.transpose(transposes[turns]) if turns else image


def _to_image(frame: Any, short_side: int | None) -> Any:
    """A decoded frame as an upright RGB Pillow image, scaled down so its short side is `short_side`."""
    width, height = frame.width, frame.height
    if width * height > MAX_VIDEO_PIXELS:
        raise DecodeError(f"video too large to decode safely ({width}x{height} pixels)")
    if short_side and min(width, height) > short_side:
        scale = short_side / min(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    image = frame.to_image(width=width, height=height)
    return _upright(image, getattr(frame, "rotation", 0) or 0)


def _far(gap: float, rate: float | None) -> bool:
    """Whether a moment `gap` seconds ahead is better reached by seeking than by decoding on."""
    return gap * rate > SEEK_FRAMES if rate else gap > SEEK_GAP


def _sample_moments(container: Any, stream: Any, targets: list[float], budget: DecodeBudget) -> list[Any]:
    """The first frame at or after each target (the last frame for targets past the end). A far target
    is reached by seeking to the keyframe before it, until a seek lands no later than the one before
    (a video with one keyframe: seeking again would decode the same frames again)."""
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    base = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
    chosen: list[Any] = []
    frames, current, seeking, last_landing = None, None, True, -1.0
    for target in targets:
        if current is not None and current[0] >= target - 1e-6:
            continue  # the frame decoded last already reaches this moment
        far = _far(target - (current[0] if current else 0.0), rate)
        sought = far and seeking and (frames is not None or target > SEEK_GAP)
        if sought:
            container.seek(int((base + target) / stream.time_base), stream=stream, backward=True)
        if frames is None or sought:
            frames = _frames(container, stream, budget)
        landed, ended = not sought, True
        for frame in frames:
            current = ((frame.time or 0.0) - base, frame)
            if not landed:
                landed = True
                seeking = current[0] > last_landing
                last_landing = current[0]
            if current[0] >= target - 1e-6:
                ended = False
                break
        if current is not None and (not chosen or chosen[-1][0] != current[0]):
            chosen.append(current)
        if ended:
            break  # the stream (or the budget) ended: later moments are past it
    return chosen


def _sample_evenly(container: Any, stream: Any, targets: list[float], budget: DecodeBudget) -> list[Any]:
    """Frames at the targets, decoding only what later frames depend on: a frame no other frame refers
    to (most B-frames) is skipped, so a moment that falls on one takes the next frame decoded, a frame
    or two later (its real time is what is reported). About a third faster on H.264 with B-frames;
    a stream that gives no frame that way (every frame skippable) is decoded whole."""
    stream.codec_context.skip_frame = "NONREF"
    chosen = _sample_moments(container, stream, targets, budget)
    if not chosen:
        stream.codec_context.skip_frame = "DEFAULT"
        container.seek(0, stream=stream)
        chosen = _sample_moments(container, stream, targets, budget)
    return chosen


def _sample_keyframes(container: Any, stream: Any, duration: float | None, budget: DecodeBudget) -> list[Any]:
    """Every keyframe, thinned to at most MAX_SAMPLED_FRAMES evenly over the duration when it is known."""
    stream.codec_context.skip_frame = "NONKEY"
    gap = (duration / MAX_SAMPLED_FRAMES) if duration else 0.0
    chosen: list[Any] = []
    for frame in _frames(container, stream, budget):
        moment = frame.time or 0.0
        if not chosen or moment >= chosen[-1][0] + gap - 1e-9:
            chosen.append((moment, frame))
            if len(chosen) >= MAX_SAMPLED_FRAMES:
                break
    return chosen


def sample_video(
    source: Any, sampling: Sampling, prepare: Callable[[Any], Any], *, short_side: int | None = None
) -> VideoFrames:
    """Open a video (a path or a binary file object), sample its frames and prepare each (a Pillow
    image in, a model input out). Raises DecodeError with the reason for what cannot be a scored video."""
    import av

    try:
        container = av.open(source, mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as error:
        raise DecodeError(
            f"not a readable video ({_reason(error)}): damaged or incomplete, as an interrupted download is"
        ) from None
    with container:
        stream = _check_stream(container)
        stream.thread_type = "SLICE"  # frame threading holds frames back, which seeking throws away
        duration = _duration(container, stream)
        budget = DecodeBudget()
        try:
            if sampling.keyframes:
                chosen = _sample_keyframes(container, stream, duration, budget)
            else:
                chosen = _sample_evenly(container, stream, sampling.targets(duration), budget)
            images = [(moment, _to_image(frame, short_side)) for moment, frame in chosen]
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise DecodeError(f"unreadable video ({_reason(error)})") from None
    if not images:
        raise DecodeError("no frame could be decoded (the video is truncated, damaged, or its frame size is invalid)")
    return VideoFrames(tuple(moment for moment, _ in images), duration, [prepare(image) for _, image in images])


def frames_at(source: Any, moments: list[float], *, short_side: int | None = None) -> list[tuple[float, Any]]:
    """The frames at (or just after) `moments`, as (time, upright RGB Pillow image): for previews.
    An unreadable video gives what could be decoded, maybe nothing; never an error."""
    import av

    try:
        with av.open(source, mode="r", metadata_errors="replace") as container:
            stream = _check_stream(container)
            chosen = _sample_moments(container, stream, sorted(moments), DecodeBudget())
            return [(moment, _to_image(frame, short_side)) for moment, frame in chosen]
    except (DecodeError, av.error.FFmpegError, OSError, ValueError, EOFError):
        return []


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text.split(": '")[0].strip().rstrip(";")
