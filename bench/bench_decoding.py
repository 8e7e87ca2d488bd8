"""Decoding options judged by what the model makes of them: scores and top labels against `exact`.

    python bench/bench_decoding.py [--corpus ../shared/corpus/telegram-32]

For each way of decoding the telegram JPEGs in `fast` mode (no draft: full-size decoding; a JPEG
draft that covers four times, twice, or once the model's input size), it reports the CPU
milliseconds per image (decode, resize and crop, one thread, best of 3) and, for the tiny CLIP
trained on shapes (tests/toy_clip.py, 32 px) and a random ViT-B/32 (224 px), the largest and mean
difference of each label's score from the model's own processor (`exact`) and how many top labels
agree with it.

    python bench/bench_decoding.py --threads 1,2,3,4 [--precision bf16] [--files 256] [--rounds 3]

measures instead the whole sort (a random ViT-B/32, the telegram JPEGs replicated to --files, cache off)
with each number of decoding threads, alternated round by round: images/s (best and median of the
rounds) and CPU milliseconds per image, to choose `Sorter.decode_workers`' rule.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smart_sorter.pipeline.cpu_threads import let_idle_threads_sleep  # noqa: E402

let_idle_threads_sleep()

import numpy as np  # noqa: E402

from smart_sorter.core.labels import labels_from_list  # noqa: E402
from smart_sorter.core.scoring import score_images  # noqa: E402
from smart_sorter.options import SortOptions  # noqa: E402
from smart_sorter.pipeline.batch_scorer import BatchScorer  # noqa: E402
from smart_sorter.pipeline.decoding import decode_image  # noqa: E402
from smart_sorter.pipeline.encoder import DualEncoder  # noqa: E402
from smart_sorter.pipeline.preprocessing import Preprocessor  # noqa: E402
from tests.factories import VIT_B32, clip_config, save_clip  # noqa: E402
from tests.toy_clip import TOY_LABELS, train_toy_clip  # noqa: E402

CORPUS = Path(os.environ.get("SMART_SORTER_CORPUS", ROOT.parent / "shared" / "corpus" / "telegram-32"))
LABELS = ("screenshot of a newspaper article", "a picture of a person", "a picture of a politician", "memes")
DRAFTS = {"full size": None, "draft 4x": 4, "draft 2x": 2, "draft 1x": 1}


def way_of_decoding(preprocessor: Preprocessor, factor: int | None):
    plan = preprocessor.plan
    kind, first, second = plan.resize
    edge = first if kind == "shortest" else max(first, second)
    draft = None if factor is None else (factor * edge, factor * edge)
    return lambda data: plan.pixels(decode_image(data, draft_size=draft))


def cpu_ms_per_image(prepare, datas: list[bytes]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        for data in datas:
            prepare(data)
        best = min(best, (time.thread_time() - started) / len(datas) * 1000)
    return best


def probabilities(encoder: DualEncoder, labels, preprocessor: Preprocessor, prepare, datas) -> np.ndarray:
    label_set = labels_from_list(list(labels), SortOptions().template)
    scorer = BatchScorer(encoder, label_set, preprocess=preprocessor.mode, prompt_mode="average", batch_size=32,
                         cache=None)  # fmt: skip
    embeddings = encoder.embed_images(preprocessor.collate([prepare(data) for data in datas]))
    scores = score_images(embeddings, scorer.prompt_embeddings, scorer.owner, scorer.head)
    return np.asarray(scores.probabilities)


def thread_counts(args) -> None:
    """The whole sort with each number of decoding threads, alternated, at one precision."""
    import shutil

    import torch

    from bench.bench_sort import LABELS as SORT_LABELS
    from bench.bench_sort import replicate
    from smart_sorter import sort_images

    counts = [int(count) for count in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as work:
        model = save_clip(Path(work) / "b32", config=clip_config(**VIT_B32))
        replicate(args.corpus, Path(work) / "source", args.files)
        encoder = DualEncoder(str(model), device="cpu", precision=args.precision).load()
        print(f"{args.files} files, ViT-B/32 at {encoder.precision}, {os.cpu_count()} cores,"
              f" torch threads {torch.get_num_threads()}")  # fmt: skip

        def run(workers: int, name: str) -> None:
            result = sort_images(Path(work) / "source", Path(work) / name, list(SORT_LABELS), model=str(model),
                                 encoder=encoder, batch_size=32, progress_bar=False, use_cache=False,
                                 decode_workers=workers)  # fmt: skip
            assert result.status_counts == {"sorted": args.files}, result.status_counts
            shutil.rmtree(Path(work) / name)

        run(counts[0], "warm-up")
        rates: dict[int, list[float]] = {count: [] for count in counts}
        cpu: dict[int, list[float]] = {count: [] for count in counts}
        for round_number in range(args.rounds):
            for count in counts if round_number % 2 == 0 else counts[::-1]:
                started, cpu_started = time.perf_counter(), time.process_time()
                run(count, f"sorted-{count}")
                rates[count].append(args.files / (time.perf_counter() - started))
                cpu[count].append((time.process_time() - cpu_started) / args.files * 1000)
        for count in counts:
            ordered = sorted(rates[count])
            print(f"  {count} decoding thread(s): best {ordered[-1]:6.2f}, median {ordered[len(ordered) // 2]:6.2f}"
                  f" images/s, {sorted(cpu[count])[len(cpu[count]) // 2]:5.1f} CPU ms/image"
                  f" (rounds: {' '.join(f'{value:.2f}' for value in rates[count])})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--threads", help="decoding thread counts to compare in whole sorts, e.g. 1,2,3,4")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="with --threads")
    parser.add_argument("--files", type=int, default=256, help="with --threads")
    parser.add_argument("--rounds", type=int, default=3, help="with --threads")
    args = parser.parse_args()
    if args.threads:
        thread_counts(args)
        return
    datas = [path.read_bytes() for path in sorted(args.corpus.glob("*.jpg"))]
    with tempfile.TemporaryDirectory() as work:
        models = {
            "toy CLIP (32 px)": (train_toy_clip(Path(work) / "toy"), TOY_LABELS),
            "random ViT-B/32 (224 px)": (save_clip(Path(work) / "b32", config=clip_config(**VIT_B32)), LABELS),
        }
        for name, (path, labels) in models.items():
            encoder = DualEncoder(str(path), device="cpu", precision="fp32").load()
            fast, exact = Preprocessor(encoder.image_processor, "fast"), Preprocessor(encoder.image_processor, "exact")
            reference = probabilities(encoder, labels, exact, exact.prepare, datas)
            print(f"{name}, {len(datas)} telegram JPEGs; exact: {cpu_ms_per_image(exact.prepare, datas):.1f} ms/image")
            for way, factor in DRAFTS.items():
                prepare = way_of_decoding(fast, factor)
                found = probabilities(encoder, labels, fast, prepare, datas)
                difference = np.abs(found - reference)
                agree = int((found.argmax(axis=1) == reference.argmax(axis=1)).sum())
                milliseconds = cpu_ms_per_image(prepare, datas)
                print(f"  {way:9}: {milliseconds:5.1f} ms/image, score difference max {difference.max():.4f}"
                      f" mean {difference.mean():.4f}, top label {agree}/{len(datas)}")  # fmt: skip


if __name__ == "__main__":
    main()
