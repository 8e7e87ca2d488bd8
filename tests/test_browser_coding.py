"""The notebook's coding mode in a real browser: Voila serves interface.ipynb, headless Chromium (Playwright)
switches the form to *Ask questions (coding)*, fills it, and the sample images are coded through a real
`transformers serve` on 127.0.0.1 (the HTTP backend) with a tiny LLaVA that always answers yes.

Skipped as the other browser tests are (see tests/test_browser.py), and without transformers' server extra.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.test_browser import ROOT, browser, open_form, screenshot_path, sha256, voila_url  # noqa: F401 - fixtures
from tests.vlm_server import SAYS, requests_served

pytestmark = pytest.mark.slow


def test_codes_the_sample_images_through_the_page(browser, voila_url, server, llava_says_yes, tmp_path):  # noqa: F811
    pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")
    url, log = server
    sample = {p.name: sha256(p) for p in (ROOT / "imgs").iterdir() if p.suffix != ".md"}
    destination = tmp_path / "coded"
    page = open_form(browser, voila_url)  # the sorting form comes first
    page.get_by_role("button", name="Ask questions (coding)").click()
    page.get_by_label("Images").wait_for(timeout=30_000)
    assert page.get_by_label("Source folder").count() == 0  # one form on the page at a time
    page.get_by_label("Images").fill(str(ROOT / "imgs"))
    page.get_by_label("coding.csv into").fill(str(destination))
    page.get_by_label("or one question").fill("Is there a person in the image?")
    page.get_by_role("button", name="openai").click()
    page.get_by_text("Every image is sent to the server").wait_for(timeout=30_000)
    page.get_by_label("Model").fill(str(llava_says_yes))
    page.get_by_label("Server").fill(url)
    before = requests_served(log)
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Coded 8 of 8 files").wait_for(timeout=240_000)

    table = pd.read_csv(destination / "coding.csv", keep_default_na=False)
    assert sorted(table["file"]) == sorted(sample) and set(table["answer"]) == {"yes"}
    assert set(table["raw_answer"]) == {SAYS} and (table["tokens_in"] > 16).all()
    assert requests_served(log) - before == 8
    assert page.locator("td", has_text="yes").count() == 8  # the answers shown under the form
    assert {p.name: sha256(p) for p in (ROOT / "imgs").iterdir() if p.suffix != ".md"} == sample
    page.screenshot(path=screenshot_path(tmp_path, "notebook-coding-form.png"), full_page=True)

    page.get_by_role("button", name="Sort into folders").click()  # back to sorting: its form and values
    page.get_by_label("Source folder").wait_for(timeout=30_000)
    assert page.get_by_label("Source folder").input_value() == "imgs"
    page.close()
