"""The form in detection mode, in a real browser (Voila + Playwright + Chromium, as tests/test_browser.py):
objects found by a tiny random OWLv2, the boxes drawn on the thumbnails the page shows, and the summary
counting every file."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.factories import noise_image
from tests.test_browser import browser, fill_sorting_form, open_form, screenshot_path, voila_url  # noqa: F401

pytestmark = pytest.mark.slow


def test_the_form_finds_objects_and_draws_their_boxes(browser, voila_url, tiny_owlv2, tmp_path):  # noqa: F811
    from smart_sorter.pipeline.thumbnails import thumbnail_uri

    source = tmp_path / "images"
    source.mkdir()
    for index, size in enumerate(
        [(64, 48), (40, 90), (150, 60), (128, 128), (33, 21), (90, 90), (200, 150), (300, 300)]
    ):
        noise_image(index).resize(size).save(source / f"image_{index}.png")
    destination = tmp_path / "found"
    page = open_form(browser, voila_url, height=2200)
    fill_sorting_form(page, source, destination, tiny_owlv2, "a cat, a dog, a red car")
    page.get_by_text("Advanced settings", exact=True).first.click()
    page.get_by_label(re.compile("Find objects")).check()
    page.get_by_label("Uncertain below").fill("0.95")
    page.get_by_label("Uncertain below").press("Enter")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Finished in").wait_for(timeout=300_000)

    table = pd.read_csv(destination / "output.csv", keep_default_na=False)
    assert "boxes" in table.columns and len(table) == 8
    found = int((table["status"] == "sorted").sum())
    assert 0 < found < 8, "the threshold should leave some files with objects and some without"
    status = page.locator(".smart-sorter-status").inner_text()
    assert f"8 files sorted, {found} with objects (" in status, status  # every file counted
    assert f"{8 - found} with nothing found" in status, status
    assert "nothing found" in page.locator(".smart-sorter-counts").inner_text()

    shown = page.locator("img[src^='data:image/jpeg']")
    sources = {shown.nth(index).get_attribute("src") for index in range(shown.count())}
    drawn = 0
    for _, row in table[table["status"] == "sorted"].iterrows():  # the thumbnails in the page have their boxes
        boxed = thumbnail_uri(destination / row["destination"], 120, json.loads(row["boxes"]))
        assert boxed in sources, row["file"]
        plain = thumbnail_uri(destination / row["destination"], 120)
        if plain != boxed:  # a random detector's boxes may all lie on the image's edge, where nothing shows
            assert plain not in sources, row["file"]
            drawn += 1
    assert drawn, "no box was drawn inside an image"
    page.wait_for_function("() => [...document.querySelectorAll(\"img[src^='data:image/jpeg']\")]"
                           ".every(image => image.naturalWidth > 0)")  # fmt: skip
    page.locator(".smart-sorter-app").screenshot(path=screenshot_path(tmp_path, "notebook-form-detection.png"))
    page.close()
