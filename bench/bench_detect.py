"""Detection mode's speed against the detector's forward-only rate and the transformers pipeline.

    python bench/bench_detect.py [--files 32] [--model owlvit-b32|owlv2-b16|tiny] [--objects 4] [--repeat 2]

A randomly initialised OWL detector with the real architecture (compute cost depends on shape, not
weights) on the telegram-32 JPEGs (beside the checkout, or SMART_SORTER_CORPUS) replicated to --files
files. Measured in one run, each after a warm-up:
  (forward) the image tower and the box and class heads alone, on pre-processed tensors, in batches
  (pipeline) `pipeline("zero-shot-object-detection")` called once per image with the objects (it runs
          the whole model once per object)
  (ours) smart_sorter.sort_images(detect=...), copying every file, with the detector already loaded, the
         embedding cache off
  (first, again) with the cache in an empty temporary home: a first search, then a search of the same files
         for other objects into a new destination (OWL models: the image tower is skipped)
Writes bench/results/detect-latest.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_sort import CORPUS, replicate  # noqa: E402
from smart_sorter import sort_images  # noqa: E402
from smart_sorter.pipeline.detector import Detector  # noqa: E402
from tests.factories import _CHARS, save_owlv2, write_clip_tokenizer  # noqa: E402

OBJECTS = ["a rifle", "a tank", "a flag", "a document"]
CORPUS = Path(os.environ.get("SMART_SORTER_CORPUS", CORPUS))  # as the tests find it


def save_owlvit_b32(folder: Path) -> Path:
    """OWL-ViT base patch 32 (768-pixel input) with random weights and a small character tokenizer."""
    import torch
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor

    tokenizer = write_clip_tokenizer(folder / "tokenizer-source", specials_last=True)
    vocab = 2 + 2 * len(_CHARS)
    config = OwlViTConfig(
        text_config=dict(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(image_size=768, patch_size=32),
    )
    torch.manual_seed(0)
    OwlViTForObjectDetection(config).eval().save_pretrained(folder)
    processor = OwlViTImageProcessor(size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768})
    OwlViTProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_owlv2_b16(folder: Path) -> Path:
    """OWLv2 base patch 16 (960-pixel input), random weights."""
    import torch
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tokenizer = write_clip_tokenizer(folder / "tokenizer-source", specials_last=True)
    vocab = 2 + 2 * len(_CHARS)
    config = Owlv2Config(
        text_config=dict(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(image_size=960, patch_size=16),
    )
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).eval().save_pretrained(folder)
    Owlv2Processor(image_processor=Owlv2ImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def forward_only(detector: Detector, files: list[Path], batch: int, repeat: int) -> float:
    """Images/s of the image tower and heads alone, on inputs prepared beforehand."""
    import numpy as np
    import torch
    from PIL import Image

    network = detector.network
    pixels = [detector.prepare(Image.open(path).convert("RGB"))[0] for path in files]
    tensors = [torch.from_numpy(np.stack(pixels[i : i + batch])) for i in range(0, len(pixels), batch)]
    queries = detector._query_embeds

    def run() -> None:
        with torch.inference_mode():
            for tensor in tensors:
                feature_map = network.image_embedder(pixel_values=tensor)[0]
                size, rows, columns, width = feature_map.shape
                feats = feature_map.reshape(size, rows * columns, width)
                network.class_predictor(feats, queries[None].expand(size, -1, -1))
                network.box_predictor(feats, feature_map)

    run()  # warm-up
    return max(len(files) / timed(run) for _ in range(repeat))


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--model", choices=("owlvit-b32", "owlv2-b16", "tiny"), default="owlvit-b32")
    parser.add_argument("--objects", type=int, default=4, choices=range(1, len(OBJECTS) + 1))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "detect-latest.json")
    args = parser.parse_args()
    objects = OBJECTS[: args.objects]
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as temporary:
        work = Path(temporary)
        build = {"owlvit-b32": save_owlvit_b32, "owlv2-b16": save_owlv2_b16, "tiny": save_owlv2}[args.model]
        model = build(work / "model")
        files = replicate(CORPUS, work / "source", args.files)
        detector = Detector(str(model), device="cpu").load()
        detector.set_queries(objects)
        forward = forward_only(detector, files, args.batch, args.repeat)

        from transformers import pipeline

        pipe = pipeline("zero-shot-object-detection", model=detector.network, tokenizer=detector.tokenizer,
                        image_processor=detector.image_processor, device="cpu")  # fmt: skip
        sample = files[: max(2, len(files) // 4)]  # the pipeline is slow: a quarter of the files
        pipe(str(sample[0]), candidate_labels=objects)  # warm-up
        per_image = len(sample) / timed(lambda: [pipe(str(path), candidate_labels=objects) for path in sample])

        def ours(index: int, found: list[str] = objects, **options) -> None:
            sort_images(work / "source", work / f"out-{index}", detect=found, model=str(model), encoder=detector,
                        batch_size=args.batch, progress_bar=False, **options)  # fmt: skip

        ours(0, use_cache=False)  # warm-up
        sorting = max(
            len(files) / timed(lambda index=index: ours(index, use_cache=False)) for index in range(1, args.repeat + 1)
        )
        os.environ["SMART_SORTER_HOME"] = str(work / "home")  # an empty cache
        first = len(files) / timed(lambda: ours(100))
        again = len(files) / timed(lambda: ours(101, list(reversed(objects)) + ["a helmet"]))
    results = {
        "model": args.model, "files": args.files, "objects": len(objects), "batch": args.batch,
        "machine": platform.processor() or platform.machine(),
        "forward_only_images_per_s": round(forward, 3),
        "pipeline_per_image_images_per_s": round(per_image, 3),
        "smart_sorter_images_per_s": round(sorting, 3),
        "smart_sorter_vs_forward_only": round(sorting / forward, 3),
        "smart_sorter_vs_pipeline": round(sorting / per_image, 3),
        "cached_first_search_images_per_s": round(first, 3),
        "cached_search_for_other_objects_images_per_s": round(again, 3),
        "other_objects_speed_up": round(again / first, 2),
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
