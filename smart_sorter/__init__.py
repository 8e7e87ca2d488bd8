"""Smart Sorter: sort images into folders by what they show, with zero-shot vision-language models."""

from .errors import SmartSorterError
from .options import DEFAULT_MODEL, DEFAULT_TEMPLATE, SortOptions

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "SmartSorterError",
    "SortOptions",
    "SortResult",
    "evaluate",
    "sort_images",
]


def __getattr__(name: str):
    # The sorter pulls in numpy and Pillow; loaded on first use so `smart-sorter --help` is instant.
    if name == "sort_images":
        from .sorter import sort_images

        return sort_images
    if name == "evaluate":
        from .evaluation import evaluate

        return evaluate
    if name == "SortResult":
        from .results import SortResult

        return SortResult
    raise AttributeError(f"module 'smart_sorter' has no attribute {name!r}")
