"""OWLv2's image preprocessing per telegram JPEG: its own processor against smart-sorter's faster twin.

    python bench/bench_owl_preprocess.py [--repeat 3]

Both on the same decoded images, one thread (numpy/scipy), best of --repeat passes; also the largest
difference in pixel values. Writes bench/results/owl-preprocess-latest.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_sort import CORPUS  # noqa: E402

CORPUS = Path(os.environ.get("SMART_SORTER_CORPUS", CORPUS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "owl-preprocess-latest.json")
    args = parser.parse_args()
    import numpy as np
    from PIL import Image
    from transformers import Owlv2ImageProcessor

    from smart_sorter.pipeline.owl_preprocessing import fast_owlv2

    processor = Owlv2ImageProcessor()
    fast = fast_owlv2(processor)
    if fast is None:
        sys.exit(f"{type(processor).__name__} (torchvision installed?) has no fast twin: nothing to compare")
    images = [Image.open(path).convert("RGB") for path in sorted(CORPUS.glob("*.jp*g"))]

    def exact(image):
        return processor(images=image, return_tensors="np")["pixel_values"][0]

    def seconds_per_image(prepare) -> float:
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            for image in images:
                prepare(image)
            best = min(best, (time.perf_counter() - started) / len(images))
        return best

    difference = max(float(np.abs(exact(image) - fast(image)).max()) for image in images)
    processor_seconds, fast_seconds = seconds_per_image(exact), seconds_per_image(fast)
    results = {
        "images": len(images),
        "processor_ms_per_image": round(1000 * processor_seconds, 1),
        "fast_ms_per_image": round(1000 * fast_seconds, 1),
        "speed_up": round(processor_seconds / fast_seconds, 2),
        "largest_pixel_difference": difference,
        "load_average": os.getloadavg()[0],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
