"""Video sorting speed: frames scored per second end to end against the model's forward-only rate.

    python bench/bench_video.py [--videos 8] [--seconds 10] [--model vit-b32|vit-l14] [--repeat 3]

Generates --videos 720p H.264 clips of --seconds seconds (30 fps, a keyframe every 2 s, moving
shapes on noise so the encoder has work) with PyAV, and a randomly initialised CLIP with the real
architecture. In one run, alternating for --repeat rounds and keeping the best of each:
  (f) the image forward pass alone on pre-made tensors, frames/s
  (even) smart_sorter.sort_images on the clips, 8 evenly spaced frames each (the default),
         copying every clip, embedding cache off: scored frames/s end to end
  (key) the same with --video-keyframes (only keyframes decoded)
  (dec) sampling alone, without the model: frames/s of decoding (evenly spaced and keyframes)
It prints the rates and the ratios to (f), and writes bench/results/video-latest.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smart_sorter import sort_images  # noqa: E402
from smart_sorter.pipeline.encoder import DualEncoder  # noqa: E402
from smart_sorter.pipeline.video import Sampling, sample_video  # noqa: E402
from tests.factories import VIT_B32, VIT_L14, clip_config, save_clip  # noqa: E402

LABELS = ["a person", "a vehicle", "a document", "a landscape"]


def write_clip(path: Path, seconds: float, seed: int, *, width: int = 1280, height: int = 720, fps: int = 30) -> None:
    """A 720p H.264 clip: a few coloured discs moving over noise, a keyframe every 2 s."""
    import av

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    discs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-8, 8), rng.uniform(-8, 8),
              rng.integers(80, 255, size=3)) for _ in range(4)]  # fmt: skip
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "g": str(2 * fps)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * fps)):
            frame = noise.copy()
            for x, y, dx, dy, colour in discs:
                inside = (xs - (x + dx * index) % width) ** 2 + (ys - (y + dy * index) % height) ** 2 < 120**2
                frame[inside] = colour
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def forward_rate(encoder: DualEncoder, frames: int, batch: int) -> float:
    import torch

    tensors = torch.randn(frames, 3, 224, 224)
    with torch.inference_mode():
        encoder.network.get_image_features(pixel_values=tensors[:batch])  # warm-up
        started = time.perf_counter()
        for start in range(0, frames, batch):
            encoder.network.get_image_features(pixel_values=tensors[start : start + batch])
    return frames / (time.perf_counter() - started)


def sort_rate(source: Path, target: Path, model: Path, encoder: DualEncoder, batch: int, **video) -> tuple[float, int]:
    started = time.perf_counter()
    result = sort_images(source, target, LABELS, model=str(model), encoder=encoder, batch_size=batch,
                         progress_bar=False, use_cache=False, **video)  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.status_counts.get("sorted", 0) == len(result.table), result.table[["file", "status", "error"]]
    frames = int(result.table["frames"].astype(int).sum())
    shutil.rmtree(target)
    return frames / seconds, frames


def decode_rate(clips: list[Path], sampling: Sampling) -> float:
    started, frames = time.perf_counter(), 0
    for clip in clips:
        frames += len(sample_video(str(clip), sampling, lambda image: None, short_side=448).times)
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", choices=("vit-b32", "vit-l14"), default="vit-b32")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "video-latest.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smart-sorter-bench-video-"))
    try:
        started = time.perf_counter()
        clips = []
        for index in range(args.videos):
            clips.append(work / "source" / f"clip_{index:02d}.mp4")
            clips[-1].parent.mkdir(exist_ok=True)
            write_clip(clips[-1], args.seconds, index)
        print(f"{args.videos} clips of {args.seconds:g} s at 1280x720 made in {time.perf_counter() - started:.1f} s")
        model = save_clip(work / "model", config=clip_config(**(VIT_B32 if args.model == "vit-b32" else VIT_L14)))
        encoder = DualEncoder(str(model), device="cpu", precision="fp32").load()
        rounds: dict[str, list[float]] = {"forward": [], "even": [], "keyframes": []}
        counts = {}
        for index in range(args.repeat):
            rate, counts["even"] = sort_rate(work / "source", work / f"even-{index}", model, encoder, args.batch_size)
            rounds["even"].append(rate)
            rate, counts["keyframes"] = sort_rate(
                work / "source", work / f"key-{index}", model, encoder, args.batch_size, video_keyframes=True
            )
            rounds["keyframes"].append(rate)
            rounds["forward"].append(forward_rate(encoder, max(64, *counts.values()), args.batch_size))
            print(f"  round {index + 1}: " + ", ".join(f"{name} {values[-1]:.2f}" for name, values in rounds.items()))
        best = {name: max(values) for name, values in rounds.items()}
        decoding = {"even": decode_rate(clips, Sampling()), "keyframes": decode_rate(clips, Sampling(keyframes=True))}
        print(f"(f)    forward only:          {best['forward']:7.2f} frames/s")
        for name in ("even", "keyframes"):
            ratio = best[name] / best["forward"]
            print(f"({name[:4]}) sorting, {name:9}: {best[name]:7.2f} frames/s ({counts[name]} frames), {ratio:.2f}x"
                  f" forward-only; sampling alone {decoding[name]:.1f} frames/s")  # fmt: skip
        args.output.parent.mkdir(parents=True, exist_ok=True)
        record = {"machine": platform.platform(), "model": args.model, "videos": args.videos, "seconds": args.seconds,
                  "frames": counts, "rounds": rounds, "best": best, "sampling_only": decoding,
                  "ratios": {name: best[name] / best["forward"] for name in ("even", "keyframes")}}  # fmt: skip
        args.output.write_text(json.dumps(record, indent=2) + "\n")
        print(f"written {args.output}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
