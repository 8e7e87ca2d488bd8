"""Smart Sorter: sort images into folders by what they show, with zero-shot vision-language models."""

from ._version import __version__
from .errors import SmartSorterError
from .options import DEFAULT_MODEL, DEFAULT_TEMPLATE, SortOptions

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "SmartSorterError",
    "SortOptions",
    "SortResult",
    "__version__",
    "code_images",
    "evaluate",
    "evaluate_coding",
    "resort",
    "sort_images",
    "undo",
]


def __getattr__(name: str):
    # The sorter pulls in numpy and Pillow; loaded on first use so `smart-sorter --help` is instant.
    if name == "sort_images":
        from .runs.sorting import sort_images

        return sort_images
    if name == "evaluate":
        from .validation.measuring import evaluate

        return evaluate
    if name == "code_images":
        from .runs.coding import code_images

        return code_images
    if name == "evaluate_coding":
        from .validation.coding_evaluation import evaluate_coding

        return evaluate_coding
    if name == "resort":
        from .runs.resorting import resort

        return resort
    if name == "undo":
        from .runs.undo import undo_run

        return undo_run
    if name == "SortResult":
        from .runs.outcome import SortResult

        return SortResult
    raise AttributeError(f"module 'smart_sorter' has no attribute {name!r}")
