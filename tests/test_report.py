"""The HTML report: one self-contained file, hostile names escaped, rendered in a real browser."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.errors import DestinationError
from smart_sorter.validation import html_report
from smart_sorter.validation.html_report import write_report
from tests.test_browser import browser, screenshot_path  # noqa: F401 - the browser fixture


def hand_labels(out, truth, tmp_path, count=12):
    table = pd.read_csv(out / "output.csv", keep_default_na=False).head(count)
    path = tmp_path / "truth.csv"
    pd.DataFrame({"file": table["file"], "label": [truth[name] for name in table["file"]]}).to_csv(path, index=False)
    return path


@pytest.mark.slow
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
    assert '<td>status</td><td class="name">finished</td>' in text and "&#34;versions&#34;" in text  # the manifest


@pytest.mark.slow
def test_the_model_is_named_near_the_top(sorted_shapes, toy_clip):
    out, _ = sorted_shapes
    text = write_report(out).read_text(encoding="utf-8")
    model = text[text.index('id="model"') : text.index("<h2")]  # before the first section
    assert str(toy_clip) in model and "device cpu" in model and "weights float32" in model


@pytest.mark.slow
def test_long_names_wrap_without_breaking_every_word(sorted_shapes):
    out, _ = sorted_shapes
    text = write_report(out).read_text(encoding="utf-8")
    assert "break-all" not in text and "overflow-wrap: anywhere" in text


@pytest.mark.slow
def test_a_report_never_replaces_a_file_unless_forced(sorted_shapes, tmp_path, capsys):
    out, truth = sorted_shapes
    report = tmp_path / "mine.html"
    report.write_text("my notes", encoding="utf-8")
    assert main(["report", str(out), "--output", str(report)]) == 1
    assert "--force" in capsys.readouterr().err and report.read_text(encoding="utf-8") == "my notes"
    truth_csv = hand_labels(out, truth, tmp_path)
    assert main(["evaluate", "--results", str(out), "--truth", str(truth_csv), "--report", str(report)]) == 1
    assert "--force" in capsys.readouterr().err and report.read_text(encoding="utf-8") == "my notes"
    with pytest.raises(DestinationError, match="already exists"):
        write_report(out, report)
    assert main(["report", str(out), "--output", str(report), "--force"]) == 0
    assert "<svg" in report.read_text(encoding="utf-8")
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
    assert main(["report", str(out)]) == 1  # the default name too
    assert not list(out.glob(".*partial")) and not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_a_file_that_appears_while_the_report_is_made_is_not_replaced(sorted_shapes, tmp_path, monkeypatch):
    out, _ = sorted_shapes
    report = tmp_path / "reports" / "report.html"
    report.parent.mkdir()
    render = html_report.render_report

    def render_while_someone_writes(*args, **kwargs):
        text = render(*args, **kwargs)
        report.write_text("written meanwhile", encoding="utf-8")  # another program, between check and write
        return text

    monkeypatch.setattr(html_report, "render_report", render_while_someone_writes)
    with pytest.raises(DestinationError, match="already exists"):
        write_report(out, report)
    assert report.read_text(encoding="utf-8") == "written meanwhile"
    assert [p.name for p in report.parent.iterdir()] == ["report.html"]  # no temporary file left


@pytest.mark.slow
def test_a_report_is_never_written_into_the_source_folder(sorted_shapes, tmp_path, capsys):
    out, _ = sorted_shapes
    source = tmp_path / "shapes"
    before = sorted(p.name for p in source.iterdir())
    assert main(["report", str(out), "--output", str(source / "report.html")]) == 1
    assert "source folder" in capsys.readouterr().err
    with pytest.raises(DestinationError, match="source folder"):
        write_report(out, source / "sub" / "report.html", force=True)
    assert sorted(p.name for p in source.iterdir()) == before


@pytest.mark.slow
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


@pytest.mark.slow
def test_long_file_names_and_labels_wrap_inside_their_tiles_in_chromium(browser, toy_clip, tmp_path):  # noqa: F811
    from smart_sorter import sort_images
    from tests.toy_clip import write_shapes

    write_shapes(tmp_path / "shapes", 4, seed=3)
    long_name = "screenshot_" + "x" * 90 + ".jpg"
    (tmp_path / "shapes" / "shape_000.jpg").rename(tmp_path / "shapes" / long_name)
    labels = {"a photo with a rather long description of red circles": ["This is a photo of red circle."],
              "other": ["This is a photo of blue square."]}  # fmt: skip
    sort_images(tmp_path / "shapes", tmp_path / "sorted", labels, model=str(toy_clip), progress_bar=False)
    report = write_report(tmp_path / "sorted")
    context = browser.new_context(offline=True, viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(report.as_uri())
    captions = page.locator("figcaption")
    for index in range(captions.count()):  # nothing sticks out of its tile
        assert captions.nth(index).evaluate("c => c.scrollWidth <= c.clientWidth + 1")
    style = captions.first.evaluate("c => [getComputedStyle(c).wordBreak, getComputedStyle(c).overflowWrap]")
    assert style == ["normal", "anywhere"]  # only a token too long for the tile is broken
    caption = page.locator("figcaption", has_text="least confident").first
    words = caption.evaluate(
        """c => { const range = document.createRange(); const text = [...c.childNodes].find(n => n.textContent
             .includes('least')).firstChild || c.firstChild; range.selectNodeContents(text);
             return range.getClientRects().length; }"""
    )
    assert words == 1  # "least confident" is short enough to stay on one line, unbroken
    model = page.locator("#model")
    assert model.is_visible() and str(toy_clip) in model.inner_text()
    context.close()


def test_the_model_line_shows_device_dtype_and_precision_when_recorded():
    facts = html_report.model_facts(
        {"model": {"id": "openai/clip-vit-base-patch32", "device": "cuda:0", "dtype": "float16"}, "precision": "fp16"}
    )
    assert facts == {"model": "openai/clip-vit-base-patch32", "device": "cuda:0", "dtype": "float16",
                     "precision": "fp16"}  # fmt: skip
    assert html_report.model_facts({"options": {"model": "local/model"}}) == {"model": "local/model"}


@pytest.mark.slow
def test_evaluate_with_a_report_reads_the_table_under_the_runs_lock(sorted_shapes, tmp_path, monkeypatch):
    """The table evaluated is the one the report shows: no undo or resort can change it in between."""
    from smart_sorter.errors import BusyError
    from smart_sorter.storage import tables
    from smart_sorter.storage.lock import DestinationLock

    out, truth = sorted_shapes
    truth_csv = hand_labels(out, truth, tmp_path)
    held_while_read = []
    read_results = tables.read_results

    def reading(path):
        try:  # another process would find the destination busy now
            DestinationLock(out, "undo").check_free()
            held_while_read.append(False)
        except BusyError:
            held_while_read.append(True)
        return read_results(path)

    monkeypatch.setattr(tables, "read_results", reading)
    report = tmp_path / "report.html"
    assert main(["evaluate", "--results", str(out), "--truth", str(truth_csv), "--report", str(report)]) == 0
    assert held_while_read and all(held_while_read) and report.is_file()
    held_while_read.clear()
    assert main(["evaluate", "--results", str(out), "--truth", str(truth_csv)]) == 0  # no report: no lock needed
    assert held_while_read == [False]
