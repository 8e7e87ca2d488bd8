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
