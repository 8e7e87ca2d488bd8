"""The commands that work on what runs left: `undo`, `resort`, and the embedding `cache`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .arguments import add_label_arguments, add_verbose, labels_given
from .printing import TextReport, print_outcome


def undo_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter undo",
        description="Undo the sorting run (and any re-sort) in DESTINATION: moved files go back to the source,"
        " copies the run made are removed, each verified by its hash first. Files the run did not create are"
        " never deleted; the run's output.csv and manifest are kept, renamed as undone. A coding that placed"
        " files (code --sort-by) is undone the same way; its coding.csv is kept, renamed as undone.",
    )
    parser.add_argument("destination", type=Path, help="the destination folder of the run")
    add_verbose(parser)
    arguments = parser.parse_args(argv)
    from ..runs.undo import undo_run

    return print_outcome(lambda: undo_run(arguments.destination), arguments.verbose)


def resort_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter resort",
        description="Sort a finished destination again with new labels, in place: the images are scored from"
        " the embeddings cached by the run (same model and settings), files whose label changed move between"
        " label folders, verified, and output.csv is rewritten. `smart-sorter undo` still undoes it all.",
    )
    parser.add_argument("destination", type=Path, help="the destination folder of a finished run")
    add_label_arguments(parser)
    parser.add_argument(
        "--quiet", action="store_true", help="accepted as for sorting; re-sorting shows no progress bar"
    )
    add_verbose(parser)
    arguments = parser.parse_args(argv)
    labels = labels_given(parser, arguments)
    from ..runs.resorting import resort

    return print_outcome(
        lambda: resort(
            arguments.destination,
            labels,
            template=arguments.template,
            prompt_mode=arguments.prompt_mode,
            threshold=arguments.threshold,
            margin=arguments.margin,
        ),
        arguments.verbose,
    )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def cache_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter cache",
        description="Show the embedding cache (one file under SMART_SORTER_HOME) that lets new labels skip the"
        " image model, or empty it with --clear. Sorted files and tables are not touched.",
    )
    parser.add_argument("--clear", action="store_true", help="delete every cached embedding and remembered hash")
    add_verbose(parser)
    arguments = parser.parse_args(argv)
    from ..pipeline.embedding_cache import EmbeddingCache

    def show() -> TextReport:
        store = EmbeddingCache()
        try:
            before = store.stats()
            if arguments.clear:
                store.clear()
            stats = store.stats()
        finally:
            store.close()
        if arguments.clear:
            count = sum(before["models"].values()) + sum(before["frames"].values())
            models = len({*before["models"], *before["frames"]})
            return TextReport(
                f"Cleared {count} embedding{'s' if count != 1 else ''} of {models} model{'s' if models != 1 else ''}"
                f" and the hashes of {before['files']} file{'s' if before['files'] != 1 else ''}; the cache file"
                f" {stats['path']} is now {_megabytes(stats['bytes'])} (was {_megabytes(before['bytes'])})."
            )
        return TextReport("\n".join(_cache_lines(stats)))

    return print_outcome(show, arguments.verbose)


def _cache_lines(stats: dict) -> list[str]:
    """The cache's contents: images and video frames embedded, per model."""
    counted = [(stats[name], name[:-1]) for name in ("videos", "animations") if stats.get(name)]
    named = " and ".join(f"{count} {what}{'s' if count != 1 else ''}" for count, what in counted)
    videos = f", frames of {named}" if counted else ""
    lines = [f"Embedding cache: {stats['path']} ({_megabytes(stats['bytes'])}, {stats['files']} files known{videos})"]
    for model in dict.fromkeys([*stats["models"], *stats["frames"]]):
        images, frames = stats["models"].get(model, 0), stats["frames"].get(model, 0)
        lines.append(f"  {images:>8} images" + (f", {frames} video frames" if frames else "") + f"  {model}")
    if len(lines) == 1:
        lines.append("  (empty: the next run fills it)")
    return lines
