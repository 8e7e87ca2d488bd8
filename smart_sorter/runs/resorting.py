"""`smart-sorter resort`: sort a finished destination again with new labels, in place.

The images' embeddings come from the cache, so no image goes through the model again (unless the
cache was cleared). Files whose label changed move between label folders through the same safe
placement as a run; the journal keeps where each file originally came from, so `undo` still puts
moved files back and removes copies.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.folders import target_folder
from ..core.labels import LabelSet, parse_labels
from ..core.rows import count_rows, csv_columns, scored_row
from ..core.scoring import rank
from ..errors import DestinationError, PlacementError
from ..options import DEFAULT_TEMPLATE, MANIFEST_FILE_NAME, UNCERTAIN_FOLDER
from ..pipeline.batch_scorer import BatchScorer
from ..pipeline.embedding_cache import EmbeddingCache
from ..pipeline.encoder import DualEncoder, PipelineClassifier, load_encoder
from ..pipeline.finding import FoundFile
from ..pipeline.reading import chunks, prepared_stream
from ..storage.journal import Journal, journal_path, read_journal
from ..storage.layout import plan_folders, remove_empty_folders
from ..storage.organising import relocate
from ..storage.tables import CsvLog, read_manifest, write_manifest
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
    """Score the files of a finished run in `destination` against new labels and move them to match."""
    started = time.perf_counter()
    destination = Path(destination).resolve()
    state = read_journal(journal_path(destination))
    manifest_path = destination / MANIFEST_FILE_NAME
    manifest = read_manifest(destination)
    if state.settings is None or not state.done_rows or not manifest:
        raise DestinationError(f"No finished smart-sorter run is recorded in {str(destination)!r}; nothing to re-sort.")
    if manifest.get("status") != "finished" or manifest["options"].get("dry_run"):
        raise DestinationError(
            f"The run in {str(destination)!r} is not finished (status {manifest.get('status')!r}); run its command"
            " again to finish it first."
        )
    options = manifest["options"]
    if options.get("copy_tags"):
        raise DestinationError(
            f"The run in {str(destination)!r} copied files into every tagged folder; re-sorting such a run is not"
            " supported. `smart-sorter undo` it and sort again with the new labels (the cache makes that fast)."
        )
    multi_label = bool(options.get("multi_label"))  # the run's mode is kept
    label_set = parse_labels(labels, template)
    bucket = threshold is not None or margin is not None or label_set.needs_uncertain or multi_label
    folders, folder_paths = plan_folders(
        label_set.placed_categories, destination, uncertain_bucket=bucket, uncertain_name=UNCERTAIN_FOLDER
    )
    # only files the run put there move; a `duplicate` was there before the run and is not ours to move
    ours = [row for row in state.done_rows if row.get("destination") and row.get("action") in ("copied", "moved")]
    placed = {row["file"]: row for row in ours}
    kept_rows = [row for row in state.done_rows if row["file"] not in placed]
    files = [FoundFile(destination / row["destination"], relative) for relative, row in placed.items()]

    encoder = encoder or load_encoder(options["model"], device=options.get("device", "auto"))
    cache = EmbeddingCache() if options.get("cache", True) else None
    scorer = BatchScorer(encoder, label_set, preprocess=options["preprocess"], prompt_mode=prompt_mode,
                         batch_size=options["batch_size"], cache=cache, multi_label=multi_label)  # fmt: skip
    top_k = options["top_k"]
    settings = {**state.settings, "prompts": label_set.as_dict(), "prompt_mode": prompt_mode,
                "threshold": threshold, "margin": margin}  # fmt: skip
    journal = Journal(journal_path(destination))
    journal.write("run", settings=settings, resort=True)
    moved, unchanged, problems, rows = 0, 0, [], list(kept_rows)
    try:
        stream = prepared_stream(files, scorer.prepare, workers=2, lookahead=2 * options["batch_size"],
                                 known_hashes=scorer.known_hashes(files), cached=scorer.cached_hashes)  # fmt: skip
        for chunk in chunks(stream, options["batch_size"]):
            valid = [item for item in chunk if not item.error]
            scores = scorer.score(valid) if valid else None
            per_image = scores.ranked(multi_label) if scores is not None else None
            rankings = iter(rank(per_image, top_k) if per_image is not None else ())
            tag_scores = iter(per_image if per_image is not None and multi_label else ())
            best_prompts = iter(scores.best_prompt if scores is not None else ())
            for item in chunk:
                old = placed[item.found.relative]
                if item.error:
                    problems.append(f"{old['destination']}: {item.error}; left where it is")
                    rows.append(old)
                    continue
                row = scored_row(
                    old["file"], old["sha256"], next(rankings), next(best_prompts), label_set,
                    threshold=threshold, margin=margin, tag_scores=next(tag_scores, None),
                )  # fmt: skip
                row.update(destination=old["destination"], action=old["action"])
                target = target_folder(row, folder_paths, UNCERTAIN_FOLDER)
                if item.found.path.parent == target:
                    unchanged += 1
                else:
                    try:
                        row = relocate(journal, destination, row, target)
                    except PlacementError as error:
                        problems.append(f"{old['destination']}: {error}; left where it is")
                        rows.append(old)
                        continue
                    moved += 1
                journal.write("done", file=row["file"], row=row)
                rows.append(row)
            journal.sync()
    finally:
        journal.close()
        if cache is not None:
            cache.close()
    csv_path = Path(settings["output_file"])
    CsvLog(csv_path, csv_columns(top_k, label_set.categories if multi_label else ()), resumed_rows=rows).close()
    remove_empty_folders((destination / row["destination"]).parent for row in placed.values())
    label_counts, status_counts = count_rows(rows, label_set.categories)
    manifest.update(labels=list(label_set.categories), prompts=label_set.as_dict(), folders=folders)
    manifest.update(label_counts=label_counts, status_counts=status_counts, resorted=time.strftime("%FT%T"))
    write_manifest(manifest_path, manifest)
    return ResortResult(moved, unchanged, label_counts, csv_path, time.perf_counter() - started, problems)
