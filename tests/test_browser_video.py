"""In a real browser (Voila + headless Chromium, as tests/test_browser.py): the form sorts a folder holding a
generated video, an animated GIF and images with the trained toy CLIP; the video and the animation land in
their folders, and each shows as a strip of frames with their times, its best frame starred."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("av")

from tests.test_browser import (  # noqa: E402, F401 - fixtures
    browser,
    fill_sorting_form,
    open_form,
    screenshot_path,
    sha256,
    voila_url,
)
from tests.toy_clip import TOY_LABELS, write_shapes  # noqa: E402
from tests.videos import write_animation, write_video  # noqa: E402

pytestmark = pytest.mark.slow
RED, BLUE, GREEN, YELLOW = TOY_LABELS


def test_the_form_sorts_a_video_and_an_animation_and_shows_their_frames_with_times(
    browser,  # noqa: F811
    voila_url,  # noqa: F811
    toy_clip,
    tmp_path,
):
    source, destination = tmp_path / "src", tmp_path / "sorted"
    write_video(source / "blue-square.mp4", [(BLUE, 3.0), (RED, 0.5)], seed=3)
    write_animation(source / "green-triangle.gif", [(YELLOW, 0.3), (GREEN, 2.0)], seed=4)
    write_shapes(source, 4, seed=5)
    before = {path.name: sha256(path) for path in source.iterdir()}

    page = open_form(browser, voila_url, width=1100, height=2200)
    fill_sorting_form(page, source, destination, toy_clip, ", ".join(TOY_LABELS))
    page.locator(".smart-sorter-app").get_by_text("Advanced settings", exact=True).click()  # the folded section
    page.get_by_label("Video frames", exact=True).fill("6")
    page.get_by_label("Video frames", exact=True).press("Enter")
    page.get_by_label("Animated images", exact=True).select_option(label="all frames, as a video")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Finished in").wait_for(timeout=240_000)

    placed = {path.name: (path.parent.name, sha256(path)) for path in destination.glob("[!.]*/*")}
    assert placed["blue-square.mp4"] == (BLUE, before["blue-square.mp4"])
    assert placed["green-triangle.gif"] == (GREEN, before["green-triangle.gif"])
    status = page.locator(".smart-sorter-status").inner_text()
    assert "6 of 6 files sorted" in status
    # each of the two strips: frames with their times in seconds, one of them starred as the best match
    frames = page.locator("img[title*=' at '][title$=' s']")
    page.wait_for_function("() => document.querySelectorAll(\"img[title*=' at ']\").length >= 8")
    titles = [frames.nth(index).get_attribute("title") for index in range(frames.count())]
    assert any(title.startswith("blue-square.mp4") for title in titles)
    assert any(title.startswith("green-triangle.gif") for title in titles)
    text = page.locator(".smart-sorter-app").inner_text()
    assert len(re.findall(r"\d+\.\d s ★", text)) == 2  # the best frame of the video and of the animation
    assert len(re.findall(r"\d+\.\d s", text)) >= 8
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"img[title*=' at ']\")].every(i => i.naturalWidth > 0)"
    )
    page.locator(".smart-sorter-app").screenshot(path=screenshot_path(tmp_path, "notebook-form-video.png"))
    page.close()
