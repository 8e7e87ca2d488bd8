"""`smart-sorter --source ... --destination ... --labels ...`: one sorting run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .._version import __version__
from ..options import (
    ANIMATED_MODES,
    DEFAULT_DETECTOR,
    DEVICES,
    MAX_VIDEO_FRAMES,
    OPERATIONS,
    PRECISIONS,
    PREPROCESS_MODES,
    VIDEO_SCORES,
    SortOptions,
)
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
  smart-sorter --source photos --destination found --detect "a rifle, a tank, a flag"
      find objects with a zero-shot detector: one folder per object, boxes in output.csv
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
    add_label_arguments(parser.add_argument_group("labels"), required=False)
    _add_tag_arguments(parser.add_argument_group("several labels per image"))
    detection = parser.add_argument_group("finding objects")
    detection.add_argument(
        "--detect", nargs="?", const=True, metavar="OBJECTS",
        help='find these objects with a zero-shot detector (--model, default '
        f'{DEFAULT_DETECTOR}): "a rifle, a tank, a flag"; each image goes to the folder of its most confident'
        " object, copied into those of the others found, or to 'nothing found'; boxes in output.csv. Alone,"
        " the objects come from --labels or --labels-file (thresholds per object); --threshold is the score a box"
        " needs (0.1)",
    )  # fmt: skip
    detection.add_argument(
        "--detect-examples", "--detect_examples", type=Path, metavar="DIR",
        help="find the objects shown in example images (OWL detectors): each image in DIR is an object named by"
        " its file name, each subfolder an object with several examples",
    )  # fmt: skip
    parser.add_argument_group("small things in big images").add_argument(
        "--tiles", type=setting("tiles", int, WHOLE_NUMBER), default=DEFAULTS.tiles, metavar="N",
        help="also look at overlapping tiles, N across the shorter side (never smaller than the model's input);"
        " each label is scored by its best tile, so an image 'contains' it (0: the whole image only)",
    )  # fmt: skip
    _add_model_arguments(parser.add_argument_group("the model"))
    _add_video_arguments(parser.add_argument_group("videos (sorted by their frames; needs the video extra)"))
    _add_output_arguments(parser.add_argument_group("output"))
    parser.set_defaults(
        **{
            name: getattr(DEFAULTS, name)
            for name in ("dry_run", "multi_label", "copy_tags", "use_cache", "video_keyframes")
        }
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


def _add_video_arguments(videos: argparse._ArgumentGroup) -> None:
    how = videos.add_mutually_exclusive_group()
    how.add_argument(
        "--video-frames", "--video_frames", type=setting("video_frames", int, WHOLE_NUMBER),
        default=DEFAULTS.video_frames, metavar="N",
        help=f"frames scored per video, evenly spaced ({DEFAULTS.video_frames}; at most {MAX_VIDEO_FRAMES})",
    )  # fmt: skip
    how.add_argument(
        "--video-every", "--video_every", type=setting("video_every", float, "a number of seconds"),
        metavar="SECONDS", help="instead: a frame every SECONDS seconds",
    )  # fmt: skip
    how.add_argument(
        "--video-keyframes", "--video_keyframes", action="store_true",
        help="instead: the keyframes alone (fastest: nothing between them is decoded)",
    )  # fmt: skip
    videos.add_argument(
        "--video-score", "--video_score", choices=VIDEO_SCORES, default=DEFAULTS.video_score,
        help="a video's label from its frames: mean probability, or max (what it shows at some point);"
        " auto (default) is mean, and max for --multi-label tags",
    )  # fmt: skip
    videos.add_argument(
        "--animated", choices=ANIMATED_MODES, default=DEFAULTS.animated,
        help="animated GIF, WebP and PNG files: their first frame as an image (first, the default), or their"
        " frames sampled and scored as a video's, with the options above (frames)",
    )  # fmt: skip


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
    examples = getattr(arguments, "detect_examples", None) is not None
    given = {**vars(arguments), "detect": bool(getattr(arguments, "detect", None)) or examples}
    return SortOptions(**{name: given[name] for name in SortOptions.field_names() if name in given})


def sort_command(argv: Sequence[str]) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.detect_examples is not None:
        if arguments.detect is not None or arguments.labels is not None or arguments.labels_file is not None:
            parser.error("--detect-examples names the objects itself; leave out --detect, --labels and --labels-file")
        labels, objects = None, arguments.detect_examples
    else:
        labels, objects = labels_given(parser, arguments), None
    from ..runs.sorting import sort_images

    return print_outcome(
        lambda: sort_images(
            arguments.source,
            arguments.destination,
            labels,
            options_from(arguments),
            detect=objects,
            notify=lambda message: say(f"note: {message}"),
            progress_bar=not arguments.quiet,
        ),
        arguments.verbose,
    )
