"""The coding form, driven without a kernel (values set, handlers called), with a tiny local model."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.factories import noise_image
from tests.vlm_factories import save_llava

pytest.importorskip("ipywidgets")
pytest.importorskip("xgrammar")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        noise_image(index).save(folder / f"p{index}.jpg")
    return folder


@pytest.mark.slow
def test_the_form_codes_a_folder_with_one_question(photos, tmp_path):
    from smart_sorter.notebook.coding_form import CodingApp

    model = save_llava(tmp_path / "says-yes", says='{"answer": "yes"}')
    app = CodingApp()
    app.source.value, app.destination.value = str(photos), str(tmp_path / "coded")
    app.question.value, app.model.value = "Is there a weapon?", str(model)
    app._on_start(None)
    assert app.wait(120)
    assert "Coded 3 of 3 files" in app.status.value, app.status.value
    assert app.answers.value.count("<td>yes</td>") == 3
    table = pd.read_csv(tmp_path / "coded" / "coding.csv", keep_default_na=False)
    assert set(table["answer"]) == {"yes"}
    app._on_start(None)  # again: nothing is asked twice
    assert app.wait(120) and "Already done" in app.status.value


def test_the_form_says_what_is_wrong_in_a_sentence(photos, tmp_path):
    from smart_sorter.notebook.coding_form import CodingApp

    app = CodingApp()
    app._on_start(None)
    assert "Give the folder of images" in app.status.value
    app.source.value = str(photos)
    app.codebook.value = "weapon:\n  description: A weapon?\n  type: yesno?\n"
    app._on_start(None)
    assert app.wait(30)
    assert "the types are options, yes/no" in app.status.value and not (tmp_path / "coded").exists()
    app.codebook.value = "weapon: [unclosed"
    app._on_start(None)
    assert "not valid YAML" in app.status.value
    app.backend.value = "openai"
    assert "sent to the server" in app.where.value
    app.codebook.value = "weapon:\n  description: A weapon?\n  type: yes/no\n"
    assert app.settings()["options"].retry_errors is False
    app.retry_errors.value = True
    assert app.settings()["options"].retry_errors is True


def test_the_mode_toggle_shows_one_form_at_a_time_and_each_keeps_its_values():
    from smart_sorter.notebook.app import SmartSorterApp
    from smart_sorter.notebook.coding_form import CodingApp
    from smart_sorter.ui import SmartSorterApp as FromUi
    from smart_sorter.ui import SorterApp

    assert FromUi is SmartSorterApp
    app = SmartSorterApp(source="imgs", destination="sorted-imgs", labels="a cat, a dog")
    assert isinstance(app.shown, SorterApp) and app.shown is app.sorter and app.sorter.source.value == "imgs"
    assert app._coder is None  # the coding form is made when its mode is first chosen
    app.mode.value = "code"
    assert isinstance(app.shown, CodingApp) and app.sorter not in app.children and "codebook" in app.hint.value
    app.coder.source.value = "photos"
    app.sorter.labels.value = "a tank, a truck"
    app.mode.value = "sort"
    assert app.shown is app.sorter and app.coder not in app.children
    app.mode.value = "code"
    assert app.coder.source.value == "photos" and app.sorter.labels.value == "a tank, a truck"
