"""End to end in a real browser: Voila serves interface.ipynb on localhost, headless Chromium (Debian's,
driven by Playwright) fills the form, presses Start, and the sample images land in their folders.

Skipped where Chromium, Voila or Playwright is missing, unless SMART_SORTER_REQUIRE_BROWSER=1 (set by
.ci/run), which turns the skip into a failure. The screenshot goes to SMART_SORTER_SCREENSHOTS (a
folder) when set, else to the test's temporary folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip

pytestmark = pytest.mark.slow


def _missing(reason: str) -> None:
    if os.environ.get("SMART_SORTER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"the browser test is required here but {reason}")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (os.environ.get("SMART_SORTER_CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    _missing("Chromium is not installed (apt-get install chromium)")
    raise AssertionError  # not reached


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("SMART_SORTER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install playwright)")
    executable = _chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory):
    if shutil.which("voila") is None and not (Path(sys.executable).parent / "voila").exists():
        _missing("Voila is not installed (pip install voila)")
    port = _free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "voila", "interface.ipynb", f"--port={port}", "--no-browser",
             "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Voila did not start:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def open_form(browser, voila_url: str, *, width: int = 1000, height: int = 1800):
    """A new page with the notebook's form served by Voila, once the sorting form is on it."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(voila_url, timeout=120_000)
    page.get_by_label("Source folder").wait_for(timeout=120_000)
    return page


def fill_sorting_form(page, source: Path, destination: Path, model: Path, labels: str) -> None:
    page.get_by_label("Source folder").fill(str(source))
    page.get_by_label("Destination").fill(str(destination))
    page.get_by_label("Model").fill(str(model))
    page.get_by_role("textbox", name="Labels").fill(labels)


def test_sorts_the_sample_images_through_the_page(browser, voila_url, toy_clip, tmp_path):
    destination = tmp_path / "sorted"
    page = open_form(browser, voila_url)
    assert page.get_by_label("Source folder").input_value() == "imgs"  # the notebook's defaults
    page.get_by_label("Destination").fill(str(destination))
    page.get_by_label("Model").fill(str(toy_clip))
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Finished in").wait_for(timeout=240_000)

    sample = {p.name: sha256(p) for p in (ROOT / "imgs").iterdir() if p.suffix != ".md"}
    placed = {p.name: sha256(p) for p in destination.glob("[!.]*/*")}
    assert placed == sample
    assert (destination / "output.csv").is_file()
    status = page.locator(".smart-sorter-status").inner_text()
    assert "8 of 8 files sorted" in status and "output.csv" in status
    assert page.locator(".smart-sorter-counts td").count() >= 8  # label and count cells
    thumbnails = page.locator("img[src^='data:image/jpeg']")
    assert thumbnails.count() >= 4
    # decoded by the browser (a data URI decodes soon after it is in the page, not always at once)
    page.wait_for_function("() => document.querySelector(\"img[src^='data:image/jpeg']\").naturalWidth > 0")
    page.locator(".smart-sorter-app").screenshot(path=screenshot_path(tmp_path, "notebook-form.png"))

    page.get_by_role("button", name="Undo").click()  # asks first
    page.get_by_role("button", name="Confirm undo").click()
    page.get_by_text("removed 8 copy").wait_for(timeout=60_000)
    assert not list(destination.glob("[!.]*/*"))  # the copies are gone, the sample is as it was
    assert {p.name: sha256(p) for p in (ROOT / "imgs").iterdir() if p.suffix != ".md"} == sample
    page.close()
