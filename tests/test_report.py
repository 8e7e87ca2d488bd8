"""The HTML report: one self-contained file, hostile names escaped, rendered in a real browser."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.validation.html_report import write_report
from tests.test_browser import browser, screenshot_path  # noqa: F401 - the browser fixture


def hand_labels(out, truth, tmp_path, count=12):
    table = pd.read_csv(out / "output.csv", keep_default_na=False).head(count)
    path = tmp_path / "truth.csv"
    pd.DataFrame({"file": table["file"], "label": [truth[name] for name in table["file"]]}).to_csv(path, index=False)
    return path


def test_the_report_is_one_self_contained_file(sorted_shapes, tmp_path):
    out, truth = sorted_shapes
    report = tmp_path / "report.html"
    assert main(["evaluate", "--results", str(out / "output.csv"), "--truth", str(hand_labels(out, truth, tmp_path)),
                 "--report", str(report)]) == 0  # fmt: skip
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from anywhere
    assert not re.search(r"""<link\b|<script\s+src""", text)
    assert text.count('src="data:image/jpeg;base64,') == 24  # every file (fewer than 24 per label)
    assert "Confusion matrix" in text and "<svg" in text and "Krippendorff" in text
    assert "least confident" in text
    assert "<td>status</td><td>finished</td>" in text and "&#34;versions&#34;" in text  # the run manifest


def test_hostile_labels_and_file_names_are_shown_not_run(toy_clip, tmp_path):
    from smart_sorter import sort_images
    from tests.toy_clip import write_shapes

    write_shapes(tmp_path / "shapes", 4, seed=3)
    (tmp_path / "shapes" / "shape_000.jpg").rename(tmp_path / "shapes" / "<img src=x onerror=alert(1)>.jpg")
    labels = {
        "<script>alert(1)</script>": ["This is a photo of red circle."],
        "a & b": ["This is a photo of blue square."],
    }
    sort_images(tmp_path / "shapes", tmp_path / "sorted", labels, model=str(toy_clip), progress_bar=False)
    text = write_report(tmp_path / "sorted").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text


@pytest.mark.slow
def test_the_report_renders_offline_in_chromium(browser, sorted_shapes, tmp_path):  # noqa: F811
    out, truth = sorted_shapes
    report = tmp_path / "report.html"
    assert main(["report", str(out), "--truth", str(hand_labels(out, truth, tmp_path)), "--output", str(report),
                 "--blur"]) == 0  # fmt: skip
    context = browser.new_context(offline=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(report.as_uri())
    images = page.locator("figure img")
    assert images.count() == 24
    assert all(images.nth(i).evaluate("image => image.complete && image.naturalWidth > 0") for i in range(24))
    first = images.first
    assert "blur" in first.evaluate("image => getComputedStyle(image).filter")  # graphic material hidden
    first.click()
    assert first.evaluate("image => getComputedStyle(image).filter") == "none"  # shown when clicked
    page.locator("#blur").uncheck()
    assert images.nth(1).evaluate("image => getComputedStyle(image).filter") == "none"
    labels_seen = page.locator("#confusion text").count()
    assert page.locator("#confusion rect").count() > 0 and labels_seen > 2
    page.screenshot(path=screenshot_path(tmp_path, "report.png"), full_page=True)
    context.close()
