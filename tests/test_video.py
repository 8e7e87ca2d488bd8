"""Videos: found by name or content, frames sampled within bounds, hostile files given an outcome."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

from smart_sorter.core.scoring import Scores  # noqa: E402
from smart_sorter.core.videos import aggregate, best_time, frame_rows, video_fields  # noqa: E402
from smart_sorter.errors import DecodeError  # noqa: E402
from smart_sorter.pipeline import finding, video  # noqa: E402
from smart_sorter.pipeline.finding import find_images  # noqa: E402
from smart_sorter.pipeline.video import Sampling, sample_video, sniff_video_format  # noqa: E402
from tests.videos import (  # noqa: E402
    claim_size,
    write_audio_only,
    write_many_tiny_frames,
    write_raw_avi,
    write_timed_frames,
    write_video,
    write_without_duration,
)

RED, BLUE = "red circle", "blue square"


def sizes(image):
    return image.size


def times_of(path: Path, sampling: Sampling, **kwargs) -> tuple[float, ...]:
    return sample_video(str(path), sampling, sizes, **kwargs).times


@pytest.mark.parametrize(
    ("name", "codec", "container_format"),
    [("a.mp4", "libx264", None), ("a.mov", "libx264", None), ("a.webm", "libvpx", None), ("a.mkv", "mpeg4", None),
     ("a.avi", "mpeg4", None), ("a.flv", "flv", None), ("a.ts", "mpeg4", "mpegts"), ("a.3gp", "libx264", "3gp")],
)  # fmt: skip
def test_video_containers_are_recognised_by_their_first_bytes(tmp_path, name, codec, container_format):
    path = write_video(tmp_path / name, [(RED, 1.0)], codec=codec, container_format=container_format)
    assert sniff_video_format(path.read_bytes()[: video.SNIFF_BYTES]) is not None


@pytest.mark.parametrize(
    "head",
    [b"\xff\xd8\xff\xe0" + bytes(12), b"\x89PNG\r\n\x1a\n" + bytes(8), b"GIF89a" + bytes(10),
     b"\x00\x00\x00\x18ftypheic" + bytes(4), b"\x00\x00\x00\x18ftypavif" + bytes(4),
     b"Good morning, this is text\n" * 30, b"G" + bytes(600)],
)  # fmt: skip
def test_images_and_text_are_not_taken_for_videos(head):
    assert sniff_video_format(head) is None


def test_videos_are_found_by_extension_and_by_content(tmp_path):
    source = tmp_path / "src"
    clip = write_video(source / "clip.mp4", [(RED, 1.0)])
    shutil.copy(clip, source / "no-extension")
    shutil.copy(clip, source / "named.jpg")
    (source / "notes.txt").write_text("not a video")
    scan = find_images(source)
    kinds = {found.relative: found.kind for found in scan.files}
    # a video named like an image is met by the image reader, which samples it as a video from its bytes
    assert kinds == {"clip.mp4": "video", "named.jpg": "image", "no-extension": "video"}
    assert scan.skipped_other == 1


def test_without_pyav_videos_are_listed_as_skipped_with_the_extra_to_install(tmp_path, monkeypatch):
    source = tmp_path / "src"
    write_video(source / "clip.webm", [(RED, 1.0)], codec="libvpx")
    monkeypatch.setattr(finding, "video_support", lambda: False)
    scan = find_images(source)
    assert not scan.files
    [skip] = scan.skipped
    assert skip.relative == "clip.webm" and "smart-sorter[video]" in skip.reason


def test_frames_are_sampled_evenly_every_few_seconds_or_at_keyframes(tmp_path):
    path = write_video(tmp_path / "ten.mp4", [(RED, 5.0), (BLUE, 5.0)], fps=10, gop=20)
    evenly = times_of(path, Sampling(frames=5))
    assert evenly == pytest.approx((1.0, 3.0, 5.0, 7.0, 9.0), abs=0.11)
    every = times_of(path, Sampling(every=2.5))
    assert every == pytest.approx((0.0, 2.5, 5.0, 7.5), abs=0.11)
    import av

    with av.open(str(path)) as container:
        truth = tuple(float(frame.time) for frame in container.decode(video=0) if frame.key_frame)
    assert len(truth) >= 5  # one every 2 s (and one where the picture changes)
    assert times_of(path, Sampling(keyframes=True)) == truth


def test_frames_are_turned_upright_and_decoded_at_reduced_size(tmp_path):
    import av

    wide = write_video(tmp_path / "wide.mp4", [(RED, 1.0)], size=128)
    assert sample_video(str(wide), Sampling(frames=2), sizes, short_side=64).pixels == [(64, 64), (64, 64)]
    turned = write_video(tmp_path / "turned.mp4", [(RED, 1.0)], size=128, rotate=90)
    with av.open(str(turned)) as container:
        stored = next(container.decode(video=0))
        assert stored.rotation == 90  # the display matrix: turn a quarter counterclockwise to show it
        stored = stored.to_ndarray(format="rgb24")
    [upright] = sample_video(str(turned), Sampling(frames=1), np.asarray).pixels
    assert np.abs(upright.astype(int) - np.rot90(stored).astype(int)).mean() < 12
    assert np.abs(upright.astype(int) - stored.astype(int)).mean() > 20  # it was turned


def test_a_video_sampled_from_its_bytes_equals_one_sampled_from_its_file(tmp_path):
    path = write_video(tmp_path / "clip.webm", [(RED, 1.0), (BLUE, 1.0)], codec="libvpx")
    from_file = sample_video(str(path), Sampling(frames=4), np.asarray)
    from_bytes = sample_video(io.BytesIO(path.read_bytes()), Sampling(frames=4), np.asarray)
    assert from_file.times == from_bytes.times
    assert all(np.array_equal(a, b) for a, b in zip(from_file.pixels, from_bytes.pixels))


def hostile(folder: Path) -> dict[str, str]:
    """Each hostile video, named for what it is, with the outcome expected: an error's words, or `frames`."""
    folder.mkdir(parents=True, exist_ok=True)
    ten = write_video(folder / "whole.mp4", [(RED, 5.0), (BLUE, 5.0)], fps=25)
    (folder / "whole.mp4").unlink()
    data = ten.with_name("whole.webm")
    write_video(data, [(RED, 5.0), (BLUE, 5.0)], fps=25, codec="libvpx")
    webm = data.read_bytes()
    (folder / "truncated.webm").write_bytes(webm[: len(webm) // 2])
    data.unlink()
    mp4 = write_video(folder / "moov-at-end.mp4", [(RED, 2.0)]).read_bytes()
    (folder / "moov-at-end.mp4").write_bytes(mp4[: len(mp4) // 2])
    corrupt = bytearray(webm)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 3000] = bytes(range(256)) * 11 + bytes(184)
    (folder / "corrupt-packets.webm").write_bytes(bytes(corrupt))
    (folder / "zero-length.mp4").write_bytes(b"")
    write_audio_only(folder / "audio-only.mp4")
    claim_size(write_raw_avi(folder / "claims-30000x30000.avi"), 30000, 30000)
    claim_size(write_raw_avi(folder / "claims-16000x16000.avi"), 16000, 16000)
    write_timed_frames(folder / "variable-rate.mp4", [0, 0.05, 0.5, 0.55, 2.0, 2.01, 3.5])
    write_timed_frames(folder / "an-hour-three-frames.mkv", [0, 1800, 3600])
    shutil.copy(write_video(folder / "x.webm", [(BLUE, 1.0)], codec="libvpx"), folder / "video-named.jpg")
    (folder / "x.webm").unlink()
    return {
        "truncated.webm": "frames",
        "moov-at-end.mp4": "not a readable video",
        "corrupt-packets.webm": "frames",
        "zero-length.mp4": "empty file",
        "audio-only.mp4": "no video stream (audio only)",
        "claims-30000x30000.avi": "no frame could be decoded",
        "claims-16000x16000.avi": "too large to decode safely",
        "variable-rate.mp4": "frames",
        "an-hour-three-frames.mkv": "frames",
        "video-named.jpg": "frames",
    }


def test_hostile_videos_each_have_a_defined_outcome_when_sampled(tmp_path):
    expected = hostile(tmp_path)
    for name, outcome in expected.items():
        if name == "zero-length.mp4":
            continue  # refused before it is opened (see the run test)
        try:
            frames = sample_video(io.BytesIO((tmp_path / name).read_bytes()), Sampling(), sizes)
            assert outcome == "frames", f"{name} was sampled"
            assert 1 <= len(frames.times) <= 8
        except DecodeError as error:
            assert outcome in str(error), f"{name}: {error}"


def test_variable_frame_rate_and_sparse_videos_report_the_frames_real_times(tmp_path):
    sparse = write_timed_frames(tmp_path / "hour.mkv", [0, 1800, 3600])
    assert set(times_of(sparse, Sampling(every=1.0))) <= {0.0, 1800.0, 3600.0}
    variable = write_timed_frames(tmp_path / "vfr.mp4", [0, 0.05, 0.5, 0.55, 2.0, 2.01, 3.5])
    assert set(times_of(variable, Sampling(frames=8))) <= {0, 0.05, 0.5, 0.55, 2.0, 2.01, 3.5}


def test_a_video_that_does_not_say_how_long_it_is_is_sampled_from_its_start(tmp_path):
    path = write_without_duration(tmp_path / "live.webm", frames=50, fps=10)
    frames = sample_video(str(path), Sampling(frames=8), sizes)
    assert frames.duration is None
    assert frames.times == pytest.approx((0.0, 1.0, 2.0, 3.0, 4.0, 4.9), abs=0.01)  # a frame a second, to its end


def test_decoding_a_video_is_bounded_by_the_frames_it_may_decode(tmp_path, monkeypatch):
    path = write_many_tiny_frames(tmp_path / "tiny.mp4", 2000)
    monkeypatch.setattr(video, "MAX_DECODED_FRAMES", 300)
    seen = []
    real = video.DecodeBudget.spend
    monkeypatch.setattr(video.DecodeBudget, "spend", lambda self: seen.append(1) or real(self))
    for sampling in (Sampling(every=0.01), Sampling(keyframes=True), Sampling(frames=240)):
        seen.clear()
        frames = sample_video(str(path), sampling, sizes)
        assert 1 <= len(frames.times) <= 240 and len(seen) <= 301


def test_a_video_mean_or_max_and_the_time_of_its_best_frame():
    from smart_sorter.core.labels import parse_labels

    labels = parse_labels("red, blue, green", "{}")
    frames = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05], [0.2, 0.7, 0.1]])
    image = np.array([[0.2, 0.3, 0.5]])
    scores = Scores(np.vstack([image, frames]), np.zeros((5, 3), dtype=int), np.vstack([image, frames]))
    spans, videos = [(0, 1), (1, 4)], [None, ((0.0, 1.0, 2.0, 3.0), 4.0)]
    mean = aggregate(scores, spans, videos, "mean")
    assert mean.probabilities[1] == pytest.approx(frames.mean(axis=0))
    assert mean.probabilities[0] == pytest.approx(image[0]) and mean.series[0] is None
    top = aggregate(scores, spans, videos, "max")
    assert top.probabilities[1] == pytest.approx([0.9, 0.85, 0.1])
    series = mean.series[1]
    assert best_time(series, 0) == 0.0 and best_time(series, 1) == 2.0
    row = {"file": "v.mp4", "label": "blue", "tags": "blue; red"}
    fields = video_fields(row, series, labels, multi_label=True)
    assert (fields["kind"], fields["frames"], fields["duration"], fields["time"]) == ("video", 4, 4.0, 2.0)
    assert (fields["time:blue"], fields["time:red"]) == (2.0, 0.0) and "time:green" not in fields
    assert frame_rows([{**row, **fields}]) == [
        {"file": "v.mp4", "time": 0.0, "label": "red", "score": 0.9},
        {"file": "v.mp4", "time": 1.0, "label": "red", "score": 0.8},
        {"file": "v.mp4", "time": 2.0, "label": "blue", "score": 0.85},
        {"file": "v.mp4", "time": 3.0, "label": "blue", "score": 0.7},
    ]
