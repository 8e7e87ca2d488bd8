"""interface.ipynb: committed without outputs, one published address, and executed headless it installs from
the right place (recorded, not run) and shows the form."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "interface.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
DRIVE_COPY = "/content/drive/MyDrive/smart-sorter"


def code_cell() -> str:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


def repository() -> str:
    found = re.findall(r'^REPOSITORY = "(https://github\.com/[\w.-]+/[\w.-]+)"', code_cell(), flags=re.M)
    assert len(found) == 1, "one REPOSITORY line at the top of the cell"
    return found[0]


def execute(cells: list[str], folder: Path) -> list:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})  # fmt: skip
    client.execute()
    return notebook.cells


def test_the_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) == 1, "one code cell: it installs when needed and shows the form"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "SorterApp(" in code[0].source


def test_the_published_address_is_in_one_place_and_the_readme_opens_it_in_colab():
    address = repository()
    cell = code_cell()
    assert cell.splitlines()[1].startswith("REPOSITORY = ")  # at the top, under the cell's title comment
    assert cell.count("github.com") == 1 and cell.count("{REPOSITORY}") == 1
    owner_and_name = address.removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{owner_and_name}/blob/main/interface.ipynb"
    readme = (ROOT / "README.md").read_text()
    assert colab in readme and "colab-badge.svg" in readme
    mentioned = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?=[/\s)\"'`]|$)", readme))
    assert mentioned <= {owner_and_name}, "the README names the same repository everywhere"
    assert all(address not in json.dumps(cell.source) for cell in nbformat.read(NOTEBOOK, 4).cells[2:])


RECORD = """
import importlib.util
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *rest: None if name == "smart_sorter" else real_find_spec(name, *rest)
shell, commands = get_ipython(), []
shell.system = lambda command: commands.append(("!", shell.var_expand(command, 1)))  # {names} as IPython expands them
shell.run_line_magic = lambda magic, line, *rest: commands.append((magic, shell.var_expand(line, 1)))
"""


@pytest.mark.slow
def test_without_the_package_the_cell_installs_from_drive_or_the_address_and_keeps_ipywidgets(tmp_path):
    import ipywidgets

    drive_copy = tmp_path / "MyDrive" / "smart-sorter"
    drive_copy.mkdir(parents=True)
    (drive_copy / "pyproject.toml").write_text('[project]\nname = "smart-sorter"\n')
    cell = code_cell().replace(DRIVE_COPY, str(drive_copy))
    assert cell != code_cell()
    work = tmp_path / "content"
    work.mkdir()
    (work / "pyproject.toml").write_text('[project]\nname = "someone-elses-project"\n')  # not ours: not installed
    cells = execute([RECORD, cell, "print(repr(commands)); commands.clear()",
                     f"import os; os.remove({str(drive_copy / 'pyproject.toml')!r})", cell,
                     "print(repr(commands))"], work)  # fmt: skip
    for cell_run in cells[1], cells[4]:
        assert [output for output in cell_run.outputs if output.output_type == "error"] == []
        assert any(WIDGET_VIEW in output.get("data", {}) for output in cell_run.outputs), "the form is shown"
    from_drive = eval(cells[2].outputs[0].text)  # the commands the cell gave, from a Drive copy
    assert [magic for magic, _ in from_drive] == ["pip", "cd"]
    pip_line = from_drive[0][1]
    assert pip_line.startswith(f'install --quiet "{drive_copy}[notebook,video,coding]" --constraint ')
    constraints = Path(pip_line.split("--constraint ")[1].strip('"'))
    assert constraints.read_text() == f"ipywidgets=={ipywidgets.__version__}\n"  # Colab's 7.7 stays as it is
    assert from_drive[1] == ("cd", f"-q {drive_copy}")

    from_address = eval(cells[5].outputs[0].text)  # no copy anywhere: cloned from the published address
    assert from_address[0] == ("!", f"git clone --depth 1 {repository()} smart-sorter")
    assert from_address[1][0] == "pip" and f'"{work / "smart-sorter"}[notebook,video,coding]"' in from_address[1][1]
    assert from_address[2] == ("cd", f"-q {work / 'smart-sorter'}")


@pytest.mark.slow
def test_the_notebook_executes_headless_and_shows_the_form():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})  # fmt: skip
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    # ipywidgets 8 returns the form as the cell's result; 7 displays it (display_data)
    shown = [output for output in outputs if output.output_type in ("execute_result", "display_data")]
    assert len(shown) == 1 and WIDGET_VIEW in shown[0].data
    assert "SorterApp" in shown[0].data["text/plain"] or "VBox" in shown[0].data["text/plain"]
