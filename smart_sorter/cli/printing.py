"""What every command prints: its result's summary, or a user's error as one line, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SmartSorterError


def say(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class TextReport:
    """A finished command's output for `report`."""

    text: str

    def summary(self) -> str:
        return self.text


def in_command_line_words(error: SmartSorterError) -> str:
    """The error's sentence as the command line says it: an error that has one for each surface (another
    run in the destination: `smart-sorter resort`, not `smart_sorter.resort(...)`) gives its own."""
    message_for = getattr(error, "message_for", None)
    return message_for("cli") if callable(message_for) else str(error)


def print_outcome(work: Callable[[], object], verbose: bool) -> int:
    """Run `work` and print its summary; a user's error becomes one line, never a traceback."""
    try:
        result = work()
    except SmartSorterError as error:
        if verbose:
            raise
        say(f"error: {in_command_line_words(error)}")
        return 1
    except KeyboardInterrupt:
        say(
            "Interrupted. Nothing is left half-written, and what was done is recorded in the destination;"
            " run the same command again to finish."
        )
        return 130
    try:
        print(result.summary(), flush=True)
    except BrokenPipeError:  # the output was piped into a command that stopped reading (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
