"""Videos shown: a strip of scored frames with their times, the best marked, in the report and the form;
sample, evaluate and review take a video as one item."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

pytest.importorskip("av")
pytest.importorskip("ipywidgets")

from smart_sorter import sort_images  # noqa: E402
from smart_sorter.cli import main  # noqa: E402
from smart_sorter.notebook.form import _previews  # noqa: E402
from smart_sorter.notebook.review import ReviewApp  # noqa: E402
from smart_sorter.pipeline.thumbnails import strip_moments, thumbnail_jpeg  # noqa: E402
from smart_sorter.validation.html_report import render_report  # noqa: E402
from tests.factories import noise_image  # noqa: E402
from tests.videos import write_video  # noqa: E402

LABELS = ("red circle", "blue square", "green triangle", "yellow cross")


@pytest.fixture
def sorted_videos(tmp_path, tiny_clip):
    source = tmp_path / "src"
    write_video(source / "one.mp4", [(LABELS[0], 1.0), (LABELS[1], 1.0)])
    write_video(source / "two.webm", [(LABELS[2], 2.0)], codec="libvpx")
    for index in range(3):
        noise_image(index).save(source / f"photo_{index}.jpg")
    out = tmp_path / "out"
    result = sort_images(source, out, list(LABELS), model=str(tiny_clip), video_frames=10, progress_bar=False)
    return out, result


def test_a_strip_keeps_its_best_frame_and_at_most_six():
    times = [index * 0.5 for index in range(20)]
    chosen = strip_moments(times, 3.5)
    assert len(chosen) <= 6 and 3.5 in chosen and chosen == sorted(chosen)
    assert strip_moments([1.0, 2.0], 2.0) == [1.0, 2.0]


def test_the_report_and_the_form_show_each_video_as_a_strip_with_its_best_frame_marked(sorted_videos):
    out, result = sorted_videos
    page = render_report(out)
    assert page.count('<span class="best">') == 2 and page.count("video, best at") == 2
    assert page.count('<div class="strip">') == 2
    html = _previews(result.table, out, result.label_counts, per_label=10, csv_path=result.csv_path)
    assert html.count("&#9733;") == 2  # the best frame of each video
    assert html.count("<img") >= 3 + 2 * 6  # the photos, and six frames of each video


def test_a_video_preview_is_read_without_reading_the_whole_file(sorted_videos, monkeypatch):
    out, result = sorted_videos
    row = result.table.set_index("file").loc["one.mp4"]
    monkeypatch.setattr("pathlib.Path.read_bytes", lambda self: pytest.fail("read whole"))
    assert thumbnail_jpeg(out / row["destination"], 64, moment=float(row["time"]))[:2] == b"\xff\xd8"


def test_sample_evaluate_and_review_take_a_video_as_one_item(sorted_videos, tmp_path, capsys):
    out, result = sorted_videos
    sheet = tmp_path / "sample.csv"
    assert main(["sample", str(out), "--size", "5", "--csv", str(sheet)]) == 0
    filled = pd.read_csv(sheet, keep_default_na=False, dtype=str)
    assert {"one.mp4", "two.webm"} <= set(filled["file"])
    copies = tmp_path / "sample_files"
    assert sorted(path.suffix for path in copies.iterdir()) == [".jpg", ".jpg", ".jpg", ".mp4", ".webm"]
    filled["label"] = result.table.set_index("file").loc[filled["file"], "label"].tolist()
    filled.to_csv(sheet, index=False)
    assert main(["evaluate", "--results", str(out), "--truth", str(sheet)]) == 0
    assert "Compared 5 hand-labelled file(s)" in capsys.readouterr().out
    app = ReviewApp(out)
    videos = [index for index in range(len(app.queue)) if app.queue.iloc[index]["kind"] == "video"]
    assert len(videos) == 2
    while app.current is not None and app.current["kind"] != "video":
        app.next()
    assert app.current is not None and app.image.value[:2] == b"\xff\xd8"  # the video's best frame


def test_a_copied_video_missing_from_the_destination_shows_as_cannot_be_shown(sorted_videos):
    out, result = sorted_videos
    row = result.table.set_index("file").loc["two.webm"]
    shutil.move(out / row["destination"], out.parent / "elsewhere.webm")
    assert "(cannot be shown)" in render_report(out)


def test_the_form_offers_the_video_sampling(tmp_path):
    from smart_sorter.notebook.form import SorterApp

    app = SorterApp()
    app.source.value, app.destination.value = str(tmp_path / "src"), str(tmp_path / "out")
    app.model.value, app.labels.value = "some/model", "a, b"
    app.video_frames.value, app.video_keyframes.value = 12, True
    options = app.settings().options
    assert (options.video_frames, options.video_keyframes) == (12, True)
