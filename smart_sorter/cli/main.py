"""The command line: arguments in, one-line messages and a summary out. All work happens in the package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..options import DEVICES, OPERATIONS, PREPROCESS_MODES, PROMPT_MODES, SortOptions
from .printing import TextReport, print_outcome, say

DEFAULTS = SortOptions()  # every default of the command line is the dataclass's own
EXAMPLE = """example:
  smart-sorter --source photos --destination sorted \\
      --labels "screenshot of a newspaper article,a picture of a person,memes" \\
      --model openai/clip-vit-base-patch32

An interrupted run is finished by running the same command again.
Undo a run (moved files go back, copies are removed, all verified by hash):
  smart-sorter undo DESTINATION
Image embeddings are kept in SMART_SORTER_HOME, so sorting the same images again with
new labels skips the image model; show or empty that cache with:
  smart-sorter cache [--clear]
Sort a finished destination again with new labels, in place, from the cache:
  smart-sorter resort DESTINATION --labels "a,b,c"
Check how right a sorting is: label a sample by hand, evaluate, and make a report:
  smart-sorter sample DESTINATION --size 50 --csv sample.csv
  smart-sorter evaluate --results DESTINATION --truth sample.csv --report report.html
  smart-sorter report DESTINATION [--truth sample.csv] [--blur]
"""


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """The labels and how they are scored and trusted: shared by sorting and re-sorting."""
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated labels, e.g. "cat,dog,a bird in the sky"')
    labels.add_argument(
        "--labels-file", "--labels_file", type=Path, help="JSON or YAML file mapping each category to its prompts"
    )
    parser.add_argument("--template", default=DEFAULTS.template, help=f'text around each label ("{DEFAULTS.template}")')
    parser.add_argument(
        "--prompt-mode",
        "--prompt_mode",
        choices=PROMPT_MODES,
        default=DEFAULTS.prompt_mode,
        help="with several prompts per category: average their embeddings, or take the best one",
    )
    parser.add_argument(
        "--threshold", type=float, help="best probability below this (0-1): the file goes to uncertain/ instead"
    )
    parser.add_argument(
        "--margin", type=float, help="best minus second probability below this (0-1): the file goes to uncertain/"
    )
    parser.add_argument("--verbose", action="store_true", help="show details of errors")


def labels_given(arguments: argparse.Namespace) -> object:
    return arguments.labels_file if arguments.labels_file is not None else arguments.labels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-sorter",
        description="Sort the images of a folder into one folder per label with a zero-shot image model.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", required=True, type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--destination", required=True, type=Path, help="folder that gets one subfolder per label")
    add_label_arguments(parser)
    parser.add_argument(
        "--model", default=DEFAULTS.model, help=f"Hugging Face model id or local folder ({DEFAULTS.model})"
    )
    parser.add_argument(
        "--operation", choices=OPERATIONS, default=DEFAULTS.operation, help="copy (default) or move the files"
    )
    parser.add_argument(
        "--output_file", "--output-file", type=Path, help="where to write the table (default: DESTINATION/output.csv)"
    )
    parser.add_argument(
        "--batch_size", "--batch-size", type=int, default=DEFAULTS.batch_size,
        help=f"images per model call ({DEFAULTS.batch_size})",
    )  # fmt: skip
    parser.add_argument(
        "--preprocess",
        choices=PREPROCESS_MODES,
        default=DEFAULTS.preprocess,
        help="fast decoding, or exactly the model's processor",
    )
    parser.add_argument("--device", default=DEFAULTS.device, help=f"{', '.join(DEVICES)} or cuda:N ({DEFAULTS.device})")
    parser.add_argument(
        "--top_k", "--top-k", type=int, default=DEFAULTS.top_k,
        help=f"how many ranked labels output.csv keeps ({DEFAULTS.top_k})",
    )  # fmt: skip
    parser.add_argument("--revision", help="model revision (branch, tag or commit) on the Hub")
    parser.add_argument("--dry-run", "--dry_run", action="store_true", help="score and write the table; place no file")
    parser.add_argument(
        "--multi-label",
        "--multi_label",
        action="store_true",
        help="tag each image with every category scoring above --threshold (0.5) on its own; placed by its best tag",
    )
    parser.add_argument(
        "--copy-to-tags",
        "--copy_to_tags",
        dest="copy_tags",
        action="store_true",
        help="with --multi-label: also copy each image into the folder of every other tag it got",
    )
    parser.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="do not keep or reuse image embeddings (kept in SMART_SORTER_HOME)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(
        **{name: getattr(DEFAULTS, name) for name in ("dry_run", "multi_label", "copy_tags", "use_cache")}
    )
    parser.add_argument("--version", action="version", version=f"smart-sorter {__version__}")
    return parser


def build_undo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-sorter undo",
        description="Undo a sorting run: put moved files back and remove the copies it made, verified by hash."
        " Files the run did not create are never deleted.",
    )
    parser.add_argument("destination", type=Path, help="the destination folder of the run")
    parser.add_argument("--verbose", action="store_true", help="show details of errors")
    return parser


def undo(argv: Sequence[str]) -> int:
    arguments = build_undo_parser().parse_args(argv)
    from ..runs.undo import undo_run

    return print_outcome(lambda: undo_run(arguments.destination), arguments.verbose)


def resort_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter resort",
        description="Sort a finished destination again with new labels, in place, from cached embeddings:"
        " files move between label folders, verified, and output.csv is rewritten.",
    )
    parser.add_argument("destination", type=Path, help="the destination folder of a finished run")
    add_label_arguments(parser)
    arguments = parser.parse_args(argv)
    from ..runs.resorting import resort

    return print_outcome(
        lambda: resort(
            arguments.destination,
            labels_given(arguments),
            template=arguments.template,
            prompt_mode=arguments.prompt_mode,
            threshold=arguments.threshold,
            margin=arguments.margin,
        ),
        arguments.verbose,
    )


def cache(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter cache",
        description="Show the embedding cache (SMART_SORTER_HOME), or empty it with --clear.",
    )
    parser.add_argument("--clear", action="store_true", help="delete every cached embedding")
    arguments = parser.parse_args(argv)
    from ..pipeline.embedding_cache import EmbeddingCache

    def show() -> TextReport:
        store = EmbeddingCache()
        try:
            if arguments.clear:
                store.clear()
            stats = store.stats()
        finally:
            store.close()
        lines = [f"Embedding cache: {stats['path']} ({stats['bytes'] / 1e6:.1f} MB, {stats['files']} files known)"]
        lines += [f"  {count:>8} images  {model}" for model, count in stats["models"].items()]
        return TextReport("\n".join(lines))

    return print_outcome(show, False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["undo"]:
        return undo(argv[1:])
    if argv[:1] == ["cache"]:
        return cache(argv[1:])
    if argv[:1] == ["resort"]:
        return resort_command(argv[1:])
    if argv[:1] in (["sample"], ["evaluate"], ["report"]):
        from . import validation as validation_cli

        return validation_cli.COMMANDS[argv[0]](argv[1:])
    arguments = build_parser().parse_args(argv)
    from ..runs.sorting import sort_images

    return print_outcome(
        lambda: sort_images(
            arguments.source,
            arguments.destination,
            labels_given(arguments),
            options_from(arguments),
            notify=lambda message: say(f"note: {message}"),
            progress_bar=not arguments.quiet,
        ),
        arguments.verbose,
    )


def options_from(arguments: argparse.Namespace) -> SortOptions:
    """The run's settings: every argument that names a SortOptions field."""
    given = vars(arguments)
    return SortOptions(**{name: given[name] for name in SortOptions.field_names() if name in given})
