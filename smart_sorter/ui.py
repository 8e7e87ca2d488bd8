"""`smart_sorter.ui.SorterApp`, the notebook form (it lives in `smart_sorter.notebook.form`), and
`SmartSorterApp`, the same form with a mode for coding (`smart_sorter.notebook.app`)."""

from .notebook.app import SmartSorterApp
from .notebook.form import SorterApp, in_colab

__all__ = ["SmartSorterApp", "SorterApp", "in_colab"]
