"""`smart-sorter resort`: sort a finished destination again with new labels, in place.

The images' embeddings come from the cache, so no image goes through the model again (unless the
cache was cleared). Files whose label changed move between label folders through the same safe
placement as a run, journaled before and after (`storage.finished`); the journal keeps where each
file originally came from, so `undo` still puts moved files back and removes copies.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.folders import target_folder
from ..core.labels import LabelSet, parse_labels
from ..core.rows import count_rows, csv_columns
from ..errors import DestinationError, PlacementError
from ..options import DEFAULT_TEMPLATE, MEGABYTE, UNCERTAIN_FOLDER, SortOptions
from ..pipeline.batch_scorer import BatchScorer
from ..pipeline.embedding_cache import EmbeddingCache
from ..pipeline.encoder import DualEncoder, PipelineClassifier, load_encoder_for
from ..pipeline.finding import FoundFile
from ..pipeline.media import MediaScorer, frame_chunks
from ..storage.finished import FinishedRun
from ..storage.frame_table import write_frame_table
from ..storage.layout import plan_folders
from .outcome import count_lines


@dataclass
class ResortResult:
    moved: int
    unchanged: int
    label_counts: dict[str, int]
    csv_path: Path
    seconds: float
    problems: list[str]

    def summary(self) -> str:
        lines = [f"Re-sorted in {self.seconds:.1f} s: {self.moved} file(s) changed folder, {self.unchanged} stayed."]
        lines += count_lines(self.label_counts)
        lines += [f"  {problem}" for problem in self.problems]
        lines.append(f"Table: {self.csv_path}")
        return "\n".join(lines)


def resort(
    destination: str | Path,
    labels: str | Mapping[str, object] | LabelSet | Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    prompt_mode: str = "average",
    threshold: float | None = None,
    margin: float | None = None,
    encoder: DualEncoder | PipelineClassifier | None = None,
) -> ResortResult:
    """Score the files of a finished run in `destination` against new labels and move them to match.

    The model, its revision, the preprocessing and the batch size are those of the run (its manifest).
    """
    started = time.perf_counter()
    with FinishedRun.open(destination, purpose="re-sort") as run:
        options = run.options.with_changes(
            template=template, prompt_mode=prompt_mode, threshold=threshold, margin=margin
        )
        if options.detect:
            raise DestinationError(
                f"The run in {str(run.destination)!r} detected objects; re-sorting applies to label runs. Sort the"
                " source again into a new destination with other objects (or `smart-sorter undo` this one first)."
            )
        if options.copy_tags:
            raise DestinationError(
                f"The run in {str(run.destination)!r} copied files into every tagged folder; re-sorting such a run is"
                " not supported. `smart-sorter undo` it and sort again with the new labels (the cache makes that fast)."
            )
        label_set = parse_labels(labels, template)
        bucket = threshold is not None or margin is not None or label_set.needs_uncertain or options.multi_label
        folders, folder_paths = plan_folders(
            label_set.placed_categories, run.destination, uncertain_bucket=bucket, uncertain_name=UNCERTAIN_FOLDER
        )
        settings = {**run.state.settings, "prompts": label_set.as_dict(), "prompt_mode": prompt_mode,
                    "threshold": threshold, "margin": margin}  # fmt: skip
        run.journal.write("run", settings=settings, resort=True)
        encoder = encoder or load_encoder_for(options, precision=recorded_precision(run.manifest), towers="text")
        moved, unchanged, problems = _move_to_new_labels(run, encoder, label_set, folder_paths, options)
        columns = csv_columns(options.top_k, label_set.categories if options.multi_label else ())
        run.rewrite_tables(columns=columns, categories=label_set.categories, labels=list(label_set.categories),
                           prompts=label_set.as_dict(), folders=folders, resorted=time.strftime("%FT%T"))  # fmt: skip
        write_frame_table(run.output_path, list(run.rows.values()))
        label_counts = count_rows(list(run.rows.values()), label_set.categories)[0]
        return ResortResult(moved, unchanged, label_counts, run.output_path, time.perf_counter() - started, problems)


def recorded_precision(manifest: dict) -> str:
    """The image precision the run embedded images in (so the cache is hit without loading the image tower);
    runs recorded before precisions were chosen used float32, or float16 on a GPU."""
    model = manifest.get("model") or {}
    if model.get("precision"):
        return str(model["precision"])
    return {"float16": "fp16", "bfloat16": "bf16"}.get(str(model.get("dtype")), "fp32")


def _move_to_new_labels(
    run: FinishedRun,
    encoder: DualEncoder | PipelineClassifier,
    label_set: LabelSet,
    folder_paths: dict[str, Path],
    options: SortOptions,
) -> tuple[int, int, list[str]]:
    """Score every file the run placed against the new labels and move those whose folder changed."""
    placed = run.placed_by_run()
    files = [
        FoundFile(run.destination / row["destination"], relative, kind=row.get("kind") or "image")
        for relative, row in placed.items()
    ]
    cache = EmbeddingCache() if options.use_cache else None
    scorer = BatchScorer(encoder, label_set, preprocess=options.preprocess, prompt_mode=options.prompt_mode,
                         batch_size=options.batch_size, cache=cache, multi_label=options.multi_label,
                         tiles=options.tiles)  # fmt: skip
    media = MediaScorer(scorer, options)  # a video's frames from the cache, by its hash and their times
    moved, unchanged, problems = 0, 0, []
    try:
        stream = media.stream(files, workers=2, lookahead=2 * options.batch_size,
                              max_bytes=options.max_image_mb * MEGABYTE)  # fmt: skip
        for chunk in frame_chunks(stream, options.batch_size):
            valid = [item for item in chunk if not item.error]
            new_rows = media.rows(chunk, media.score(valid) if valid else None, label_set)
            for item, row in zip(chunk, new_rows):
                old = placed[item.found.relative]
                if item.error:
                    problems.append(f"{old['destination']}: {item.error}; left where it is")
                    continue
                row.update(destination=old["destination"], action=old["action"], sha256=old["sha256"])
                target = target_folder(row, folder_paths, UNCERTAIN_FOLDER)
                if item.found.path.parent == target:
                    run.record_with_twins(row)
                    unchanged += 1
                    continue
                try:
                    run.relocate(row, target)
                except PlacementError as error:
                    problems.append(f"{old['destination']}: {error}; left where it is")
                    continue
                moved += 1
            run.journal.sync()
    finally:
        if cache is not None:
            cache.close()
    return moved, unchanged, problems
