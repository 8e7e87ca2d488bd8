"""The command line: `smart-sorter` and `python -m smart_sorter`."""

from .main import main

__all__ = ["main"]
