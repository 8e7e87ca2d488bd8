"""`smart-sorter --source ... --destination ... --labels ...`: one sorting run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..options import DEVICES, OPERATIONS, PRECISIONS, PREPROCESS_MODES, SortOptions
from .arguments import DEFAULTS, add_label_arguments, add_verbose, labels_given, setting
from .printing import print_outcome, say

DESCRIPTION = """\
Sort the images of a folder into one folder per label with a zero-shot image model.
Files are copied (or moved), never changed; output.csv in the destination says where
each one went, with its scores."""
EXAMPLE = """example:
  smart-sorter --source photos --destination sorted \\
      --labels "screenshot of a newspaper article, a person, memes" \\
      --model openai/clip-vit-base-patch32

The same command again finishes an interrupted run (and does nothing to a finished one).
The original Smart Image Sorter's flags work as they were: --output_file, --batch_size, --verbose=True.

other commands (each has its own --help):
  smart-sorter resort DESTINATION --labels "a, b, c"
      sort a finished destination again with new labels, in place, from the cached embeddings
  smart-sorter undo DESTINATION
      put moved files back and remove the copies a run made, verified by hash
  smart-sorter cache [--clear]
      show or empty the embedding cache (SMART_SORTER_HOME) that makes new labels fast
  smart-sorter sample DESTINATION --size 50 --csv sample.csv
      draw files to label by hand; then check the sorting against them:
  smart-sorter evaluate --results DESTINATION --truth sample.csv [--report report.html]
  smart-sorter report DESTINATION [--truth sample.csv] [--blur]
      one HTML page showing the sorting
  smart-sorter code SOURCE (--codebook codebook.yaml | --ask "Is there a weapon?") --destination DIR
      answer questions about every image with a vision-language model, into coding.csv
"""
WHOLE_NUMBER = "a whole number"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-sorter",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("what to sort, and where to")
    where.add_argument(
        "--source", required=True, type=Path, metavar="DIR", help="folder of images (searched recursively)"
    )
    where.add_argument(
        "--destination", required=True, type=Path, metavar="DIR", help="folder that gets one subfolder per label"
    )
    where.add_argument(
        "--operation", choices=OPERATIONS, default=DEFAULTS.operation, help="copy (default) or move the files"
    )
    where.add_argument("--dry-run", "--dry_run", action="store_true", help="score and write plan.csv; place no file")
    add_label_arguments(parser.add_argument_group("labels"))
    _add_tag_arguments(parser.add_argument_group("several labels per image"))
    _add_model_arguments(parser.add_argument_group("the model"))
    _add_output_arguments(parser.add_argument_group("output"))
    parser.set_defaults(
        **{name: getattr(DEFAULTS, name) for name in ("dry_run", "multi_label", "copy_tags", "use_cache")}
    )
    return parser


def _add_tag_arguments(tags: argparse._ArgumentGroup) -> None:
    tags.add_argument(
        "--multi-label",
        "--multi_label",
        action="store_true",
        help="tag each image with every category scoring above --threshold (0.5) on its own; placed by its best tag",
    )
    tags.add_argument(
        "--copy-to-tags",
        "--copy_to_tags",
        dest="copy_tags",
        action="store_true",
        help="with --multi-label: also copy each image into the folder of every other tag it got",
    )


def _add_model_arguments(model: argparse._ArgumentGroup) -> None:
    model.add_argument(
        "--model", default=DEFAULTS.model, metavar="ID_OR_PATH",
        help=f"Hugging Face model id or local folder ({DEFAULTS.model})",
    )  # fmt: skip
    model.add_argument("--revision", metavar="REV", help="model revision (branch, tag or commit) on the Hub")
    model.add_argument(
        "--device", type=setting("device"), default=DEFAULTS.device,
        help=f"{', '.join(DEVICES)} or cuda:N ({DEFAULTS.device})",
    )  # fmt: skip
    model.add_argument(
        "--batch_size", "--batch-size", type=setting("batch_size", int, WHOLE_NUMBER), default=DEFAULTS.batch_size,
        metavar="N", help=f"images per model call ({DEFAULTS.batch_size})",
    )  # fmt: skip
    model.add_argument(
        "--preprocess",
        choices=PREPROCESS_MODES,
        default=DEFAULTS.preprocess,
        help="fast decoding (default), or exactly the model's own processor (scores equal the pipeline's)",
    )
    model.add_argument(
        "--precision", choices=PRECISIONS, default=DEFAULTS.precision,
        help="number format of the image model: auto (default) is fp16 on a GPU, bf16 on a CPU that computes it"
        " natively when a short test shows it faster, else fp32; --preprocess exact implies fp32",
    )  # fmt: skip
    model.add_argument(
        "--max-image-mb", "--max_image_mb", type=setting("max_image_mb", int, WHOLE_NUMBER),
        default=DEFAULTS.max_image_mb, metavar="MB",
        help=f"files larger than this are hashed but not decoded: an error row says so ({DEFAULTS.max_image_mb})",
    )  # fmt: skip
    model.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="do not keep or reuse image embeddings (kept in SMART_SORTER_HOME)",
    )


def _add_output_arguments(output: argparse._ArgumentGroup) -> None:
    output.add_argument(
        "--output_file", "--output-file", type=Path, metavar="FILE",
        help="where to write the table; a relative path is inside DESTINATION (DESTINATION/output.csv)",
    )  # fmt: skip
    output.add_argument(
        "--top_k", "--top-k", type=setting("top_k", int, WHOLE_NUMBER), default=DEFAULTS.top_k, metavar="K",
        help=f"how many ranked labels output.csv keeps ({DEFAULTS.top_k})",
    )  # fmt: skip
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose(output)
    output.add_argument("--version", action="version", version=f"smart-sorter {__version__}")


def options_from(arguments: argparse.Namespace) -> SortOptions:
    """The run's settings: every argument that names a SortOptions field."""
    given = vars(arguments)
    return SortOptions(**{name: given[name] for name in SortOptions.field_names() if name in given})


def sort_command(argv: Sequence[str]) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    labels = labels_given(parser, arguments)
    from ..runs.sorting import sort_images

    return print_outcome(
        lambda: sort_images(
            arguments.source,
            arguments.destination,
            labels,
            options_from(arguments),
            notify=lambda message: say(f"note: {message}"),
            progress_bar=not arguments.quiet,
        ),
        arguments.verbose,
    )
