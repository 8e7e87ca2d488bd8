"""Animated GIF, WebP and PNG: their first frame as an image (the default), or with `animated="frames"` their
frames sampled and scored as a video's, at the times their durations give; hostile ones bounded."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from PIL import Image

from smart_sorter import sort_images
from smart_sorter.cli import main
from smart_sorter.errors import DecodeError, OptionError
from smart_sorter.options import SortOptions
from smart_sorter.pipeline import animation, media
from smart_sorter.pipeline.animation import animation_frames_at, chosen_frames, sample_animation
from smart_sorter.pipeline.video import MAX_DECODED_FRAMES, Sampling
from tests.toy_clip import TOY_LABELS, write_shapes
from tests.videos import hostile_gif, shown_at, truth_of, write_animation

RED, BLUE, GREEN, YELLOW = TOY_LABELS
ANIMATIONS = {  # name -> segments (label, seconds); the truth is the label shown longest
    "red-then-blue.gif": [(RED, 2.0), (BLUE, 1.0)],
    "green.webp": [(GREEN, 1.5)],
    "yellow-then-red.png": [(YELLOW, 0.5), (RED, 2.0)],
    "blue-square.gif": [(BLUE, 2.0)],
    "sticker-cross.webp": [(GREEN, 0.5), (YELLOW, 2.0)],
    "sub/circle-square.png": [(RED, 0.5), (BLUE, 2.5)],
}


def frame_colours(frames: int) -> Image.Image:
    """Frames of one flat colour each, frame i's red channel = 10 * i."""
    return [Image.new("RGB", (32, 24), (10 * index, 0, 0)) for index in range(frames)]


def saved(frames: list[Image.Image], kind: str, durations) -> bytes:
    buffer = io.BytesIO()
    extra = {"lossless": True} if kind == "WEBP" else {}
    frames[0].save(buffer, format=kind, save_all=True, append_images=frames[1:], duration=durations, loop=0, **extra)
    return buffer.getvalue()


def red_of(image: Image.Image) -> int:
    return round(image.getpixel((0, 0))[0] / 10)


@pytest.mark.parametrize("kind", ["GIF", "WEBP", "PNG"])
def test_an_animation_is_sampled_at_the_times_its_frames_durations_give(kind):
    # ten frames: five of 100 ms, then five of 300 ms: 2 s in all
    data = saved(frame_colours(10), kind, [100] * 5 + [300] * 5)
    frames = sample_animation(data, Sampling(frames=4), red_of)
    assert frames is not None and frames.animated and frames.duration == pytest.approx(2.0)
    # the moments 0.25, 0.75, 1.25, 1.75 s show frames 2 (0.2 s), 5 (0.5 s), 7 (1.1 s) and 9 (1.7 s)
    assert frames.pixels == [2, 5, 7, 9]
    assert frames.times == pytest.approx((0.2, 0.5, 1.1, 1.7))
    every = sample_animation(data, Sampling(every=0.5), red_of)
    assert every.pixels == [0, 5, 6, 8] and every.times == pytest.approx((0.0, 0.5, 0.8, 1.4))
    everything = sample_animation(data, Sampling(keyframes=True), red_of)
    assert everything.pixels == list(range(10))  # an animation's every frame stands alone


def test_a_still_gif_webp_or_png_is_no_animation():
    for kind in ("GIF", "WEBP", "PNG"):
        assert sample_animation(saved(frame_colours(1), kind, 100), Sampling(), red_of) is None
    assert sample_animation(b"not an image at all", Sampling(), red_of) is None


def test_frames_shown_for_no_time_last_a_tenth_of_a_second_as_players_show_them():
    data = hostile_gif(5, delay_cs=0)
    frames = sample_animation(data, Sampling(keyframes=True), lambda image: image.size)
    assert frames.duration == pytest.approx(0.5) and frames.times == pytest.approx((0.0, 0.1, 0.2, 0.3, 0.4))


def test_a_gif_of_100000_frames_costs_a_bounded_number_of_frames(monkeypatch):
    composed = []
    real_seek = animation._seek
    monkeypatch.setattr(animation, "_seek", lambda image, index: composed.append(index) or real_seek(image, index))
    frames = sample_animation(hostile_gif(100_000), Sampling(frames=8), lambda image: image.size)
    assert len(frames.times) == 8
    assert frames.duration == pytest.approx(MAX_DECODED_FRAMES / 10)  # the part read: 3,000 frames of 0.1 s
    assert len(composed) <= MAX_DECODED_FRAMES + 8


def test_a_huge_logical_screen_is_refused_before_any_frame_is_composed():
    with pytest.raises(DecodeError, match="animation too large to play safely"):
        sample_animation(hostile_gif(3, screen=(3000, 3000)), Sampling(), lambda image: image.size)
    # beyond Pillow's own limit: left to the image decoder, which refuses it as an image too large
    assert sample_animation(hostile_gif(3, screen=(65535, 65535)), Sampling(), lambda image: image.size) is None


def test_a_truncated_animation_gives_the_frames_before_the_cut():
    data = saved(frame_colours(10), "GIF", 100)
    cut = sample_animation(data[: len(data) * 6 // 10], Sampling(keyframes=True), red_of)
    assert cut is not None and 2 <= len(cut.pixels) < 10 and cut.pixels == list(range(len(cut.pixels)))


def test_the_frames_chosen_are_those_on_show_at_each_moment():
    starts = [0.0, 0.1, 0.2, 1.0]  # the third frame is shown for 0.8 s
    assert chosen_frames(starts, 2.0, Sampling(frames=4)) == [2, 3]  # 0.25 s and 0.75 s: frame 2; 1.25, 1.75: 3
    assert chosen_frames(starts, 2.0, Sampling(every=0.1)) == [0, 1, 2, 3]


def test_previews_show_the_frame_on_show_at_a_moment():
    data = saved(frame_colours(10), "PNG", 100)
    frames = animation_frames_at(data, [0.0, 0.55, 5.0])
    assert [(time, red_of(image)) for time, image in frames] == [(0.0, 0), (0.5, 5), (0.9, 9)]


def test_the_setting_is_checked_and_offered_on_the_command_line_and_in_the_form(tmp_path):
    with pytest.raises(OptionError, match="animated must be one of first, frames"):
        SortOptions(animated="video")
    assert SortOptions().animated == "first"
    with pytest.raises(OptionError, match="Detection looks at still images"):
        SortOptions(animated="frames", detect=True)
    from smart_sorter.cli.sorting import build_parser, options_from

    given = ["--source", "a", "--destination", "b", "--labels", "x", "--animated", "frames"]
    arguments = build_parser().parse_args(given)
    assert options_from(arguments).animated == "frames"
    pytest.importorskip("ipywidgets")
    from smart_sorter.notebook.form import SorterApp

    app = SorterApp()
    app.source.value, app.destination.value = str(tmp_path / "src"), str(tmp_path / "out")
    app.model.value, app.labels.value = "some/model", "a, b"
    assert app.settings().options.animated == "first"
    app.animated.value = "frames"
    assert app.settings().options.animated == "frames"


@pytest.fixture
def animated_source(tmp_path) -> tuple:
    source = tmp_path / "src"
    for index, (name, segments) in enumerate(ANIMATIONS.items()):
        write_animation(source / name, segments, seed=index)
    truth = {name: truth_of(segments) for name, segments in ANIMATIONS.items()}
    truth.update(write_shapes(source, 8, seed=5))  # still PNGs and JPEGs
    return source, truth


def read_table(path):
    return pd.read_csv(path, keep_default_na=False, dtype=str).set_index("file")


@pytest.mark.slow
def test_animations_are_sorted_by_their_frames_through_the_command_line_and_by_their_first_frame_by_default(
    tmp_path, toy_clip, animated_source, monkeypatch
):
    source, truth = animated_source
    # fp32 pinned: auto may choose bf16 in one run and fp32 in the next, and the cache is kept per precision
    command = ["--source", str(source), "--labels", ",".join(TOY_LABELS), "--model", str(toy_clip), "--quiet",
               "--precision", "fp32"]  # fmt: skip
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    # first frames first: the cache then holds the animations' first frames under their hashes
    assert main([*command, "--destination", str(tmp_path / "first")]) == 0
    first = read_table(tmp_path / "first" / "output.csv")
    assert set(first["kind"]) == {"image"} and not (tmp_path / "first" / "frames.csv").exists()
    assert first.loc["red-then-blue.gif", "label"] == RED  # what its first frame shows

    assert main([*command, "--destination", str(tmp_path / "frames"), "--animated", "frames"]) == 0
    table = read_table(tmp_path / "frames" / "output.csv")
    assert set(table.index) == set(truth)
    assert set(table[table["kind"] == "video"].index) == set(ANIMATIONS)  # not their cached first frames
    right = sum(table.loc[name, "label"] == truth[name] for name in ANIMATIONS)
    assert right >= 0.9 * len(ANIMATIONS), table.loc[list(ANIMATIONS), ["label", "frames", "time"]]
    frames = pd.read_csv(tmp_path / "frames" / "frames.csv", keep_default_na=False, dtype=str)
    assert sorted(frames["file"].unique()) == sorted(ANIMATIONS)
    for name, segments in ANIMATIONS.items():
        row = table.loc[name]
        duration = sum(seconds for _, seconds in segments)
        assert float(row["duration"]) == pytest.approx(duration, abs=0.01)
        assert int(row["frames"]) == (frames["file"] == name).sum() == min(8, round(duration * 10))
        if row["label"] == truth[name]:  # the best frame lies within a step of where the label is shown
            step, moment = duration / 8, float(row["time"])
            assert any(start - step <= moment <= end + step for start, end in shown_at(segments, row["label"]))
        assert (tmp_path / "frames" / row["destination"]).is_file()
    manifest = pd.read_json(tmp_path / "frames" / "smart-sorter-run.json", typ="series")
    assert manifest["options"]["animated"] == "frames"

    # again with the cache: nothing is decoded, the frames are the same; and first frames stay first frames
    monkeypatch.setattr(media, "sample_animation", lambda *args, **kwargs: pytest.fail("decoded again"))
    assert main([*command, "--destination", str(tmp_path / "again"), "--animated", "frames"]) == 0
    again = read_table(tmp_path / "again" / "output.csv")
    columns = ["label", "kind", "frames", "time"]
    pd.testing.assert_frame_equal(table[columns], again[columns])
    assert main([*command, "--destination", str(tmp_path / "first-again")]) == 0
    assert set(read_table(tmp_path / "first-again" / "output.csv")["kind"]) == {"image"}


@pytest.mark.slow
def test_the_report_shows_an_animation_as_a_strip_of_its_frames(tmp_path, toy_clip):
    from smart_sorter.validation.html_report import render_report

    source = tmp_path / "src"
    write_animation(source / "both.gif", [(RED, 1.0), (BLUE, 1.0)])
    Image.new("RGB", (40, 40), "white").save(source / "still.gif")
    result = sort_images(source, tmp_path / "out", list(TOY_LABELS), model=str(toy_clip), animated="frames",
                         video_frames=4, progress_bar=False, use_cache=False)  # fmt: skip
    kinds = dict(zip(result.table["file"], result.table["kind"]))
    assert kinds == {"both.gif": "video", "still.gif": "image"}
    assert "Sorted by their frames: 1 animated image, 4 frames scored" in result.summary()
    page = render_report(tmp_path / "out")
    assert page.count('<div class="strip">') == 1 and page.count('<span class="best">') == 1
    assert "0.2s" in page and "1.2s" in page  # frames at 0.2, 0.7, 1.2 and 1.7 s


def test_the_summary_tells_videos_from_animated_images():
    from smart_sorter.runs.outcome import sampled_files

    assert sampled_files(["a.mp4", "b.MOV"]) == "2 videos"
    assert sampled_files(["sticker.webp"]) == "1 animated image"
    assert sampled_files(["a.mp4", "b.gif", "c.GIF", "d.apng"]) == "1 video and 3 animated images"
