"""`SmartSorterApp`: the notebook's one form, with a mode: sorting into folders (`SorterApp`) or asking the
images a codebook's questions (`CodingApp`).

The mode is a toggle at the top; the form of the chosen mode is shown below it, and only that one is on the
page (the coding form is built the first time its mode is chosen), so each form keeps its own fields, labels
and buttons as when it is shown alone. A toggle and swapped children work alike in ipywidgets 7.7 (Colab's)
and 8. Each form keeps what was typed into it while the other is shown.
"""

from __future__ import annotations

from typing import Any

try:
    import ipywidgets as widgets
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("The notebook form needs ipywidgets: pip install 'smart-sorter[notebook]'.") from error

from .form import SorterApp

SORT, CODE = "sort", "code"
MODES = (("Sort into folders", SORT), ("Ask questions (coding)", CODE))
HINTS = {
    SORT: "Each image goes into the folder of the label that fits it best.",
    CODE: "Each image (and video) is answered against a codebook by a vision-language model, into coding.csv.",
}


class SmartSorterApp(widgets.VBox):
    """The form with its mode: `mode` (`.value` "sort" or "code"), `sorter` (a SorterApp, made at once with
    the keyword arguments given, as `SorterApp(...)` takes them) and `coder` (a CodingApp, made when first shown;
    `coding_options` gives its starting settings)."""

    def __init__(self, *, mode: str = SORT, coding_options: Any = None, **sorter_settings: Any) -> None:
        self.mode = widgets.ToggleButtons(options=list(MODES), value=mode, description="Mode",
                                          style={"button_width": "12em"})  # fmt: skip
        self.hint = widgets.HTML(HINTS[mode])
        self.sorter = SorterApp(**sorter_settings)
        self._coding_options = coding_options
        self._coder: Any = None
        self.mode.observe(self._on_mode, names="value")
        super().__init__([self.mode, self.hint, self._form(mode)])
        self.add_class("smart-sorter-modes")

    @property
    def coder(self) -> Any:
        """The coding form (made on first use)."""
        if self._coder is None:
            from .coding_form import CodingApp

            self._coder = CodingApp(self._coding_options)
        return self._coder

    @property
    def shown(self) -> Any:
        """The form of the mode chosen."""
        return self.children[-1]

    def _form(self, mode: str) -> Any:
        return self.coder if mode == CODE else self.sorter

    def _on_mode(self, change: dict[str, Any]) -> None:
        self.hint.value = HINTS[change["new"]]
        self.children = (self.mode, self.hint, self._form(change["new"]))
