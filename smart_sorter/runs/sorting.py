"""The run: find images, decode them ahead in threads, embed in batches, score, place, record."""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._version import __version__
from ..core.folders import target_folder
from ..core.labels import LabelSet, parse_labels
from ..core.rows import BASE_COLUMNS, count_rows, csv_columns, make_row, row_tags, scored_row
from ..core.scoring import Scores, rank
from ..errors import DestinationError, SourceError
from ..options import (
    DEFAULT_MODEL,
    DEFAULT_TEMPLATE,
    MANIFEST_FILE_NAME,
    OUTPUT_FILE_NAME,
    UNCERTAIN_FOLDER,
    SortOptions,
)
from ..pipeline.batch_scorer import BatchScorer
from ..pipeline.embedding_cache import EmbeddingCache
from ..pipeline.encoder import DualEncoder, PipelineClassifier, load_encoder
from ..pipeline.finding import FoundFile, find_images
from ..pipeline.reading import Prepared, chunks, prepared_stream
from ..storage.journal import Journal, JournalState, journal_path, read_journal
from ..storage.layout import plan_folders
from ..storage.organising import Organiser, Recovery, recover
from ..storage.tables import CsvLog, write_manifest
from .outcome import Progress, SortResult

Notify = Callable[[str], None]
Observe = Callable[[Progress], None]
SLOW_RUN_SECONDS = 600


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


def _check_paths(source: Path, destination: Path) -> tuple[Path, Path]:
    if not source.exists():
        raise SourceError(f"The source folder {str(source)!r} does not exist; check the path.")
    if not source.is_dir():
        raise SourceError(f"The source {str(source)!r} is a file, not a folder; give the folder that holds the images.")
    source, destination = source.resolve(), destination.resolve()
    if destination.exists() and not destination.is_dir():
        raise DestinationError(f"The destination {str(destination)!r} is a file; give a folder.")
    if source == destination or destination in source.parents:
        raise DestinationError(
            f"The source {str(source)!r} lies inside the destination {str(destination)!r}; sorting would mix"
            " sorted and unsorted files. Choose a destination outside the source."
        )
    return source, destination


def _output_path(output_file: Path | None, source: Path, destination: Path) -> Path:
    """Where output.csv goes: the destination unless given; never into the source folder."""
    path = Path(output_file).resolve() if output_file else destination / OUTPUT_FILE_NAME
    if source in path.parents and destination not in path.parents:
        raise DestinationError(
            f"The output file {str(path)!r} would be written into the source folder; give a path outside it."
        )
    return path


def _check_same_run(state: JournalState, settings: dict[str, Any], destination: Path) -> None:
    """A destination holding another run's journal is refused: resuming is only for the same command.

    A run that stopped before doing anything (a model that could not be loaded, say) binds nothing:
    its empty output.csv (a header line only, checked) is removed and a new run starts.
    """
    if state.settings is None or state.settings == settings:
        return
    if not state.files:
        old_table = Path(state.settings.get("output_file", ""))
        if old_table.is_file() and old_table.stat().st_size < 4096:
            lines = old_table.read_text(encoding="utf-8", errors="replace").splitlines()
            if len(lines) == 1 and lines[0].startswith(",".join(BASE_COLUMNS)):
                old_table.unlink()
        state.settings = None
        return
    differences = ", ".join(key for key in settings if state.settings.get(key) != settings[key])
    raise DestinationError(
        f"The destination {str(destination)!r} holds an earlier run with other settings ({differences}). Run the"
        " same command to finish it, `smart-sorter undo` it, or choose a new destination."
    )


class Sorter:
    """Runs one sorting job with a given encoder; the model is loaded on first need if not given."""

    def __init__(
        self,
        options: SortOptions,
        *,
        encoder: DualEncoder | PipelineClassifier | None = None,
        notify: Notify | None = None,
        progress: bool = True,
        stop: threading.Event | None = None,
        on_progress: Observe | None = None,
    ) -> None:
        self.options = options
        self._encoder = encoder
        self.notify = notify or (lambda message: None)
        self.progress = progress
        self.stop = stop or threading.Event()
        self.on_progress = on_progress

    @property
    def encoder(self) -> DualEncoder | PipelineClassifier:
        if self._encoder is None:
            self._encoder = load_encoder(self.options.model, device=self.options.device, revision=self.options.revision)
        return self._encoder.load()

    def run(self, source: Path, destination: Path, labels: str | Mapping[str, object] | LabelSet | Path) -> SortResult:
        options = self.options
        source, destination = _check_paths(Path(source), Path(destination))
        label_set = parse_labels(labels, options.template)
        bucket = any((options.threshold is not None, options.margin is not None, options.multi_label))
        bucket = bucket or label_set.needs_uncertain
        folders, folder_paths = plan_folders(
            label_set.placed_categories, destination, uncertain_bucket=bucket, uncertain_name=UNCERTAIN_FOLDER
        )
        for warning in label_set.warnings():
            self.notify(warning)
        csv_path = _output_path(options.output_file, source, destination)
        settings = {
            "source": str(source),
            "prompts": label_set.as_dict(),
            "model": options.model,
            "operation": options.operation,
            "prompt_mode": options.prompt_mode,
            "threshold": options.threshold,
            "margin": options.margin,
            "multi_label": options.multi_label,
            "copy_tags": options.copy_tags,
            "output_file": str(csv_path),
        }
        state = JournalState() if options.dry_run else read_journal(journal_path(destination))
        _check_same_run(state, settings, destination)
        scan = find_images(source, exclude=(destination,))
        if not scan.files and not state.files:
            raise SourceError(
                f"No images found in {str(source)!r}"
                + (f" ({scan.skipped_other} other files skipped)" if scan.skipped_other else "")
                + ". Check the folder; JPEG, PNG, WebP, GIF, BMP, TIFF and HEIC files are sorted."
            )
        try:
            destination.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or error
            raise DestinationError(f"Cannot create the destination {str(destination)!r}: {reason}.") from None
        resuming = state.settings is not None
        recovery = recover(state, destination) if resuming else Recovery([], {})
        journal = None if options.dry_run else Journal(journal_path(destination))
        organiser = Organiser(destination, options.operation, journal, dry_run=options.dry_run)
        finished = [  # placed by the interrupted run: its copies made and its row recorded now
            organiser.finish(row, self._copies_to(row, folder_paths), state.files[row["file"]])
            for row in recovery.finished
        ]
        rows: list[dict[str, Any]] = state.done_rows + finished if resuming else []
        tag_columns = label_set.categories if options.multi_label else ()
        columns = csv_columns(options.top_k, tag_columns, copies=options.copy_tags)
        log = CsvLog(csv_path, columns, resumed_rows=rows if resuming else None)
        if journal is not None:
            journal.write("run", settings=settings, started=_now(), resumed=resuming)
        manifest_path = destination / MANIFEST_FILE_NAME
        manifest: dict[str, Any] = {
            "tool": "smart-sorter",
            "status": "running",
            **settings,
            "destination": str(destination),
            "labels": list(label_set.categories),
            "template": label_set.template,
            "folders": folders,
            "options": asdict(options),
            "versions": _versions(),
            "started": _now(),
            "resumed": resuming,
            "files_found": len(scan.files),
            "other_files_skipped": scan.skipped_other,
            "model": {"id": options.model},
        }
        done = {row["file"] for row in rows}
        to_place = [found for found in scan.files if found.relative in recovery.to_place and found.relative not in done]
        to_score = [
            found for found in scan.files if found.relative not in done and found.relative not in recovery.to_place
        ]
        started = time.perf_counter()
        model_seconds = 0.0
        status = "interrupted"
        total = len(rows) + len(to_place) + len(to_score)

        def report(scored: int, since: float) -> None:
            if self.on_progress is None:  # counting every row after each batch is for an observer only
                return
            counts = count_rows(rows, label_set.categories)[0]
            self.on_progress(Progress(len(rows), total, counts, time.perf_counter() - since, scored))

        try:
            write_manifest(manifest_path, manifest)
            report(0, started)
            for found in to_place:  # scored before the interruption: placed without the model
                row = recovery.to_place[found.relative]
                folder = target_folder(row, folder_paths, UNCERTAIN_FOLDER)
                rows.append(organiser.place(found.path, folder, row, self._copies_to(row, folder_paths)))
                log.write([rows[-1]])
            if to_score:
                loading = time.perf_counter()
                manifest["model"] = self.encoder.describe()
                model_seconds = time.perf_counter() - loading
                write_manifest(manifest_path, manifest)
                self._sort(to_score, label_set, folder_paths, organiser, log, rows, report)
            report(0, started)
            status = "stopped" if self.stop.is_set() else "finished"
        finally:
            log.close()
            if journal is not None:
                journal.close()
            seconds = time.perf_counter() - started
            label_counts, status_counts = count_rows(rows, label_set.categories)
            manifest.update(status=status, finished=_now(), seconds=round(seconds, 3))
            manifest.update(model_seconds=round(model_seconds, 3))
            manifest.update(label_counts=label_counts, status_counts=status_counts)
            write_manifest(manifest_path, manifest)
        import pandas as pd

        return SortResult(
            table=pd.DataFrame(rows, columns=list(log.columns)),
            csv_path=csv_path,
            manifest_path=manifest_path,
            destination=destination,
            seconds=seconds,
            model_seconds=model_seconds,
            label_counts=label_counts,
            status_counts=status_counts,
            stopped_early=status != "finished",
            resumed_files=len(done) + len(to_place),
        )

    def _sort(
        self,
        files: list[FoundFile],
        labels: LabelSet,
        folder_paths: dict[str, Path],
        organiser: Organiser,
        log: CsvLog,
        rows: list[dict[str, Any]],
        report: Callable[[int, float], None],
    ) -> None:
        from tqdm.auto import tqdm

        options = self.options
        cache = EmbeddingCache() if options.cache else None
        scorer = BatchScorer(
            self.encoder, labels, preprocess=options.preprocess, prompt_mode=options.prompt_mode,
            batch_size=options.batch_size, cache=cache, multi_label=options.multi_label,
        )  # fmt: skip
        for advice in scorer.label_advice(labels.categories):
            self.notify(advice)

        def place_and_record(chunk: list[Prepared], scores: Scores | None) -> None:
            per_image = None if scores is None else scores.ranked(options.multi_label)
            rankings = iter(rank(per_image, options.top_k) if per_image is not None else ())
            tag_scores = iter(per_image if per_image is not None and options.multi_label else ())
            best_prompts = iter(scores.best_prompt if scores is not None else ())
            done = []
            for item in chunk:
                if item.error:
                    row = make_row(item.found.relative, item.sha256, status="error", error=item.error)
                    done.append(organiser.finish(row))
                    continue
                row = scored_row(
                    item.found.relative, item.sha256, next(rankings), next(best_prompts), labels,
                    threshold=options.threshold, margin=options.margin, tag_scores=next(tag_scores, None),
                )  # fmt: skip
                folder = target_folder(row, folder_paths, UNCERTAIN_FOLDER)
                done.append(organiser.place(item.found.path, folder, row, self._copies_to(row, folder_paths)))
            organiser.sync()
            log.write(done)
            rows.extend(done)
            scored[0] += len(done)
            report(scored[0], first_batch_at)

        stream = prepared_stream(
            files, scorer.prepare, workers=self.decode_workers(), lookahead=2 * options.batch_size,
            known_hashes=scorer.known_hashes(files), cached=scorer.cached_hashes,
        )  # fmt: skip
        bar = tqdm(total=len(files), unit="img", disable=not self.progress, desc="Sorting", dynamic_ncols=True)
        first_batch_at = time.perf_counter()
        scored = [0]  # files this call has done, counted by the placing thread
        # One placing thread: files are copied while the model embeds the next batch, in order.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-sorter-place") as placer:
            placing: Future[None] | None = None
            for number, chunk in enumerate(chunks(stream, options.batch_size)):
                valid = [item for item in chunk if not item.error]
                scores = scorer.score(valid) if valid else None
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

    def _copies_to(self, row: dict[str, Any], folder_paths: dict[str, Path]) -> list[Path]:
        """The folders a sorted file is also copied into: those of its other tags, when asked."""
        if not self.options.copy_tags or row["status"] != "sorted":
            return []
        return [folder_paths[tag] for tag in row_tags(row)[1:]]

    def decode_workers(self) -> int:
        """Threads decoding ahead of the model.

        On a GPU the model is fast and decoding is the bottleneck: use every core. On a CPU the
        model needs the cores and decoding costs about a tenth of its work, so two threads (one
        per four cores on big machines) at a lower priority keep it fed without slowing it.
        """
        if self.options.decode_workers is not None:
            return self.options.decode_workers
        cores = os.cpu_count() or 1
        if str(getattr(self.encoder, "device", "cpu")).startswith("cpu"):
            return max(2, cores // 4)
        return max(2, cores)

    def _advise_on_speed(self, done: int, seconds: float, total: int) -> None:
        rate = done / max(seconds, 1e-9)
        expected = total / rate
        if expected < SLOW_RUN_SECONDS:
            return
        advice = f"At about {rate:.1f} images/s this run will take about {expected / 60:.0f} minutes."
        if getattr(self.encoder, "device", None) is not None and str(self.encoder.device) == "cpu":
            advice += " It runs on the CPU: a GPU, or the smaller openai/clip-vit-base-patch32, is much faster."
        self.notify(advice)


def sort_images(
    source: str | Path,
    destination: str | Path,
    labels: str | Mapping[str, object] | LabelSet | Path,
    *,
    model: str = DEFAULT_MODEL,
    operation: str = "copy",
    batch_size: int = 32,
    preprocess: str = "fast",
    template: str = DEFAULT_TEMPLATE,
    prompt_mode: str = "average",
    top_k: int = 3,
    device: str = "auto",
    revision: str | None = None,
    output_file: str | Path | None = None,
    dry_run: bool = False,
    threshold: float | None = None,
    margin: float | None = None,
    multi_label: bool = False,
    copy_tags: bool = False,
    cache: bool = True,
    decode_workers: int | None = None,
    notify: Notify | None = None,
    progress: bool = True,
    encoder: DualEncoder | PipelineClassifier | None = None,
    stop: threading.Event | None = None,
    on_progress: Observe | None = None,
) -> SortResult:
    """Sort the images under `source` into `destination/<label>/` and write output.csv.

    `labels` is a comma-separated text ("cat,dog"), a list, a mapping of category -> prompts, or
    the `Path` of a JSON/YAML labels file. `notify` receives advice (long labels, a slow run);
    `encoder` reuses an already loaded model; setting `stop` ends the run after the current batch;
    `on_progress` receives a `Progress` after each batch (from the placing thread).
    """
    options = SortOptions(
        model=model,
        operation=operation,
        batch_size=batch_size,
        preprocess=preprocess,
        template=template,
        prompt_mode=prompt_mode,
        top_k=top_k,
        device=device,
        revision=revision,
        output_file=Path(output_file) if output_file is not None else None,
        dry_run=dry_run,
        threshold=threshold,
        margin=margin,
        multi_label=multi_label,
        copy_tags=copy_tags,
        cache=cache,
        decode_workers=decode_workers,
    )
    runner = Sorter(options, encoder=encoder, notify=notify, progress=progress, stop=stop, on_progress=on_progress)
    return runner.run(Path(source), Path(destination), labels)
