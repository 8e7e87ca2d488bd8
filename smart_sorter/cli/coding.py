"""`smart-sorter code`: ask every image a codebook's questions (or one question) with a vision-language model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..core.coding import BACKENDS, DEFAULT_MODELS, CodingOptions
from ..errors import OptionError
from .arguments import add_verbose
from .printing import TextReport, print_outcome, say

DEFAULTS = CodingOptions()
WHERE_IMAGES_GO = (
    "With --backend local (the default) the model runs on this machine and no image leaves it. With --backend"
    " openai every image is sent, inside the request, to the server at --base-url (by default OpenAI's API):"
    " use it only for images you may send there. The key comes from OPENAI_API_KEY."
)


def build_code_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-sorter code",
        description="Answer a codebook's questions for every image with a vision-language model and write"
        " coding.csv (one row per file, one column per question, tokens and cost). " + WHERE_IMAGES_GO,
    )
    parser.add_argument("source", type=Path, help="a folder of images, or a sorting's destination (holds output.csv)")
    asked = parser.add_mutually_exclusive_group(required=True)
    asked.add_argument("--codebook", type=Path, help="a YAML or JSON file: field -> description, type, options")
    asked.add_argument("--ask", metavar="QUESTION", help='one question, e.g. "Is there a weapon in the image?"')
    parser.add_argument("--options", dest="ask_options", help='with --ask: the answers to choose from, "a,b,c"'
                        " (default: yes/no)")  # fmt: skip
    parser.add_argument("--destination", type=Path, help="where coding.csv goes (default: beside output.csv)")
    parser.add_argument("--sort-by", metavar="FIELD", help="also copy each file into destination/<its answer>/"
                        " (undone by smart-sorter undo DESTINATION)")  # fmt: skip
    parser.add_argument("--operation", choices=("copy", "move"), default=DEFAULTS.operation,
                        help="with --sort-by: copy (default) or move the files into their folders")  # fmt: skip
    parser.add_argument("--retry-errors", action="store_true", help="ask again (and pay again) for the files"
                        " whose answers never fit the codebook in an earlier run of this coding")  # fmt: skip
    model = parser.add_argument_group("the model")
    model.add_argument("--backend", choices=BACKENDS, default=DEFAULTS.backend)
    model.add_argument("--model", help=f"model id or folder (default: {DEFAULT_MODELS['local']} locally,"
                       f" {DEFAULT_MODELS['openai']} for openai)")  # fmt: skip
    model.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    model.add_argument("--device", default=DEFAULTS.device, help="local backend: auto, cpu, cuda, mps")
    costs = parser.add_argument_group("tokens and cost")
    costs.add_argument("--price-in", type=float, default=DEFAULTS.price_in, help="price per million tokens read")
    costs.add_argument("--price-out", type=float, default=DEFAULTS.price_out, help="price per million tokens written")
    costs.add_argument("--max-cost", type=float, help="stop cleanly once this much is spent (rerun to go on)")
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument("--tries", type=int, default=DEFAULTS.tries, help="answers asked per image at most")
    tuning.add_argument("--concurrency", type=int, default=DEFAULTS.concurrency,
                        help="requests in flight (openai), images per batch (local)")  # fmt: skip
    tuning.add_argument("--image-size", type=int, default=DEFAULTS.image_size, help="longest side sent, in pixels")
    tuning.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens)
    tuning.add_argument("--video-frames", type=int, default=DEFAULTS.video_frames,
                        help="a video is answered from this many evenly spaced frames, sent together")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose(parser)
    return parser


def coding_options_from(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> CodingOptions:
    names = ("backend", "model", "base_url", "device", "price_in", "price_out", "max_cost", "tries", "concurrency",
             "image_size", "max_new_tokens", "sort_by", "operation", "retry_errors", "video_frames")  # fmt: skip
    try:
        return CodingOptions(**{name: getattr(arguments, name) for name in names})
    except OptionError as error:
        parser.error(str(error))
        raise  # unreachable: error() exits


def code_command(argv: Sequence[str]) -> int:
    parser = build_code_parser()
    arguments = parser.parse_args(argv)
    if arguments.ask_options and not arguments.ask:
        parser.error("--options goes with --ask (a codebook file names its own options)")
    options = coding_options_from(parser, arguments)
    from ..runs.coding import code_images

    return print_outcome(
        lambda: code_images(
            arguments.source,
            arguments.codebook,
            arguments.destination,
            options,
            ask=arguments.ask,
            ask_options=arguments.ask_options,
            notify=lambda message: say(f"note: {message}"),
            progress_bar=not arguments.quiet,
        ),  # fmt: skip
        arguments.verbose,
    )


def evaluate_coding_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter evaluate --coding",
        description="Measure a coding against human coders, field by field: agreement, kappa and Krippendorff's"
        " alpha for options and yes/no, mean absolute error and alpha for numbers, with 95% intervals.",
    )
    parser.add_argument("--coding", type=Path, required=True, help="coding.csv, or the folder holding it")
    parser.add_argument("--truth", type=Path, required=True, help="CSV with file and the fields coded by hand")
    parser.add_argument("--codebook", type=Path, help="the codebook (default: the one the coding recorded)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the intervals; 0 for none")
    add_verbose(parser)
    arguments = parser.parse_args(argv)
    from ..validation.coding_evaluation import evaluate_coding

    return print_outcome(
        lambda: evaluate_coding(arguments.coding, arguments.truth, arguments.codebook, bootstrap=arguments.bootstrap),
        arguments.verbose,
    )


def sample_coding_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter sample --coding",
        description="Draw a blind sample of a coding for human coders: a sheet with an empty column per question"
        " and copies of the files named by their id. The filled-in sheet is the truth for evaluate --coding.",
    )
    parser.add_argument("--coding", type=Path, required=True, help="the coding's destination, or its coding.csv")
    parser.add_argument("--size", type=int, required=True, help="how many files")
    parser.add_argument("--csv", type=Path, required=True, help="the sheet to write (copies go to SHEET_files/)")
    parser.add_argument("--seed", type=int, default=0)
    add_verbose(parser)
    arguments = parser.parse_args(argv)
    from ..validation.coding_sampling import sample_coding

    return print_outcome(
        lambda: sample_coding(arguments.coding, arguments.csv, arguments.size, seed=arguments.seed), arguments.verbose
    )


def report_coding_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-sorter report --coding",
        description="Write one HTML page showing a coding: each image beside its answers, the answers per question,"
        " the model, tokens and cost. It opens offline and can be sent as one file.",
    )
    parser.add_argument("--coding", type=Path, required=True, help="the coding's destination, or its coding.csv")
    parser.add_argument("--output", type=Path, help="where to write it (default: coding-report.html beside it)")
    parser.add_argument("--shown", type=int, default=200, help="images shown (the first N of coding.csv)")
    parser.add_argument("--blur", action="store_true", help="blur every image until it is clicked")
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    add_verbose(parser)
    arguments = parser.parse_args(argv)
    from ..validation.coding_report import write_coding_report

    def work() -> TextReport:
        written = write_coding_report(arguments.coding, arguments.output, force=arguments.force,
                                      shown=arguments.shown, blur=arguments.blur)  # fmt: skip
        return TextReport(f"Report: {written}")

    return print_outcome(work, arguments.verbose)


CODING_VALIDATION = {
    "sample": sample_coding_command,
    "evaluate": evaluate_coding_command,
    "report": report_coding_command,
}
