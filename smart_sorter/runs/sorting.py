"""The run: find images, decode them ahead in threads, embed in batches, score, place, record.

A run is planned first (`planning`: folders, labels, table; nothing written), then its model is
loaded, so a model that cannot be loaded leaves nothing behind. Then, holding the destination's lock,
it resumes what an interrupted run of the same settings left (`storage.organising.recover`), places
files that were already scored, and sorts the rest batch by batch.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..core.folders import target_folder
from ..core.labels import LabelSet
from ..core.rows import BASE_COLUMNS, count_rows, row_tags
from ..errors import DestinationError, LabelError, SourceError
from ..options import MANIFEST_FILE_NAME, MEGABYTE, PLAN_MANIFEST_NAME, SortOptions
from ..pipeline.batch_scorer import BatchScorer
from ..pipeline.detection_media import DetectionMedia
from ..pipeline.detection_scorer import DetectionScorer, example_objects
from ..pipeline.detector import Detector
from ..pipeline.embedding_cache import EmbeddingCache
from ..pipeline.encoder import DualEncoder, PipelineClassifier, load_encoder_for
from ..pipeline.finding import FoundFile, Scan, find_images
from ..pipeline.gpu import decoded_on_device, gpu_decoding_device
from ..pipeline.media import CacheCounts, MediaScorer, frame_chunks
from ..pipeline.reading import Prepared
from ..storage.frame_table import write_frame_table
from ..storage.journal import Journal, JournalState, journal_path, read_journal
from ..storage.lock import DestinationLock
from ..storage.organising import Organiser, Recovery, ToPlace, recover
from ..storage.tables import CsvLog, read_manifest, write_manifest
from .outcome import Progress, SortResult, spoken_duration
from .planning import RunPlan, check_same_run, plan_run, refuse_read_only_folders

Notify = Callable[[str], None]
Observe = Callable[[Progress], None]
ESTIMATE_FROM_SECONDS = 60  # a run expected to take longer is given an estimate after its first batch
SLOW_RUN_SECONDS = 600  # ... and, on a CPU, the advice to use a GPU or a smaller model


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "smart-sorter": __version__}
    for package in ("torch", "transformers", "pillow", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _discard_empty_run(state: JournalState, plan: RunPlan) -> JournalState:
    """A run that stopped before doing anything (stopped at once, say) binds nothing: its table,
    a header line only (checked), is removed and a new run starts."""
    if state.settings is None or state.files or state.settings == plan.settings:
        return state
    old_table = Path(state.settings.get("output_file", ""))
    if old_table.is_file() and old_table.stat().st_size < 4096:
        lines = old_table.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) == 1 and lines[0].startswith(",".join(BASE_COLUMNS)):
            old_table.unlink()
    return JournalState()


@dataclass
class _Work:
    """What is left of a run when it starts: its rows so far, scored files to place, files to score."""

    rows: list[dict[str, Any]]
    to_place: list[tuple[FoundFile, dict[str, Any]]]
    to_score: list[FoundFile]
    resumed: int  # files done by an earlier run of the same settings


class Sorter:
    """Runs one sorting job with a given encoder; the model is loaded on first need if not given."""

    def __init__(
        self,
        options: SortOptions,
        *,
        encoder: DualEncoder | PipelineClassifier | Detector | None = None,
        notify: Notify | None = None,
        progress_bar: bool = True,
        stop: threading.Event | None = None,
        on_progress: Observe | None = None,
        decode_device: str | None = "auto",
    ) -> None:
        self.options = options
        # where JPEGs are decoded besides the CPU's workers: "auto" (the model's CUDA device when torchvision
        # is installed), None (never), or a device; tests set "cpu" to run the GPU's code on the CPU
        self.decode_device = decode_device
        self._encoder = encoder
        self.notify = notify or (lambda message: None)
        self.progress_bar = progress_bar
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        self._started = time.perf_counter()
        self._model_seconds = 0.0
        self._retried: set[str] = set()  # files tried again after an error: read and hashed anew, never trusted
        self._cache_counts: CacheCounts | None = None  # this run's cache hits and misses, images and video frames

    @property
    def encoder(self) -> DualEncoder | PipelineClassifier | Detector:
        if self._encoder is None and self.options.detect:
            options = self.options
            self._encoder = Detector(
                options.model, device=options.device, revision=options.revision, precision=options.model_precision
            )
        if self._encoder is None:
            options = self.options
            self._encoder = load_encoder_for(options)
        return self._encoder.load()

    # Planning ------------------------------------------------------------------------------------
    def run(self, source: Path, destination: Path, labels: str | Mapping[str, object] | LabelSet | Path) -> SortResult:
        plan = plan_run(source, destination, labels, self.options)
        for warning in () if self.options.detect else plan.labels.warnings():  # advice on CLIP prompts
            self.notify(warning)
        scan = find_images(plan.source, exclude=(plan.destination,))
        purpose = "dry run" if self.options.dry_run else "sorting run"
        DestinationLock(plan.destination, purpose).check_free()  # busy: said at once, before anything is read
        state = self._state(plan)
        if not scan.files and not state.files:
            passed = [f"{scan.skipped_other} other files skipped"] if scan.skipped_other else []
            passed += [f"{skip.relative}: {skip.reason}" for skip in scan.skipped[:3]]
            raise SourceError(
                f"No images found in {str(plan.source)!r}"
                + (f" ({'; '.join(passed)})" if passed else "")
                + ". Check the folder; JPEG, PNG, WebP, GIF, BMP, TIFF and HEIC files are sorted, and videos"
                " (MP4, MOV, WebM, MKV, AVI, ...) with the video extra."
            )
        self._check_source_writable(scan)
        self._started = time.perf_counter()
        if self._unscored(scan, state):
            self.encoder  # noqa: B018 - a model that cannot be loaded fails here, before anything is written
            if self.options.by_example:
                self.encoder.check_query_images()  # type: ignore[union-attr]
        self._model_seconds = time.perf_counter() - self._started
        try:
            plan.destination.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or error
            raise DestinationError(f"Cannot create the destination {str(plan.destination)!r}: {reason}.") from None
        with DestinationLock(plan.destination, purpose):
            state = _discard_empty_run(self._state(plan), plan)  # read again: now no one else writes
            return self._run_locked(plan, scan, state)

    def _check_source_writable(self, scan: Scan) -> None:
        """Moving removes files from the source: a read-only source folder is refused before anything moves."""
        if self.options.operation != "move" or self.options.dry_run:
            return
        refuse_read_only_folders(scan.files, "operation copy")

    def _state(self, plan: RunPlan) -> JournalState:
        """The journal of an earlier run in the destination, checked to be this run's."""
        if self.options.dry_run:
            return JournalState()
        state = read_journal(journal_path(plan.destination))
        finished = read_manifest(plan.destination).get("status") == "finished"
        check_same_run(state, plan, finished=finished)
        return state

    @staticmethod
    def _unscored(scan: Scan, state: JournalState) -> list[FoundFile]:
        """Found files the journal knows nothing of, or whose error may pass: only these need the model."""
        retry = state.to_retry()
        return [found for found in scan.files if found.relative not in state.files or found.relative in retry]

    # Resuming ------------------------------------------------------------------------------------
    def _resume(self, plan: RunPlan, scan: Scan, state: JournalState, organiser: Organiser) -> _Work:
        """Finish what an interrupted run of the same settings left, and list what is left to do."""
        resuming = state.settings is not None
        recovery = recover(state, plan.destination) if resuming else Recovery([], {})
        finished = [  # placed by the interrupted run: its copies made and its row recorded now
            organiser.finish(row, self._copies_to(row, plan.folder_paths), state.files[row["file"]])
            for row in recovery.finished
        ]
        found = {item.relative for item in scan.files}
        retry = self._retried = state.to_retry() & found  # errors that may pass, for files still there: tried again
        rows = [row for row in state.done_rows if row["file"] not in retry] + finished if resuming else []
        done = {row["file"] for row in rows}
        to_place = [
            (found, recovery.to_place[found.relative])
            for found in scan.files
            if found.relative in recovery.to_place and found.relative not in done
        ]
        waiting = done | set(recovery.to_place)
        to_score = [found for found in scan.files if found.relative not in waiting]
        return _Work(rows, to_place, to_score, resumed=len(done) + len(to_place))

    def _run_locked(self, plan: RunPlan, scan: Scan, state: JournalState) -> SortResult:
        options = self.options
        manifest_path = plan.destination / (PLAN_MANIFEST_NAME if options.dry_run else MANIFEST_FILE_NAME)
        previous = read_manifest(plan.destination)
        if self._already_done(scan, state, previous):
            return self._result(plan, state.done_rows, plan.columns, manifest_path, previous, already_done=True)
        journal = None if options.dry_run else Journal(journal_path(plan.destination))
        organiser = Organiser(plan.destination, options.operation, journal, dry_run=options.dry_run)
        work = self._resume(plan, scan, state, organiser)
        resuming = state.settings is not None
        log = CsvLog(
            plan.csv_path, plan.columns, resumed_rows=work.rows if resuming else None, replace_own=options.dry_run
        )
        if journal is not None:
            journal.write("run", settings=plan.settings, started=_now(), resumed=resuming)
        manifest = self._manifest(plan, scan, resuming)
        started, status = self._started, "interrupted"
        observe = self._observer(work, plan.labels.categories, plan.bucket)
        try:
            write_manifest(manifest_path, manifest)
            observe(0, started)
            for found, row in work.to_place:  # scored before the interruption: placed without the model
                folder = target_folder(row, plan.folder_paths, plan.bucket)
                work.rows.append(organiser.place(found.path, folder, row, self._copies_to(row, plan.folder_paths)))
                log.write([work.rows[-1]])
            if work.to_score:
                manifest["model"] = self.encoder.describe()
                manifest["model_seconds"] = round(self._model_seconds, 3)
                write_manifest(manifest_path, manifest)
                self._sort(work.to_score, plan, organiser, log, work.rows, observe)
            observe(0, started)
            status = "stopped" if self.stop.is_set() else "finished"
        finally:
            log.close()
            if journal is not None:
                journal.close()
            label_counts, status_counts = count_rows(work.rows, plan.labels.categories, plan.bucket)
            manifest.update(status=status, finished=_now(), seconds=round(time.perf_counter() - started, 3))
            manifest.update(label_counts=label_counts, status_counts=status_counts)
            if self._cache_counts is not None:
                manifest["cache"] = self._cache_counts.as_record()
            write_manifest(manifest_path, manifest)
            write_frame_table(plan.csv_path, work.rows)
        return self._result(plan, work.rows, log.columns, manifest_path, manifest, resumed=work.resumed)

    @staticmethod
    def _already_done(scan: Scan, state: JournalState, previous: dict[str, Any]) -> bool:
        """A finished run run again with the same settings, with no file new or left in flight."""
        if previous.get("status") != "finished" or state.settings is None:
            return False
        done = {row["file"] for row in state.done_rows}
        in_flight = any(record.done is None and record.claiming for record in state.files.values())
        retry = state.to_retry() & {found.relative for found in scan.files}
        return not in_flight and not retry and all(found.relative in done for found in scan.files)

    def _manifest(self, plan: RunPlan, scan: Scan, resuming: bool) -> dict[str, Any]:
        return {
            "tool": "smart-sorter",
            "kind": "plan" if self.options.dry_run else "run",
            "status": "running",
            **plan.settings,
            "destination": str(plan.destination),
            "labels": list(plan.labels.categories),
            "template": plan.labels.template,
            "folders": plan.folders,
            "options": asdict(self.options),
            "versions": _versions(),
            "started": _now(),
            "resumed": resuming,
            "files_found": len(scan.files),
            "other_files_skipped": scan.skipped_other,
            "skipped": [{"file": skip.relative, "reason": skip.reason} for skip in scan.skipped],
            "model": {"id": self.options.model, "revision": self.options.revision},
        }

    def _result(
        self,
        plan: RunPlan,
        rows: list[dict[str, Any]],
        columns: tuple[str, ...],
        manifest_path: Path,
        manifest: dict[str, Any],
        *,
        resumed: int = 0,
        already_done: bool = False,
    ) -> SortResult:
        import pandas as pd

        label_counts, status_counts = count_rows(rows, plan.labels.categories, plan.bucket)
        return SortResult(
            table=pd.DataFrame(rows, columns=list(columns)),
            csv_path=plan.csv_path,
            manifest_path=manifest_path,
            destination=plan.destination,
            seconds=0.0 if already_done else float(manifest.get("seconds", 0.0)),
            model_seconds=0.0 if already_done else float(manifest.get("model_seconds", 0.0)),
            label_counts=label_counts,
            status_counts=status_counts,
            stopped_early=not already_done and manifest.get("status") != "finished",
            resumed_files=resumed,
            skipped=[(entry["file"], entry["reason"]) for entry in manifest.get("skipped", [])],
            already_done=already_done,
            dry_run=self.options.dry_run,
            cache=None if already_done else manifest.get("cache"),
            detect=self.options.detect,
        )

    # The batch loop ------------------------------------------------------------------------------
    def _observer(self, work: _Work, categories: tuple[str, ...], bucket: str) -> Callable[[int, float], None]:
        """Tells `on_progress` how far the run is; counting every row after each batch is for an observer only."""
        total = len(work.rows) + len(work.to_place) + len(work.to_score)

        def observe(scored: int, since: float) -> None:
            if self.on_progress is not None:
                counts = count_rows(work.rows, categories, bucket)[0]
                self.on_progress(Progress(len(work.rows), total, counts, time.perf_counter() - since, scored))

        return observe

    def _sort(
        self,
        files: list[FoundFile],
        plan: RunPlan,
        organiser: Organiser,
        log: CsvLog,
        rows: list[dict[str, Any]],
        observe: Callable[[int, float], None],
    ) -> None:
        from tqdm.auto import tqdm

        options = self.options
        cache = EmbeddingCache() if options.use_cache else None  # detection: OWL models' image side
        scorer = self._scorer(plan, cache)
        jpeg_device = self._jpeg_device() if isinstance(scorer, BatchScorer) else None
        if jpeg_device is not None:
            scorer.decode_jpegs_on(jpeg_device)
        for advice in scorer.label_advice(plan.labels.categories):
            self.notify(advice)
        # videos: their frames scored (or searched for objects) in the same batches as images
        media = DetectionMedia(scorer, options) if isinstance(scorer, DetectionScorer) else MediaScorer(scorer, options)
        self._cache_counts = media.counts if cache is not None and not options.detect else None
        scored = [0]  # files this call has done, counted by the placing thread

        def place_and_record(chunk: list[Prepared], scores: Any) -> None:
            new_rows = self._rows(chunk, scores, plan, media)
            done = organiser.place_all([self._to_place(item, row, plan) for item, row in zip(chunk, new_rows)])
            organiser.sync()
            log.write(done)
            rows.extend(done)
            scored[0] += len(done)
            observe(scored[0], first_batch_at)

        stream = self._stream(files, scorer, media)
        bar = tqdm(total=len(files), unit="file", disable=not self.progress_bar, desc="Sorting", dynamic_ncols=True)
        first_batch_at = time.perf_counter()
        # One placing thread: a batch's files are placed (several at once) while the model embeds the next.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-sorter-place") as placer:
            placing: Future[None] | None = None
            for number, chunk in enumerate(frame_chunks(stream, options.batch_size)):
                valid = [item for item in chunk if not item.error]
                scores = media.score(valid) if valid else None
                if placing is not None:
                    placing.result()  # raises DiskFullError and stops the run
                placing = placer.submit(place_and_record, chunk, scores)
                bar.update(len(chunk))
                if number == 0:
                    self._advise_on_speed(len(chunk), time.perf_counter() - first_batch_at, len(files))
                if self.stop.is_set():
                    break
            if placing is not None:
                placing.result()
        bar.close()
        if cache is not None:
            cache.close()

    def _scorer(self, plan: RunPlan, cache: EmbeddingCache | None) -> BatchScorer | DetectionScorer:
        options = self.options
        if options.detect:
            return DetectionScorer(
                self.encoder, plan.labels, threshold=options.threshold, tiles=options.tiles,
                examples=options.by_example, cache=cache, preprocess=options.preprocess, batch_size=options.batch_size,
            )  # fmt: skip
        return BatchScorer(
            self.encoder, plan.labels, preprocess=options.preprocess, prompt_mode=options.prompt_mode,
            batch_size=options.batch_size, cache=cache, multi_label=options.multi_label, tiles=options.tiles,
        )  # fmt: skip

    def _stream(self, files: list[FoundFile], scorer: Any, media: MediaScorer) -> Iterator[Prepared]:
        """The files read, hashed and prepared ahead of the model, in order (files tried again are read anew)."""
        options = self.options
        reading = dict(workers=self.decode_workers(), lookahead=2 * options.batch_size,
                       max_bytes=options.max_image_mb * MEGABYTE)  # fmt: skip
        stream = media.stream(files, distrusted=self._retried, **reading)
        if getattr(scorer, "jpeg_device", None) is None:
            return stream
        preprocessor = scorer.preprocessor  # JPEGs left as bytes by the workers: decoded a batch at a time
        return decoded_on_device(stream, preprocessor.prepare, preprocessor.plan, scorer.jpeg_device,
                                 size=options.batch_size, workers=reading["workers"])  # fmt: skip

    def _jpeg_device(self) -> str | None:
        if self.decode_device != "auto":
            return self.decode_device
        return gpu_decoding_device(getattr(self.encoder, "device", "cpu"))

    def _rows(self, chunk: list[Prepared], scores: Any, plan: RunPlan, media: MediaScorer) -> list[dict[str, Any]]:
        """The rows of one batch: `scores` are those of its files without an error (detection mode: their boxes)."""
        return media.rows(chunk, scores, plan.labels)

    def _to_place(self, item: Prepared, row: dict[str, Any], plan: RunPlan) -> ToPlace:
        path = item.found.path
        if row["status"] == "error":
            return ToPlace(path, None, row)
        folder = target_folder(row, plan.folder_paths, plan.bucket)
        return ToPlace(path, folder, row, self._copies_to(row, plan.folder_paths))

    def _copies_to(self, row: dict[str, Any], folder_paths: dict[str, Path]) -> list[Path]:
        """The folders a sorted file is also copied into: those of its other tags, when asked."""
        if not (self.options.copy_tags or self.options.detect) or row["status"] != "sorted":
            return []
        return [folder_paths[tag] for tag in row_tags(row)[1:]]

    def decode_workers(self) -> int:
        """Threads decoding ahead of the model, by rule (bench/README.md, "Decoding threads").

        On a GPU the model is fast and decoding is the bottleneck: every core. On a CPU the model needs
        the cores and the threads run at a lower priority, using the time it leaves idle: decoding is
        about 7% of the work in fp32 and 13% in bf16 or fp16 (the model's pass costs half as much, a
        JPEG the same), so one thread per four cores in fp32 and per two in bf16/fp16, never fewer
        than two (on 2 cores, 1 to 4 threads measured the same within noise).
        """
        if self.options.decode_workers is not None:
            return self.options.decode_workers
        cores = os.cpu_count() or 1
        if not str(getattr(self.encoder, "device", "cpu")).startswith("cpu"):
            return max(2, cores)
        reduced = getattr(self.encoder, "precision", "fp32") in ("bf16", "fp16")
        return max(2, cores // 2 if reduced else cores // 4)

    def _advise_on_speed(self, done: int, seconds: float, total: int) -> None:
        rate = done / max(seconds, 1e-9)
        advice = speed_estimate(rate, total)
        if not advice:
            return
        if total / rate >= SLOW_RUN_SECONDS and str(getattr(self.encoder, "device", "")) == "cpu":
            smaller = "google/owlvit-base-patch32" if self.options.detect else "openai/clip-vit-base-patch32"
            advice += f" It runs on the CPU: a GPU, or the smaller {smaller}, is much faster."
        self.notify(advice)


def speed_estimate(rate: float, total: int) -> str:
    """'About 12 minutes for 5,000 files at 7.0 files/s.' for a run of over a minute, else '' (a video is one file)."""
    expected = total / max(rate, 1e-9)
    if expected < ESTIMATE_FROM_SECONDS:
        return ""
    duration = spoken_duration(expected)
    return f"About {duration} for {total:,} files at {rate:.1f} files/s."


def sort_images(
    source: str | Path,
    destination: str | Path,
    labels: str | Mapping[str, object] | LabelSet | Path | None = None,
    options: SortOptions | None = None,
    *,
    detect: str | Mapping[str, object] | LabelSet | Path | bool | None = None,
    encoder: DualEncoder | PipelineClassifier | Detector | None = None,
    notify: Notify | None = None,
    stop: threading.Event | None = None,
    on_progress: Observe | None = None,
    progress_bar: bool = True,
    **overrides: Any,
) -> SortResult:
    """Sort the images under `source` into `destination/<label>/` and write output.csv.

    `labels` is a comma-separated text ("cat,dog"), a list, a mapping of category -> prompts, or
    the `Path` of a JSON/YAML labels file. Settings come from `options` (a `SortOptions`), with any
    of its fields given as keywords on top (`model=`, `operation=`, `batch_size=`, ...). `notify`
    receives advice (long labels, a slow run); `encoder` reuses an already loaded model; setting
    `stop` ends the run after the current batch; `on_progress` receives a `Progress` after each
    batch (from the placing thread).

    `detect="a rifle, a flag"` (objects, in any form labels take) finds those objects with a zero-shot
    detector (`model`; default DEFAULT_DETECTOR) instead: each file goes to the folder of its most
    confident object, copied into those of the others found, or to `nothing found`.
    """
    if detect is not None and not isinstance(detect, bool):
        if labels is not None:
            raise LabelError("Give either labels to sort by or objects to detect, not both.")
        labels, detect = detect, True
        if isinstance(labels, Path) and labels.is_dir():  # a folder of example images: query by example
            labels, overrides["by_example"] = example_objects(labels), True
    if detect is not None:
        overrides["detect"] = detect
    if labels is None:
        raise LabelError('No labels were given; name them, as in "a cat, a dog" (or objects to find with detect=).')
    options = (options or SortOptions()).with_changes(**overrides)
    runner = Sorter(
        options, encoder=encoder, notify=notify, progress_bar=progress_bar, stop=stop, on_progress=on_progress
    )
    return runner.run(Path(source), Path(destination), labels)
