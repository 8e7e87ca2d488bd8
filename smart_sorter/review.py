"""`smart_sorter.review.ReviewApp`, the review widget (it lives in `smart_sorter.notebook.review`)."""

from .notebook.review import ReviewApp

__all__ = ["ReviewApp"]
