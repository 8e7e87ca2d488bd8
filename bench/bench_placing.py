"""Placing alone from the latency mount: files per second with 1, 8 and 16 files placed at once.

    python bench/bench_placing.py [--files 64] [--latency 0.03] [--rounds 3]

Copies telegram JPEGs, replicated to --files, from `latency_mount.py` (a FUSE passthrough adding
--latency seconds per open and read, standing in for Google Drive) into two label folders, batch
by batch as a run places them (`Organiser.place_all`, journal synced after each batch of 32).
Needs fusepy and /dev/fuse.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sort import CORPUS, mounted, replicate, unmount  # noqa: E402

from smart_sorter.core.rows import make_row  # noqa: E402
from smart_sorter.storage.journal import Journal, journal_path  # noqa: E402
from smart_sorter.storage.organising import Organiser, ToPlace  # noqa: E402

LABELS = ("a", "b")


def place_rate(files: list[Path], mount: Path, destination: Path, workers: int) -> float:
    journal = Journal(journal_path(destination))
    organiser = Organiser(destination, "copy", journal)
    to_place = []
    for index, path in enumerate(files):
        label = LABELS[index % 2]
        row = make_row(path.name, hashlib.sha256(path.read_bytes()).hexdigest(), categories=(label,), order=(0,),
                       probabilities=(1.0,))  # fmt: skip
        to_place.append(ToPlace(mount / path.name, destination / label, row))
    started = time.perf_counter()
    for start in range(0, len(to_place), 32):
        organiser.place_all(to_place[start : start + 32], workers=workers)
        organiser.sync()
    seconds = time.perf_counter() - started
    journal.close()
    return len(files) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.03)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smart-sorter-bench-placing-"))
    try:
        files = replicate(args.corpus, work / "source", args.files)
        process = mounted(work / "source", work / "mount", args.latency)
        if process is None:
            print("not measured: FUSE or fusepy is not available")
            return
        try:
            for round_number in range(1, args.rounds + 1):
                rates = {workers: place_rate(files, work / "mount", work / f"out-{workers}-{round_number}", workers)
                         for workers in (1, 8, 16)}  # fmt: skip
                print(f"round {round_number}: " + ", ".join(f"{w} at once {r:5.1f} files/s" for w, r in rates.items()))
        finally:
            unmount(work / "mount", process)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
