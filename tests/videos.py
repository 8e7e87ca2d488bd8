"""Small videos made with PyAV for the tests: the toy model's shapes with known truth, and hostile ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.toy_clip import draw_shape


def write_video(
    path: Path,
    segments: list[tuple[str, float]],
    *,
    fps: int = 10,
    size: int = 64,
    codec: str = "libx264",
    seed: int = 0,
    gop: int | None = None,
    container_format: str | None = None,
    rotate: int = 0,
) -> Path:
    """A video showing each (toy label, seconds) segment in turn: one drawn shape per segment, jittered a
    little from frame to frame. Returns `path`."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size, size
        stream.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotate:
            stream.set_display_rotation(rotate)
        for label, seconds in segments:
            base = np.asarray(draw_shape(label, rng, size), dtype=np.int16)
            for _ in range(max(1, round(seconds * fps))):
                jitter = rng.integers(-4, 5, size=base.shape)
                frame = av.VideoFrame.from_ndarray(np.clip(base + jitter, 0, 255).astype(np.uint8), format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = int(seconds * 8000)
        tone = (np.sin(np.arange(samples) / 5) * 0.3).astype(np.float32).reshape(1, -1)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 8000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_timed_frames(path: Path, moments: list[float], *, size: int = 16, codec: str = "libx264") -> Path:
    """A video whose frames are shown at the given moments (seconds): variable frame rate, or an hour
    with three frames."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=1000)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, moment in enumerate(moments):
            pixels = np.full((size, size, 3), (index * 37) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = round(moment * 1000)
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_many_tiny_frames(path: Path, count: int, *, fps: int = 1000) -> Path:
    """`count` frames of 16x16 pixels: a stream whose decoding costs by number, not size."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        stream.codec_context.gop_size = count  # one keyframe: reaching any moment means decoding up to it
        pixels = np.zeros((16, 16, 3), dtype=np.uint8)
        for index in range(count):
            pixels[:] = index % 256
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_raw_avi(path: Path, size: int = 16, frames: int = 5) -> Path:
    """Uncompressed frames in AVI: their size comes from the headers alone (see `claim_size`)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=5)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for _ in range(frames):
            pixels = np.zeros((size, size, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def claim_size(path: Path, width: int, height: int) -> Path:
    """An AVI whose headers claim another frame size than its frames have (as a hostile file might)."""
    import struct

    data = bytearray(path.read_bytes())
    for marker in (b"avih", b"strf"):
        start = data.index(marker)
        offset = start + 8 + (32 if marker == b"avih" else 4)  # avih: dwWidth after 8 DWORDs; strf: biWidth
        data[offset : offset + 8] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


def write_without_duration(path: Path, frames: int = 50, fps: int = 10) -> Path:
    """A WebM written as a live recording is (to a stream that cannot seek back): no duration, no cues."""
    import io

    import av

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO()

        def writable(self) -> bool:
            return True

        def write(self, chunk) -> int:
            return self.data.write(chunk)

    output = Unseekable()
    with av.open(output, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            pixels = np.full((32, 32, 3), index * 5 % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    path.write_bytes(output.data.getvalue())
    return path


def write_animation(
    path: Path, segments: list[tuple[str, float]], *, fps: int = 10, size: int = 64, seed: int = 0
) -> Path:
    """An animated GIF, WebP or PNG (by `path`'s suffix: .gif, .webp, .png) showing each (toy label, seconds)
    segment in turn, as `write_video` does: one drawn shape per segment, a frame every 1/fps seconds."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    frames = []
    for label, seconds in segments:
        base = np.asarray(draw_shape(label, rng, size), dtype=np.int16)
        for _ in range(max(1, round(seconds * fps))):
            jitter = rng.integers(-4, 5, size=base.shape)
            frames.append(Image.fromarray(np.clip(base + jitter, 0, 255).astype(np.uint8)))
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG"}[path.suffix.lower()]
    extra = {"lossless": True} if kind == "WEBP" else {}
    frames[0].save(path, format=kind, save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0, **extra)
    return path


def hostile_gif(frames: int, *, screen: tuple[int, int] = (2, 2), delay_cs: int = 0) -> bytes:
    """A GIF written byte by byte: `frames` frames of one pixel each, shown `delay_cs` hundredths of a second
    (0: no time at all), on a logical screen of `screen` pixels, as a hostile file may claim."""
    import struct

    data = bytearray(b"GIF89a" + struct.pack("<HH", *screen) + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff")
    data += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop for ever
    for _ in range(frames):
        data += b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"  # graphic control: the delay
        data += b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00"  # a 1x1 image at the corner
        data += b"\x02\x02\x44\x01\x00"  # its LZW data
    return bytes(data + b";")


def truth_of(segments: list[tuple[str, float]]) -> str:
    """The label shown longest in a video or animation of (label, seconds) segments: its right answer."""
    totals: dict[str, float] = {}
    for label, seconds in segments:
        totals[label] = totals.get(label, 0.0) + seconds
    return max(totals, key=totals.get)


def shown_at(segments: list[tuple[str, float]], label: str) -> list[tuple[float, float]]:
    """The (start, end) seconds during which `label` is shown."""
    spans, start = [], 0.0
    for shown, seconds in segments:
        if shown == label:
            spans.append((start, start + seconds))
        start += seconds
    return spans
