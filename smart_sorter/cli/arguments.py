"""What the commands share: checked argument values, the labels arguments, and `--verbose` with a value."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..options import PROMPT_MODES, SortOptions

DEFAULTS = SortOptions()  # every default of the command line is the dataclass's own
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
LABELS_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def setting(name: str, convert: Callable[[str], Any] = str, kind: str = "") -> Callable[[str], Any]:
    """An argparse `type=` for the SortOptions field `name`: the value converted, then checked by
    SortOptions itself (the rules live in one place); a bad value is an argument error (exit 2)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}; got {text!r}") from None
        try:
            SortOptions(**{name: value})
        except OptionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    parse.__name__ = name  # argparse names the type in its own messages
    return parse


def add_verbose(parser: argparse.ArgumentParser | Any) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="on an error, show its full details (traceback) instead of one line; --verbose=True/False work too",
    )


def verbose_values(argv: Sequence[str]) -> list[str]:
    """`--verbose=True`, `--verbose false`, `--verbose=1`... (the original tool's `--verbose=True`) as the
    plain switch every command knows: `--verbose` when the last one says yes, nothing when it says no.
    A value that is not a yes or a no is an argument error (exit 2)."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    kept: list[str] = []
    verbose, first, index = None, None, 0
    while index < end:
        token = argv[index]
        if token == "--verbose" or token.startswith("--verbose="):
            word = token.partition("=")[2] if "=" in token else None
            if word is None and index + 1 < end and argv[index + 1].lower() in TRUE_WORDS | FALSE_WORDS:
                index += 1
                word = argv[index]
            if word is not None and word.lower() not in TRUE_WORDS | FALSE_WORDS:
                argparse.ArgumentParser(prog="smart-sorter", usage=argparse.SUPPRESS).error(
                    f"argument --verbose: expected true or false (or nothing, meaning true); got {word!r}"
                )
            verbose = word is None or word.lower() in TRUE_WORDS
            first = len(kept) if first is None else first
        else:
            kept.append(token)
        index += 1
    if verbose:
        kept.insert(first, "--verbose")
    return kept + argv[end:]


def add_label_arguments(parser: argparse.ArgumentParser | Any, *, required: bool = True) -> None:
    """The labels and how they are scored and trusted: shared by sorting and re-sorting. `parser` may be
    an argument group."""
    labels = parser.add_mutually_exclusive_group(required=required)
    labels.add_argument(
        "--labels", help='comma-separated labels, each put into --template: "a cat, a dog, a bird in the sky"'
    )  # fmt: skip
    labels.add_argument(
        "--labels-file",
        "--labels_file",
        type=Path,
        metavar="FILE",
        help="JSON or YAML file mapping each category to its prompts, used as written",
    )
    parser.add_argument(
        "--template",
        type=setting("template"),
        default=DEFAULTS.template,
        help=f'text around each --labels label, {{}} where it goes ("{DEFAULTS.template}", the transformers'
        ' pipeline\'s own, so labels need no "a photo of"); "{}" uses labels as written',
    )
    parser.add_argument(
        "--prompt-mode",
        "--prompt_mode",
        choices=PROMPT_MODES,
        default=DEFAULTS.prompt_mode,
        help="with several prompts per category: average their embeddings, or take the best one",
    )
    parser.add_argument(
        "--threshold",
        type=setting("threshold", float, "a number between 0 and 1"),
        metavar="P",
        help="best probability below this (0-1): the file goes to uncertain/ instead",
    )
    parser.add_argument(
        "--margin",
        type=setting("margin", float, "a number between 0 and 1"),
        metavar="P",
        help="best minus second probability below this (0-1): the file goes to uncertain/",
    )


def labels_given(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> object:
    """The labels file, or the labels text; one "label" that is a labels file's name is an argument error.
    In detection mode (`--detect`), the objects: its text, or the labels given with it."""
    detect = getattr(arguments, "detect", None)
    if isinstance(detect, str):
        if arguments.labels is not None or arguments.labels_file is not None:
            parser.error("give the objects either to --detect or with --labels/--labels-file, not both")
        return detect
    if arguments.labels is None and arguments.labels_file is None:
        parser.error("one of the arguments --labels --labels-file (or --detect OBJECTS) is required")
    if arguments.labels_file is not None:
        return arguments.labels_file
    text = arguments.labels.strip()
    if "," not in text and "\n" not in text and text.lower().endswith(LABELS_FILE_SUFFIXES):
        parser.error(f"{text!r} looks like a labels file; give it with --labels-file {shlex.quote(text)}")
    return arguments.labels
