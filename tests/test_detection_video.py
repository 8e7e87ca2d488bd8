"""Detection mode looks into videos: the frames sorting samples, each searched as an image is."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from smart_sorter import sort_images
from tests.factories import noise_image

pytest.importorskip("av")

from smart_sorter.pipeline.video import Sampling, sample_video  # noqa: E402
from tests.toy_clip import TOY_LABELS  # noqa: E402
from tests.videos import write_video  # noqa: E402

OBJECTS = ["a cat", "a dog", "a red car"]
THRESHOLD = 0.5


def _pipeline_boxes(detector, image) -> list[tuple[str, list[int], float]]:
    found = detector(image, candidate_labels=OBJECTS, threshold=THRESHOLD)
    return sorted((f["label"], [f["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")], f["score"]) for f in found)


@pytest.mark.slow
def test_a_videos_objects_are_those_found_in_its_sampled_frames(tiny_owlv2, tmp_path, monkeypatch):
    from transformers import pipeline

    from smart_sorter.pipeline.detector import Detector

    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    source = tmp_path / "source"
    video = write_video(source / "clip.mp4", [(TOY_LABELS[0], 1.0), (TOY_LABELS[1], 1.0)], size=96, gop=5)
    noise_image(1).resize((80, 60)).save(source / "photo.png")
    result = sort_images(source, tmp_path / "found", detect=OBJECTS, model=str(tiny_owlv2), threshold=THRESHOLD,
                         video_frames=4, progress_bar=False)  # fmt: skip
    table = pd.read_csv(result.csv_path, keep_default_na=False).set_index("file")
    assert set(table.index) == {"clip.mp4", "photo.png"} and set(table["status"]) <= {"sorted", "uncertain"}
    row = table.loc["clip.mp4"]
    assert (row["kind"], int(row["frames"])) == ("video", 4) and float(row["duration"]) == pytest.approx(2.0, abs=0.2)
    assert table.loc["photo.png", "kind"] == "image"

    frames = sample_video(str(video), Sampling(frames=4), lambda image: image)
    detector = pipeline("zero-shot-object-detection", model=str(tiny_owlv2))
    boxes = json.loads(row["boxes"])
    assert boxes and {box["time"] for box in boxes} <= {round(t, 3) for t in frames.times}
    for moment, image in zip(frames.times, frames.pixels):  # each frame's boxes are the pipeline's on that frame
        ours = sorted((b["label"], b["box"], b["score"]) for b in boxes if b["time"] == round(moment, 3))
        theirs = _pipeline_boxes(detector, image)
        assert [(label, box) for label, box, _ in ours] == [(label, box) for label, box, _ in theirs]
        assert all(abs(a[2] - b[2]) < 1e-4 for a, b in zip(ours, theirs))
        for name in OBJECTS:  # a count is the most boxes of an object in one frame
            assert int(row[f"count:{name}"]) >= sum(1 for label, _, _ in ours if label == name)
    best = max(boxes, key=lambda box: box["score"])
    assert (row["label"], float(row["time"])) == (best["label"], best["time"])  # the time of the best box
    assert row["destination"].startswith(f"{best['label']}/")
    frame_table = pd.read_csv(result.csv_path.with_name("frames.csv"), keep_default_na=False)
    assert frame_table[frame_table["file"] == "clip.mp4"]["time"].tolist() == [round(t, 3) for t in frames.times]

    from smart_sorter.pipeline.embedding_cache import EmbeddingCache

    remembered = EmbeddingCache(tmp_path / "home")
    assert remembered.known_hash(video) == row["sha256"]  # unchanged, it need not even be read again
    remembered.close()
    searched = []  # a second search for other objects: every frame and the photo from the cache
    cached = Detector(str(tiny_owlv2), device="cpu").load()
    original = cached.image_side
    cached.image_side = lambda pixels: searched.append(len(pixels)) or original(pixels)
    again = sort_images(source, tmp_path / "again", detect=["a bird", "a dog"], model=str(tiny_owlv2),
                        threshold=THRESHOLD, video_frames=4, encoder=cached, progress_bar=False)  # fmt: skip
    assert searched == [] and len(again.table) == 2
    dogs = [box for box in boxes if box["label"] == "a dog"]
    again_dogs = [
        b for b in json.loads(again.table.set_index("file").loc["clip.mp4", "boxes"]) if b["label"] == "a dog"
    ]
    assert [(b["box"], b["time"]) for b in again_dogs] == [(b["box"], b["time"]) for b in dogs]
