"""Re-sorting with new labels from cached embeddings, against the first (uncached) run.

    python bench/bench_cache.py [--files 1000] [--output bench/results/cache.json]

The telegram-32 JPEGs are replicated to --files files made distinct (a few bytes after the JPEG's
end, which decoders ignore), so each has its own hash. A randomly initialised ViT-B/32 CLIP sorts
them once with an empty cache in SMART_SORTER_HOME (a temporary folder), then again into another
destination with other labels; both are end-to-end `sort_images` runs, model loading included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.factories import VIT_B32, clip_config, save_clip  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "telegram-32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "cache.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smart-sorter-bench-cache-"))
    os.environ["SMART_SORTER_HOME"] = str(work / "home")
    from smart_sorter import sort_images

    try:
        model = save_clip(work / "model", config=clip_config(**VIT_B32))
        originals = sorted(args.corpus.glob("*.jpg"))
        source = work / "source"
        source.mkdir()
        for index in range(args.files):
            data = originals[index % len(originals)].read_bytes() + index.to_bytes(4, "big")
            (source / f"{index:05d}.jpg").write_bytes(data)
        timings = {}
        for name, labels in (("first", "a photo of a person,a screenshot"), ("new_labels", "a meme,a document,a map")):
            started = time.perf_counter()
            result = sort_images(source, work / name, labels, model=str(model), progress_bar=False)
            timings[name] = time.perf_counter() - started
            assert result.status_counts == {"sorted": args.files}, result.status_counts
            print(f"{name}: {timings[name]:.1f} s for {args.files} images")
        speedup = timings["first"] / timings["new_labels"]
        print(f"re-sorting with new labels from the cache: {speedup:.1f}x faster end to end")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"files": args.files, "seconds": timings, "speedup": speedup}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
