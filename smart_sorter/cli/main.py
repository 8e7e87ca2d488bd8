"""The command line: arguments in, one-line messages and a summary out. All work happens in the package.

`smart-sorter --source ... --destination ... --labels ...` sorts (cli.sorting); `undo`, `resort` and
`cache` work on what runs left (cli.runs); `code` asks a vision-language model (cli.coding); `sample`,
`evaluate` and `report` check a sorting (cli.validation).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from ..pipeline.cpu_threads import let_idle_threads_sleep
from .arguments import DEFAULTS, add_label_arguments, verbose_values
from .coding import code_command
from .runs import cache_command, resort_command, undo_command
from .sorting import EXAMPLE, build_parser, options_from, sort_command

__all__ = ["DEFAULTS", "EXAMPLE", "add_label_arguments", "build_parser", "main", "options_from"]

COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "undo": undo_command,
    "resort": resort_command,
    "cache": cache_command,
    "code": code_command,
}
VALIDATION_COMMANDS = ("sample", "evaluate", "report")


def main(argv: Sequence[str] | None = None) -> int:
    let_idle_threads_sleep()  # before torch loads: idle model threads then leave the cores to decoding
    argv = verbose_values(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    if command in VALIDATION_COMMANDS and any(arg == "--coding" or arg.startswith("--coding=") for arg in argv):
        from .coding import CODING_VALIDATION

        return CODING_VALIDATION[command](argv[1:])
    if command in COMMANDS:
        return COMMANDS[command](argv[1:])
    if command in VALIDATION_COMMANDS:
        from . import validation as validation_cli

        return validation_cli.COMMANDS[command](argv[1:])
    return sort_command(argv)
