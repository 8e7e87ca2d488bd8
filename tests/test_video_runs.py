"""Runs with videos and animations, with the colour FakeEncoder: what an animation is sorted as in each mode,
the progress bar's unit, the cache's hits and misses of images and frames (summary, manifest, `cache`
command), and a destination's video settings kept: another sampling is refused with what to do."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

import smart_sorter
from smart_sorter.cli import main
from smart_sorter.errors import OtherRunError
from tests.fakes import COLOUR_LABELS, COLOURS, colour_image, write_colour_images


def colour_animation(path: Path, segments: list[tuple[str, float]], *, fps: int = 10) -> Path:
    """An animated GIF (or WebP, PNG by suffix) of one colour per (colour, seconds) segment."""
    frames = [
        colour_image(colour, seed=index * 100 + frame)
        for index, (colour, seconds) in enumerate(segments)
        for frame in range(round(seconds * fps))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = {".gif": "GIF", ".webp": "WEBP", ".png": "PNG"}[path.suffix]
    extra = {"lossless": True} if kind == "WEBP" else {}
    frames[0].save(path, format=kind, save_all=True, append_images=frames[1:], duration=1000 // fps, **extra)
    return path


def colour_video(path: Path, colours: list[str], *, seconds: float = 1.0, fps: int = 10) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for colour in colours:
            pixels = np.full((32, 32, 3), COLOURS[colour], dtype=np.uint8)
            for _ in range(round(seconds * fps)):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def sort(source: Path, out: Path, encoder, labels=COLOUR_LABELS, **options):
    return smart_sorter.sort_images(source, out, labels, encoder=encoder, progress_bar=False, **options)


@pytest.fixture
def animations(tmp_path) -> Path:
    """A GIF blue for 0.2 s then green for 2 s, an APNG and a WebP red then blue, a still GIF, two JPEGs."""
    source = tmp_path / "src"
    colour_animation(source / "blue-then-green.gif", [("blue", 0.2), ("green", 2.0)])
    colour_animation(source / "red-then-blue.png", [("red", 0.3), ("blue", 1.5)])
    colour_animation(source / "sticker.webp", [("red", 0.3), ("blue", 1.5)])
    colour_image("red", seed=7).save(source / "still.gif")
    write_colour_images(source, ["green", "red"])
    return source


def test_an_animation_is_its_first_frame_by_default_and_its_frames_with_animated_frames(
    animations, tmp_path, fake_encoder
):
    first = sort(animations, tmp_path / "first", fake_encoder).table.set_index("file")
    assert first.loc["blue-then-green.gif", "label"] == "a blue thing" and set(first["kind"]) == {"image"}
    frames = sort(animations, tmp_path / "frames", fake_encoder, animated="frames").table.set_index("file")
    assert frames.loc["blue-then-green.gif", "label"] == "a green thing"  # shown 2 s of 2.2
    assert frames.loc["red-then-blue.png", "label"] == frames.loc["sticker.webp", "label"] == "a blue thing"
    assert dict(frames["kind"]) == {
        "blue-then-green.gif": "video", "red-then-blue.png": "video", "sticker.webp": "video",
        "still.gif": "image", "green_00.jpg": "image", "red_01.jpg": "image",
    }  # fmt: skip
    gif = frames.loc["blue-then-green.gif"]
    assert (gif["frames"], gif["duration"]) == (8, 2.2) and gif["time"] >= 0.2  # its best green frame
    # with max, an animation is labelled by its best frame (all frames here are one colour: the same)
    maxed = sort(animations, tmp_path / "max", fake_encoder, animated="frames", video_score="max")
    assert maxed.table.set_index("file").loc["blue-then-green.gif", "kind"] == "video"


def test_the_progress_bar_counts_files(tmp_path, tiny_clip, capsys):
    source = tmp_path / "src"
    write_colour_images(source, ["red", "green"])
    colour_video(source / "clip.mp4", ["blue"])
    code = main(["--source", str(source), "--destination", str(tmp_path / "out"), "--labels", "a, b",
                 "--model", str(tiny_clip)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert re.search(r"3/3 \[.*(file/s|s/file)\]", err), err[-500:]
    assert "img" not in err


def test_cache_hits_and_misses_count_images_and_video_frames(tmp_path, fake_encoder, capsys):
    source = tmp_path / "src"
    write_colour_images(source, ["red", "green"])
    colour_video(source / "clip.mp4", ["blue", "red"])
    colour_animation(source / "anim.gif", [("green", 1.0)])
    first = sort(source, tmp_path / "one", fake_encoder, video_frames=4, animated="frames")
    assert first.cache == {"images": {"hits": 0, "misses": 2}, "frames": {"hits": 0, "misses": 8}}
    assert "From the embedding cache" not in first.summary()  # nothing there yet
    second = sort(source, tmp_path / "two", fake_encoder, video_frames=4, animated="frames")
    assert second.cache == {"images": {"hits": 2, "misses": 0}, "frames": {"hits": 8, "misses": 0}}
    assert "From the embedding cache: 2 of 2 images and 8 of 8 video frames" in second.summary()
    manifest = json.loads(second.manifest_path.read_text())
    assert manifest["cache"] == second.cache
    assert main(["cache"]) == 0
    shown = capsys.readouterr().out
    assert "frames of 1 video and 1 animation" in shown and "2 images, 8 video frames  fake/colour-encoder" in shown
    assert main(["cache", "--clear"]) == 0
    assert "Cleared 10 embeddings of 1 model" in capsys.readouterr().out


def stopped_run(source: Path, out: Path, encoder, **options) -> None:
    """A run stopped after its first batch: the destination holds an unfinished run with files placed."""
    stop = threading.Event()
    stop.set()
    sort(source, out, encoder, batch_size=2, stop=stop, **options)
    assert json.loads((out / "smart-sorter-run.json").read_text())["status"] == "stopped"


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        ({}, {"video_frames": 4}, ["video_frames"]),
        ({"video_every": 0.5}, {}, ["video_every"]),  # a setting recorded then, left at its default now
        ({}, {"video_keyframes": True}, ["video_keyframes"]),
        ({"video_score": "max"}, {"video_score": "mean"}, ["video_score"]),
        ({}, {"animated": "frames"}, ["animated"]),
    ],
)
def test_a_half_done_destination_refuses_other_video_settings_and_says_what_to_do(
    animations, tmp_path, fake_encoder, before, after, changed
):
    colour_video(animations / "clip.mp4", ["red"])
    out = tmp_path / "out"
    stopped_run(animations, out, fake_encoder, **before)
    placed = sorted(path.name for path in out.rglob("*") if path.is_file())
    with pytest.raises(OtherRunError) as raised:
        sort(animations, out, fake_encoder, **after)
    assert raised.value.differences == changed and not raised.value.finished
    message = raised.value.message_for("cli")
    assert f"an unfinished run with other settings ({changed[0]} changed)" in message
    assert "Start it again with its own settings to finish it" in message and "resort" not in message
    assert sorted(path.name for path in out.rglob("*") if path.is_file()) == placed  # nothing touched
    finished = sort(animations, out, fake_encoder, **before)  # its own settings finish it
    assert finished.resumed_files == 2 and len(finished.table) == 7


def test_a_finished_destination_says_why_resort_cannot_change_the_sampling(animations, tmp_path, fake_encoder):
    out = tmp_path / "out"
    sort(animations, out, fake_encoder)
    with pytest.raises(OtherRunError) as raised:
        sort(animations, out, fake_encoder, animated="frames", video_frames=3)
    message = raised.value.message_for("cli")
    assert raised.value.differences == ["video_frames", "animated"]
    assert "holds a finished run with other settings (video_frames, animated changed)." in message
    assert "Re-sorting cannot do it: it reuses the frames the run scored" in message
    assert "smart-sorter undo" in message
    # the same settings again: nothing to do; and the defaults add nothing to what a journal must match
    assert sort(animations, out, fake_encoder).already_done


def test_resort_of_animations_takes_their_frames_from_the_cache_or_reads_them_again(
    animations, tmp_path, fake_encoder, monkeypatch
):
    import pandas as pd

    from smart_sorter.pipeline import media
    from smart_sorter.pipeline.embedding_cache import EmbeddingCache

    out = tmp_path / "out"
    sort(animations, out, fake_encoder, animated="frames")
    embedded = fake_encoder.embedded_images
    result = smart_sorter.resort(out, ["a red thing", "a plain thing"], encoder=fake_encoder)
    assert fake_encoder.embedded_images == embedded and result.problems == []  # all from the cache
    store = EmbeddingCache()
    store.clear()
    store.close()
    sampled = []
    real = media.sample_animation
    monkeypatch.setattr(media, "sample_animation", lambda *args, **kwargs: sampled.append(1) or real(*args, **kwargs))
    again = smart_sorter.resort(out, COLOUR_LABELS, encoder=fake_encoder)
    assert again.problems == [] and len(sampled) == 4  # the animations (and the still GIF) read again with Pillow
    table = pd.read_csv(again.csv_path, keep_default_na=False, dtype=str).set_index("file")
    assert table.loc["blue-then-green.gif", "label"] == "a green thing"
    assert table.loc["blue-then-green.gif", "kind"] == "video" and table.loc["blue-then-green.gif", "frames"] == "8"
