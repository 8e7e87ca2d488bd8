"""`smart_sorter.ui.SorterApp`, the notebook form (it lives in `smart_sorter.notebook.form`)."""

from .notebook.form import SorterApp, in_colab

__all__ = ["SorterApp", "in_colab"]
