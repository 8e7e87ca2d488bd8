"""Videos sorted end to end by the trained toy CLIP: labels, best-frame times, cache, re-sort, kill and undo."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("av")

from smart_sorter import resort, sort_images  # noqa: E402
from smart_sorter.cli import main  # noqa: E402
from smart_sorter.pipeline import media  # noqa: E402
from smart_sorter.storage.placing import TEMP_PREFIX, sha256_of  # noqa: E402
from tests.toy_clip import TOY_LABELS, write_shapes  # noqa: E402
from tests.videos import shown_at, truth_of, write_many_tiny_frames, write_video  # noqa: E402

RED, BLUE, GREEN, YELLOW = TOY_LABELS
ROOT = Path(__file__).resolve().parents[1]
# name -> segments (label, seconds); the truth is the label shown longest
VIDEOS = {
    "red-then-blue.mp4": [(RED, 2.0), (BLUE, 1.0)],
    "blue-then-yellow.mp4": [(BLUE, 1.0), (YELLOW, 3.0)],
    "green.webm": [(GREEN, 2.0)],
    "yellow.mkv": [(YELLOW, 1.5)],
    "cross-square-cross.mov": [(YELLOW, 1.0), (BLUE, 3.0), (YELLOW, 1.0)],
    "triangle-circle.avi": [(GREEN, 3.0), (RED, 1.0)],
    "circle.webm": [(RED, 2.5)],
    "square-triangle.mp4": [(BLUE, 2.5), (GREEN, 0.5)],
    "triangle-named.jpg": [(GREEN, 2.0), (YELLOW, 0.5)],
    "sub/cross-circle.mp4": [(YELLOW, 0.5), (RED, 2.5)],
}
CODECS = {".webm": "libvpx", ".avi": "mpeg4", ".mkv": "mpeg4"}


def make_videos(folder: Path) -> dict[str, list[tuple[str, float]]]:
    for index, (name, segments) in enumerate(VIDEOS.items()):
        target = folder / name
        written = target.with_suffix(".mp4") if target.suffix == ".jpg" else target
        # a keyframe every half second, as longer videos have one every few seconds
        write_video(written, segments, codec=CODECS.get(target.suffix, "libx264"), seed=index, gop=5)
        if written != target:
            written.rename(target)
    return VIDEOS


def tree_hashes(folder: Path) -> Counter:
    """The hashes of the images and videos under `folder` (not the tables, not the journal)."""
    suffixes = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".jpg", ".png"}
    return Counter(sha256_of(path) for path in folder.rglob("*") if path.is_file() and path.suffix in suffixes)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


@pytest.fixture
def mixed_source(tmp_path) -> tuple[Path, dict[str, str]]:
    source = tmp_path / "src"
    make_videos(source)
    truth = {name: truth_of(segments) for name, segments in VIDEOS.items()}
    truth.update(write_shapes(source, 8, seed=5))
    return source, truth


@pytest.mark.slow
@pytest.mark.parametrize("sampling", [["--video-frames", "8"], ["--video-every", "0.5"], ["--video-keyframes"]])
def test_videos_are_sorted_through_the_command_line_with_the_time_of_their_best_frame(
    tmp_path, toy_clip, mixed_source, sampling
):
    source, truth = mixed_source
    out = tmp_path / "out"
    code = main(["--source", str(source), "--destination", str(out), "--labels", ",".join(TOY_LABELS),
                 "--model", str(toy_clip), "--quiet", *sampling])  # fmt: skip
    assert code == 0
    table = read_table(out / "output.csv").set_index("file")
    assert set(table.index) == set(truth)
    videos = table[table["kind"] == "video"]
    assert set(videos.index) == set(VIDEOS)
    assert set(table[table["kind"] == "image"].index) == set(truth) - set(VIDEOS)
    right = sum(table.loc[name, "label"] == truth[name] for name in VIDEOS)
    assert right >= 0.9 * len(VIDEOS), videos[["label", "frames", "time"]]
    frames = read_table(out / "frames.csv")
    assert sorted(frames["file"].unique()) == sorted(VIDEOS)
    for name, segments in VIDEOS.items():
        row = table.loc[name]
        duration = sum(seconds for _, seconds in segments)
        assert float(row["duration"]) == pytest.approx(duration, abs=0.15)
        scored = frames[frames["file"] == name]
        assert int(row["frames"]) == len(scored) >= 1
        step = duration / 8 if sampling[0] == "--video-frames" else 0.5  # every 0.5 s, or a keyframe every 0.5 s
        moment = float(row["time"])
        if row["label"] == truth[name]:  # the best frame lies within a step of where the label is shown
            assert any(start - step <= moment <= end + step for start, end in shown_at(segments, row["label"]))
        assert (out / row["destination"]).is_file() and row["destination"].startswith(row["label"])
    images = [name for name in truth if name not in VIDEOS]
    assert sum(table.loc[name, "label"] == truth[name] for name in images) >= 0.9 * len(images)


@pytest.mark.slow
def test_with_multi_label_a_video_is_tagged_with_all_it_shows_each_with_its_moment(tmp_path, toy_clip):
    source = tmp_path / "src"
    write_video(source / "both.mp4", [(RED, 2.0), (BLUE, 2.0)])
    result = sort_images(source, tmp_path / "out", list(TOY_LABELS), model=str(toy_clip), multi_label=True,
                         video_every=0.5, progress_bar=False)  # fmt: skip
    row = result.table.iloc[0]
    assert {RED, BLUE} <= set(row["tags"].split("; "))  # max: each shown at some point is a tag
    assert 0 <= row[f"time:{RED}"] < 2.0 <= row[f"time:{BLUE}"] <= 4.0  # each tag at its own moment


@pytest.mark.slow
def test_videos_sorted_again_need_neither_the_model_nor_the_decoder(tmp_path, toy_clip, mixed_source, monkeypatch):
    from smart_sorter.pipeline.encoder import DualEncoder

    source, truth = mixed_source
    first = sort_images(source, tmp_path / "one", list(TOY_LABELS), model=str(toy_clip), progress_bar=False)
    encoder = DualEncoder(str(toy_clip), device="cpu").load()
    embedded = []
    original = encoder.embed_images
    encoder.embed_images = lambda pixels, **options: embedded.append(len(pixels)) or original(pixels, **options)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a video was decoded again")

    monkeypatch.setattr(media, "sample_video", no_decoding)
    second = sort_images(source, tmp_path / "two", list(TOY_LABELS), model=str(toy_clip), encoder=encoder,
                         progress_bar=False)  # fmt: skip
    assert embedded == []
    columns = ["file", "label", "score", "kind", "frames", "duration", "time"]
    pd.testing.assert_frame_equal(first.table[columns], second.table[columns])
    # new labels, in place: the videos move from the cache alone
    outcome = resort(tmp_path / "two", f"{RED}, {GREEN}, something else", encoder=encoder)
    assert embedded == [] and outcome.moved > 0
    table = read_table(tmp_path / "two" / "output.csv").set_index("file")
    assert table.loc["green.webm", "label"] == GREEN and table.loc["circle.webm", "label"] == RED
    assert (tmp_path / "two" / table.loc["green.webm", "destination"]).is_file()
    frames = read_table(tmp_path / "two" / "frames.csv")
    assert set(frames["label"]) <= {RED, GREEN, "something else"}


@pytest.mark.slow
def test_a_dry_run_plans_videos_and_the_real_run_follows(tmp_path, toy_clip, mixed_source):
    source, _ = mixed_source
    out = tmp_path / "out"
    plan = sort_images(source, out, list(TOY_LABELS), model=str(toy_clip), dry_run=True, progress_bar=False)
    assert (out / "plan-frames.csv").is_file() and not (out / "frames.csv").exists()
    assert set(plan.table[plan.table["kind"] == "video"]["file"]) == set(VIDEOS)
    assert not [path for path in out.rglob("*") if path.suffix in (".mp4", ".webm")]
    real = sort_images(source, out, list(TOY_LABELS), model=str(toy_clip), progress_bar=False)
    columns = ["file", "label", "time"]
    pd.testing.assert_frame_equal(plan.table[columns], real.table[columns])


KILLED_RUN = """
import os, signal, sys
from smart_sorter.storage import placing
real_write_all = placing._write_all
written = [0]
def write_all(descriptor, chunk):
    written[0] += len(chunk)
    real_write_all(descriptor, chunk[: len(chunk) // 2])
    if written[0] > 8_000_000:  # within the large video's copy: only it is that large
        os.kill(os.getpid(), signal.SIGKILL)
    real_write_all(descriptor, chunk[len(chunk) // 2 :])
placing._write_all = write_all
os.link = lambda *args, **kwargs: (_ for _ in ()).throw(OSError(1, "Operation not permitted"))
from smart_sorter.cli import main
sys.exit(main(sys.argv[1:]))
"""


def large_video(path: Path, megabytes: int) -> Path:
    """A real video made large by a `free` box at its end, as a long recording is large."""
    write_video(path, [(BLUE, 2.0)])
    with open(path, "ab") as handle:
        size = megabytes * 1024 * 1024
        handle.write(size.to_bytes(4, "big") + b"free")
        handle.truncate(path.stat().st_size + size - 8)
    return path


@pytest.mark.slow
def test_a_kill_while_a_large_video_is_copied_then_the_same_command_places_each_video_once(
    tmp_path, toy_clip, mixed_source
):
    source, _ = mixed_source
    large_video(source / "large.mp4", 40)
    before = tree_hashes(source)
    out = tmp_path / "out"
    command = ["--source", str(source), "--destination", str(out), "--labels", ",".join(TOY_LABELS),
               "--model", str(toy_clip), "--quiet"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, *command], env=env, cwd=ROOT, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    partial = [path for path in out.rglob("*") if path.name.startswith(TEMP_PREFIX)]
    assert partial  # killed in the middle of the copy
    assert main(command) == 0
    table = read_table(out / "output.csv")
    assert table["file"].is_unique and set(table["file"]) == {
        path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file()
    }
    assert not [path for path in out.rglob("*") if path.name.startswith(TEMP_PREFIX)]
    placed = tree_hashes(out)
    assert all(placed[sha] == 1 for sha in before)  # each file once, whole
    frames = read_table(out / "frames.csv")  # rebuilt from the journal: the videos of both runs
    assert set(frames["file"]) == {*VIDEOS, "large.mp4"}
    large = table.set_index("file").loc["large.mp4"]
    assert (large["kind"], large["label"]) == ("video", BLUE)
    assert (out / large["destination"]).stat().st_size == (source / "large.mp4").stat().st_size
    assert json.loads((out / "smart-sorter-run.json").read_text())["status"] == "finished"
    assert main(["undo", str(out)]) == 0
    assert tree_hashes(source) == before
    assert not tree_hashes(out)
    assert not (out / "frames.csv").exists() and len(list(out.glob("frames-undone-*.csv"))) == 1


@pytest.mark.slow
def test_hostile_videos_are_rows_of_a_run_that_finishes(tmp_path, tiny_clip):
    from tests.test_video import hostile

    source = tmp_path / "src"
    expected = hostile(source)
    write_many_tiny_frames(source / "many-tiny-frames.mp4", 100_000)
    expected["many-tiny-frames.mp4"] = "frames"
    shutil.copy(source / "variable-rate.mp4", source / "fifo-neighbour.mp4")
    expected["fifo-neighbour.mp4"] = "frames"
    os.mkfifo(source / "a-fifo.mp4")
    result = sort_images(source, tmp_path / "out", "a, b", model=str(tiny_clip), video_keyframes=False,
                         progress_bar=False)  # fmt: skip
    table = result.table.set_index("file")
    assert set(table.index) == set(expected)
    for name, outcome in expected.items():
        row = table.loc[name]
        if outcome == "frames":
            assert row["status"] == "sorted" and row["kind"] == "video" and int(row["frames"]) >= 1, name
        else:
            assert row["status"] == "error" and outcome in row["error"], (name, row["error"])
    assert ("a-fifo.mp4", "not a regular file (a FIFO)") in result.skipped


@pytest.mark.parametrize("how", ["pipeline", "exact"])
def test_videos_through_the_pipeline_fallback_and_the_exact_preprocessing(tmp_path, tiny_clip, how):
    from smart_sorter.pipeline.encoder import PipelineClassifier, load_model_parts

    source = tmp_path / "src"
    write_video(source / "clip.webm", [(RED, 1.0), (BLUE, 1.0)], codec="libvpx")
    encoder = None
    if how == "pipeline":
        encoder = PipelineClassifier(str(tiny_clip), device="cpu", parts=load_model_parts(str(tiny_clip)))
    result = sort_images(source, tmp_path / "out", "a, b", model=str(tiny_clip), encoder=encoder,
                         preprocess="exact", video_frames=4, progress_bar=False)  # fmt: skip
    row = result.table.iloc[0]
    assert (row["status"], row["kind"], row["frames"]) == ("sorted", "video", 4)
    assert row["time"] in {float(time) for time in read_table(tmp_path / "out" / "frames.csv")["time"]}
