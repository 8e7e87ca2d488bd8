"""interface.ipynb: committed without outputs, and executed headless it shows the form."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "interface.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_the_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) == 1, "one code cell: it installs when needed and shows the form"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "SorterApp(" in code[0].source


@pytest.mark.slow
def test_the_notebook_executes_headless_and_shows_the_form():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})  # fmt: skip
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    shown = [output for output in outputs if output.output_type == "execute_result"]
    assert len(shown) == 1 and WIDGET_VIEW in shown[0].data
    assert "SorterApp" in shown[0].data["text/plain"] or "VBox" in shown[0].data["text/plain"]
