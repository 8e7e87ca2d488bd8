"""Detection mode: boxes equal to the transformers pipeline's, files placed by the objects found."""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from smart_sorter import SortOptions, sort_images
from smart_sorter.core.detections import detection_row, merge_views
from smart_sorter.core.labels import parse_labels
from smart_sorter.errors import LabelError, OptionError
from smart_sorter.options import DEFAULT_DETECTOR
from tests.factories import noise_image

OBJECTS = ["a cat", "a dog", "a red car"]


@pytest.fixture
def odd_images(tmp_path) -> Path:
    """Random images of several sizes and shapes (wide, tall, small), JPEG and PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    for index, size in enumerate([(64, 48), (40, 90), (150, 60), (128, 128), (33, 21)]):
        image = noise_image(index).resize(size)
        image.save(folder / f"image_{index}.{'png' if index % 2 else 'jpg'}")
    return folder


def _pipeline_boxes(model: Path, image_path: Path, threshold: float) -> list[dict]:
    from transformers import pipeline

    detector = pipeline("zero-shot-object-detection", model=str(model))
    with Image.open(image_path) as image:
        found = detector(image.convert("RGB"), candidate_labels=OBJECTS, threshold=threshold)
    return [{"label": f["label"], "score": f["score"], "box": [f["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")]}
            for f in found]  # fmt: skip


def _assert_same_boxes(ours: list[dict], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs)
    key = lambda found: (found["label"], found["box"], round(found["score"], 3))  # noqa: E731
    for mine, pipe in zip(sorted(ours, key=key), sorted(theirs, key=key)):
        assert mine["label"] == pipe["label"]
        assert mine["score"] == pytest.approx(pipe["score"], abs=1e-4)
        assert np.abs(np.subtract(mine["box"], pipe["box"])).max() <= 1  # whole pixels, truncated


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["tiny_owlv2", "tiny_grounding_dino"])
def test_boxes_and_scores_equal_the_pipelines(request, model_fixture, odd_images, tmp_path):
    model = request.getfixturevalue(model_fixture)
    threshold = 0.3
    result = sort_images(
        odd_images, tmp_path / "found", detect=", ".join(OBJECTS), model=str(model), threshold=threshold,
        batch_size=2, progress_bar=False,
    )  # fmt: skip
    table = pd.read_csv(result.csv_path, keep_default_na=False)
    assert len(table) == 5 and set(table["status"]) <= {"sorted", "uncertain"}
    total = 0
    for _, row in table.iterrows():
        ours = json.loads(row["boxes"])
        theirs = _pipeline_boxes(model, odd_images / row["file"], threshold)
        _assert_same_boxes(ours, theirs)
        total += len(ours)
        counts = {name: sum(1 for found in ours if found["label"] == name) for name in OBJECTS}
        assert {name: int(row[f"count:{name}"]) for name in OBJECTS} == counts
    assert total > 0  # the comparison compared something


@pytest.mark.slow
def test_files_go_to_their_best_object_with_copies_for_the_others(tiny_owlv2, odd_images, tmp_path):
    result = sort_images(odd_images, tmp_path / "found", detect=OBJECTS, model=str(tiny_owlv2), threshold=0.6,
                         progress_bar=False)  # fmt: skip
    table = result.table
    assert {"objects", "boxes", "count:a cat", "copies"} <= set(table.columns)
    for _, row in table.iterrows():
        found = json.loads(row["boxes"])
        if not found:
            assert row["status"] == "uncertain" and row["destination"].startswith("nothing found/")
            continue
        best = max(found, key=lambda box: box["score"])
        assert row["label"] == best["label"] and row["score"] == pytest.approx(best["score"])
        assert row["destination"].startswith(f"{row['label']}/")
        others = [name for name in row["objects"].split("; ") if name != row["label"]]
        copies = [copy for copy in str(row["copies"] or "").split("; ") if copy]
        assert sorted(copy.split("/")[0] for copy in copies) == sorted(others)
        for placed in [row["destination"], *copies]:
            assert (tmp_path / "found" / placed).read_bytes() == (odd_images / row["file"]).read_bytes()


def test_detection_row_per_object_thresholds_and_nothing_found():
    objects = parse_labels({"rifle": {"prompts": ["a rifle"], "threshold": 0.5}, "flag": "a flag"}, "{}", minimum=1)
    found = [
        {"label": "flag", "score": 0.3, "box": [0, 0, 5, 5]},
        {"label": "rifle", "score": 0.4, "box": [1, 1, 9, 9]},  # under rifle's own 0.5
        {"label": "flag", "score": 0.2, "box": [5, 5, 9, 9]},
    ]
    row = detection_row("a.jpg", "abc", found, objects, threshold=0.1)
    assert (row["label"], row["score"], row["status"], row["prompt"]) == ("flag", 0.3, "sorted", "a flag")
    assert row["objects"] == "flag" and row["count:flag"] == 2 and row["count:rifle"] == 0
    assert [box["score"] for box in json.loads(row["boxes"])] == [0.3, 0.2]
    nothing = detection_row("b.jpg", "def", found[1:2], objects, threshold=None)
    assert (nothing["label"], nothing["status"], nothing["objects"], json.loads(nothing["boxes"])) == (
        "",
        "uncertain",
        "",
        [],
    )


def test_tiles_boxes_map_back_and_merge():
    views = [(0, 0, 200, 100), (0, 0, 100, 100), (100, 0, 200, 100)]
    per_view = [
        [{"label": "x", "score": 0.5, "box": [110, 10, 150, 50]}],
        [{"label": "x", "score": 0.2, "box": [10, 10, 40, 40]}],
        [{"label": "x", "score": 0.9, "box": [12, 11, 50, 51]}, {"label": "y", "score": 0.3, "box": [12, 11, 50, 51]}],
    ]
    merged = merge_views(per_view, views)
    assert merged == [
        {"label": "x", "score": 0.9, "box": [112, 11, 150, 51]},  # the whole view's weaker box merged into it
        {"label": "y", "score": 0.3, "box": [112, 11, 150, 51]},  # another object's box stays
        {"label": "x", "score": 0.2, "box": [10, 10, 40, 40]},
    ]


def test_the_summary_of_a_detection_run_counts_every_file():
    from smart_sorter.runs.outcome import SortResult

    objects = parse_labels(["a rifle", "a tank", "a flag"], "{}", minimum=1)
    boxes = {"a rifle": [{"label": "a rifle", "score": 0.9, "box": [0, 0, 5, 5]}],
             "a tank": [{"label": "a tank", "score": 0.8, "box": [0, 0, 5, 5]}]}  # fmt: skip
    rows = [detection_row(f"{i}.jpg", "s", boxes.get(name, []), objects, threshold=0.1)
            for i, name in enumerate(["a rifle"] * 7 + ["a tank"] * 12 + ["none"] * 13)]  # fmt: skip
    result = SortResult(
        table=pd.DataFrame(rows), csv_path=Path("found/output.csv"), manifest_path=Path("m"), destination=Path("found"),
        seconds=4.0, label_counts={"a rifle": 7, "a tank": 12, "a flag": 0, "nothing found": 13},
        status_counts={"sorted": 19, "uncertain": 13}, detect=True,
    )  # fmt: skip
    assert result.found_parts() == ["19 with objects (a rifle 7, a tank 12)", "13 with nothing found"]
    first = result.summary().splitlines()[0]
    assert first == "Sorted 32 files in 4.0 s: 19 with objects (a rifle 7, a tank 12), 13 with nothing found.", first
    assert "of 32" not in result.summary()


def test_a_videos_row_gathers_its_frames_boxes_with_their_times():
    from smart_sorter.core.detections import video_detection_row
    from smart_sorter.core.videos import FRAME_DETAIL

    objects = parse_labels(["a rifle", "a flag"], "{}", minimum=1)
    rifle = lambda score, x: {"label": "a rifle", "score": score, "box": [x, 0, x + 5, 5]}  # noqa: E731
    frames = [(0.25, [rifle(0.4, 0), rifle(0.3, 9)]), (0.75, []), (1.25, [rifle(0.8, 2)])]
    row = video_detection_row("v.mp4", "s", frames, 1.5, objects, threshold=0.1)
    assert (row["kind"], row["frames"], row["duration"], row["label"], row["time"]) == (
        "video",
        3,
        1.5,
        "a rifle",
        1.25,
    )
    assert [(box["score"], box["time"]) for box in json.loads(row["boxes"])] == [(0.8, 1.25), (0.4, 0.25), (0.3, 0.25)]
    assert (row["count:a rifle"], row["count:a flag"]) == (2, 0)  # the most in one frame, not 3 in all
    assert row[FRAME_DETAIL] == [[0.25, "a rifle", 0.4], [0.75, "", ""], [1.25, "a rifle", 0.8]]
    empty = video_detection_row("w.mp4", "t", [(0.5, [])], None, objects, threshold=0.1)
    assert (empty["status"], empty["time"], empty["duration"], empty["objects"]) == ("uncertain", "", "", "")


def test_detect_options():
    assert SortOptions(detect=True).model == DEFAULT_DETECTOR
    assert SortOptions(detect=True, model="x/y").model == "x/y"
    with pytest.raises(OptionError, match="multi-label"):
        SortOptions(detect=True, multi_label=True)


def test_detect_needs_objects_and_not_labels_too(tmp_path, photo_folder):
    with pytest.raises(LabelError, match="either"):
        sort_images(photo_folder, tmp_path / "out", "a, b", detect="a rifle")
    with pytest.raises(LabelError, match="object"):
        sort_images(photo_folder, tmp_path / "out", detect=" ")


@pytest.mark.slow
def test_a_detection_move_killed_and_run_again_places_each_file_once_and_undo_restores(tmp_path, tiny_owlv2):
    from smart_sorter.cli import main
    from smart_sorter.pipeline.detector import Detector
    from smart_sorter.storage.journal import journal_path
    from smart_sorter.storage.placing import TEMP_PREFIX
    from tests.test_safety import count_done, make_photos, read_table, run_cli_in_subprocess, sha256, tree_hashes

    count = 120
    source = make_photos(tmp_path / "src", count, clashing_names=True)
    before = tree_hashes(source)
    out = tmp_path / "out"
    objects = "a cat, a dog"
    command = ["--source", str(source), "--destination", str(out), "--detect", objects, "--model", str(tiny_owlv2),
               "--threshold", "0.9", "--operation", "move", "--batch_size", "2", "--quiet"]  # fmt: skip
    process = run_cli_in_subprocess(*command)
    journal = journal_path(out)
    deadline = time.time() + 180
    while count_done(journal) < 20 and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = count_done(journal)
    assert 20 <= killed_after < count, "the run was not killed midway"
    assert not before - (tree_hashes(source) + tree_hashes(out))  # nothing lost even now

    detector = Detector(str(tiny_owlv2), device="cpu").load()
    detected, original = [], detector.detect
    detector.detect = lambda inputs, threshold: detected.append(len(inputs)) or original(inputs, threshold)
    result = sort_images(source, out, detect=objects, model=str(tiny_owlv2), threshold=0.9, operation="move",
                         batch_size=2, encoder=detector, progress_bar=False)  # fmt: skip
    assert sum(detected) <= count - killed_after  # files done before the kill are not looked at again
    assert not list(source.rglob("*.jpg"))
    assert not [path for path in out.rglob(f"{TEMP_PREFIX}*")]
    table = read_table(result.csv_path)
    assert len(table) == count and table["file"].is_unique
    assert sorted(table["sha256"]) == sorted(before.elements())
    for _, row in table.iterrows():  # each file once in its object's folder (or nothing found), once per copy
        copies = [copy for copy in row["copies"].split("; ") if copy]
        assert [copy.split("/")[0] for copy in copies] == (row["objects"].split("; ")[1:] if row["objects"] else [])
        for placed in [row["destination"], *copies]:
            assert sha256(out / placed) == row["sha256"]
    placed = sum(1 + len([c for c in row["copies"].split("; ") if c]) for _, row in table.iterrows())
    assert sum(tree_hashes(out).values()) == placed  # no file placed twice
    assert {row["destination"].split("/")[0] for _, row in table.iterrows()} > {"nothing found"}
    assert any(row["copies"] for _, row in table.iterrows())  # copies were made, and resumed, and undone
    assert json.loads(result.manifest_path.read_text())["status"] == "finished"
    assert main(["undo", str(out)]) == 0
    assert tree_hashes(source) == before
    assert not [path for path in out.rglob("*.jpg")]
    assert not (out / "nothing found").exists() and not (out / "a cat").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model_fixture", "threshold", "views_expected"),
    [("tiny_owlv2", 0.5, 7), ("tiny_grounding_dino", 0.3, 9)],
)  # OWLv2: the whole image and 3 x 2 tiles of 128 pixels (its input); Grounding DINO: 4 x 2 tiles of 115 (>= 64)
def test_tiled_detection_is_the_pipeline_on_each_tile_mapped_back_and_merged(
    request, model_fixture, threshold, views_expected, tmp_path
):
    from transformers import pipeline

    from smart_sorter.core.tiling import tile_boxes
    from smart_sorter.pipeline.detector import Detector

    model = request.getfixturevalue(model_fixture)
    folder = tmp_path / "big"
    folder.mkdir()
    image = noise_image(3).resize((300, 200))
    image.save(folder / "big.png")
    result = sort_images(folder, tmp_path / "found", detect=OBJECTS, model=str(model), threshold=threshold, tiles=2,
                         progress_bar=False)  # fmt: skip
    ours = json.loads(result.table["boxes"][0])
    views = tile_boxes(300, 200, 2, min_side=Detector(str(model)).input_side)
    assert len(views) == views_expected
    detector = pipeline("zero-shot-object-detection", model=str(model))
    per_view = [
        [{"label": f["label"], "score": f["score"], "box": [f["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")]}
         for f in detector(image.crop(view), candidate_labels=OBJECTS, threshold=threshold)]
        for view in views
    ]  # fmt: skip
    expected = merge_views(per_view, views)
    assert len(expected) < sum(len(found) for found in per_view)  # overlapping boxes were merged
    _assert_same_boxes(ours, expected)
    assert json.loads((tmp_path / "found" / "smart-sorter-run.json").read_text())["tiles"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("tiles", [0, 2])
def test_a_second_search_for_other_objects_skips_the_image_tower_and_finds_the_same(
    tiny_owlv2, odd_images, tmp_path, monkeypatch, tiles
):
    from smart_sorter.pipeline.detector import Detector

    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))  # an empty cache
    towers = []

    def run(objects: list[str], name: str, **options) -> pd.DataFrame:
        detector = Detector(str(tiny_owlv2), device="cpu").load()
        original = detector.image_side
        detector.image_side = lambda pixels: towers.append(len(pixels)) or original(pixels)
        return sort_images(odd_images, tmp_path / name, detect=objects, model=str(tiny_owlv2), threshold=0.5,
                           tiles=tiles, encoder=detector, progress_bar=False, **options).table  # fmt: skip

    run(["a cat", "a dog"], "first")
    assert towers and sum(towers) >= 5
    towers.clear()
    second = run(["a red car", "a dog", "a bird"], "second")
    assert towers == []  # every file's image side came from the cache: the image tower did not run
    uncached = run(["a red car", "a dog", "a bird"], "uncached", use_cache=False)
    assert sum(towers) >= 5
    assert second["file"].tolist() == uncached["file"].tolist()
    found = 0
    for cached_boxes, fresh_boxes in zip(second["boxes"], uncached["boxes"]):
        ours, theirs = json.loads(cached_boxes), json.loads(fresh_boxes)
        assert [(f["label"], f["box"]) for f in ours] == [(f["label"], f["box"]) for f in theirs]
        assert np.allclose([f["score"] for f in ours], [f["score"] for f in theirs], atol=1e-4, rtol=0)
        found += len(ours)
    assert found > 0
    assert second["label"].tolist() == uncached["label"].tolist()


def test_grounding_dino_reads_image_and_text_together_so_nothing_is_cached(tiny_grounding_dino, tmp_path):
    from smart_sorter.pipeline.detection_scorer import DetectionScorer
    from smart_sorter.pipeline.detector import Detector
    from smart_sorter.pipeline.embedding_cache import EmbeddingCache

    detector = Detector(str(tiny_grounding_dino), device="cpu").load()
    scorer = DetectionScorer(detector, parse_labels(OBJECTS, "{}", minimum=1), threshold=0.3,
                             cache=EmbeddingCache(tmp_path / "home"))  # fmt: skip
    assert scorer.cache is None and scorer.cached_hashes == frozenset()


def test_boxes_are_drawn_on_thumbnails_in_pixels_of_the_original(tmp_path):
    from smart_sorter.pipeline.thumbnails import BOX_COLOURS, thumbnail_jpeg

    Image.new("RGB", (400, 200), (128, 128, 128)).save(tmp_path / "grey.png")
    found = [{"label": "a flag", "score": 0.8, "box": [200, 100, 380, 190]}]
    plain = Image.open(io.BytesIO(thumbnail_jpeg(tmp_path / "grey.png", 100)))
    boxed = Image.open(io.BytesIO(thumbnail_jpeg(tmp_path / "grey.png", 100, found)))
    assert plain.size == boxed.size == (100, 50)
    left_edge = np.asarray(boxed)[30:45, 50]  # x 200 of 400 is 50 of 100; y 120-180 is 30-45
    assert np.abs(left_edge.astype(int) - BOX_COLOURS[0]).max(axis=1).min() < 40  # the box's colour
    assert np.abs(np.asarray(plain)[30:45, 50].astype(int) - 128).max() < 10  # not on the plain one
    assert np.abs(np.asarray(boxed)[5:20, 20].astype(int) - 128).max() < 10  # outside the box: untouched


@pytest.mark.slow
def test_the_report_and_the_form_show_boxes_of_a_detection_run(tiny_owlv2, odd_images, tmp_path):
    pytest.importorskip("ipywidgets")
    from smart_sorter.notebook.form import SorterApp
    from smart_sorter.pipeline.thumbnails import thumbnail_uri
    from smart_sorter.validation.html_report import write_report

    out = tmp_path / "found"
    app = SorterApp()
    app.source.value, app.destination.value = str(odd_images), str(out)
    app.model.value, app.labels.value = str(tiny_owlv2), "a cat, a dog, a red car"
    app.detect.value, app.threshold.value = True, 0.95
    app.start.click()
    assert app.wait(timeout=300), "the run did not end"
    assert "Finished" in app.status.value, app.status.value
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    assert len(table) == 5 and "boxes" in table.columns
    found = int((table["status"] == "sorted").sum())
    assert f"5 files sorted, {found} with objects" in app.status.value, app.status.value  # every file counted
    if found < 5:
        assert f"{5 - found} with nothing found" in app.status.value
    manifest = json.loads((out / "smart-sorter-run.json").read_text())
    assert manifest["options"]["detect"] is True and manifest["detect"] is True
    boxed = table[table["boxes"] != "[]"].iloc[0]
    with_boxes = thumbnail_uri(out / boxed["destination"], 120, json.loads(boxed["boxes"]))
    assert with_boxes in app.results.value  # the form's thumbnail has its boxes
    assert thumbnail_uri(out / boxed["destination"], 120) not in app.results.value
    report = write_report(out).read_text()
    assert thumbnail_uri(out / boxed["destination"], boxes=json.loads(boxed["boxes"])) in report
    if (table["status"] == "uncertain").any():
        assert "nothing found" in report and "<td>nothing found</td>" in app.counts.value


def _detection_results(tmp_path: Path) -> Path:
    """A detection run's output.csv (written by hand: the rows a run writes) in a destination with its manifest."""
    out = tmp_path / "found"
    out.mkdir()
    objects = parse_labels(["a rifle", "a flag"], "{}", minimum=1)
    found = {
        "a.jpg": [{"label": "a rifle", "score": 0.9, "box": [0, 0, 5, 5]}],
        "b.jpg": [{"label": "a rifle", "score": 0.5, "box": [0, 0, 5, 5]}, {"label": "a flag", "score": 0.4,
                                                                            "box": [1, 1, 4, 4]}],
        "c.jpg": [],
        "d.jpg": [{"label": "a flag", "score": 0.7, "box": [2, 2, 9, 9]}],
    }  # fmt: skip
    rows = [detection_row(name, f"sha-{name}", boxes, objects, threshold=0.1) for name, boxes in found.items()]
    pd.DataFrame(rows).to_csv(out / "output.csv", index=False)
    (out / "smart-sorter-run.json").write_text(json.dumps({"labels": ["a rifle", "a flag"], "detect": True}))
    return out


def test_evaluate_measures_presence_per_object(tmp_path, capsys):
    from smart_sorter.cli import main
    from smart_sorter.validation.presence import evaluate_presence

    out = _detection_results(tmp_path)
    truth = tmp_path / "truth.csv"
    truth.write_text("file,objects\na.jpg,a rifle\nb.jpg,A Flag\nc.jpg,none\nd.jpg,a flag; a rifle\n")
    result = evaluate_presence(out, truth)
    rifle, flag = result.per_object.loc["a rifle"], result.per_object.loc["a flag"]
    # a rifle: found in a, b (held by a, d): precision 1/2, recall 1/2; a flag: found in b, d, held by both
    assert (rifle["precision"], rifle["recall"], rifle["support"], rifle["found"]) == (0.5, 0.5, 2, 2)
    assert (flag["precision"], flag["recall"], flag["support"], flag["found"]) == (1.0, 1.0, 2, 2)
    by_rows = tmp_path / "rows.csv"  # the same truth, one row per object
    by_rows.write_text("file,label\na.jpg,a rifle\nb.jpg,a flag\nc.jpg,none\nd.jpg,a flag\nd.jpg,a rifle\n")
    assert evaluate_presence(out, by_rows).per_object.equals(result.per_object)
    assert main(["evaluate", "--results", str(out), "--truth", str(truth)]) == 0
    printed = capsys.readouterr().out
    assert "Presence of each object in 4 hand-labelled file(s)" in printed and "a rifle" in printed
    assert main(["report", str(out), "--truth", str(truth)]) == 0
    report = (out / "report.html").read_text()
    assert "Objects found, against hand labels" in report and "Evaluation against hand labels" not in report
    assert main(["evaluate", "--results", str(out), "--truth", str(truth), "--report", str(tmp_path / "r.html")]) == 0
    assert "Objects found, against hand labels" in (tmp_path / "r.html").read_text()


def test_the_python_evaluate_measures_presence_on_a_detection_run_by_itself(tmp_path):
    import smart_sorter
    from smart_sorter.validation.evaluation import Evaluation
    from smart_sorter.validation.presence import PresenceEvaluation, evaluate_presence

    out = _detection_results(tmp_path)
    truth = tmp_path / "truth.csv"
    truth.write_text("file,objects\na.jpg,a rifle\nb.jpg,a flag\nc.jpg,none\nd.jpg,a flag; a rifle\n")
    expected = evaluate_presence(out, truth).per_object
    for results in (out, out / "output.csv", pd.read_csv(out / "output.csv", keep_default_na=False)):
        measured = smart_sorter.evaluate(results, truth)
        assert isinstance(measured, PresenceEvaluation), type(measured)
        assert measured.per_object.equals(expected)
    assert "Presence of each object" in smart_sorter.evaluate(out, truth).summary()
    sorting = tmp_path / "sorting.csv"  # a label run's table is evaluated as before
    sorting.write_text("file,label,score,status,destination\na.jpg,a rifle,0.9,sorted,a rifle/a.jpg\n")
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,a rifle\n")
    assert isinstance(smart_sorter.evaluate(sorting, tmp_path / "labels.csv"), Evaluation)


@pytest.mark.slow
def test_query_by_example_equals_the_models_image_guided_detection(tiny_owlv2, odd_images, tmp_path):
    from types import SimpleNamespace

    import torch
    from transformers import AutoProcessor, Owlv2ForObjectDetection

    examples = tmp_path / "examples"
    (examples / "a dog").mkdir(parents=True)
    noise_image(10).resize((40, 30)).save(examples / "a cat.png")
    noise_image(11).resize((25, 25)).save(examples / "a dog" / "first.png")
    noise_image(12).resize((30, 20)).save(examples / "a dog" / "second.png")
    threshold = 0.6
    result = sort_images(odd_images, tmp_path / "found", detect=examples, model=str(tiny_owlv2), threshold=threshold,
                         progress_bar=False)  # fmt: skip
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["labels"] == ["a cat", "a dog"] and manifest["by_example"] is True

    model = Owlv2ForObjectDetection.from_pretrained(tiny_owlv2).eval()
    processor = AutoProcessor.from_pretrained(tiny_owlv2).image_processor
    queries = [("a cat", examples / "a cat.png"), ("a dog", examples / "a dog" / "first.png"),
               ("a dog", examples / "a dog" / "second.png")]  # fmt: skip
    total = 0
    for _, row in result.table.iterrows():
        image = Image.open(odd_images / row["file"]).convert("RGB")
        found = []
        for name, example in queries:
            inputs = processor(images=image, return_tensors="pt")
            query = processor(images=Image.open(example).convert("RGB"), return_tensors="pt")
            with torch.no_grad():
                output = model.image_guided_detection(inputs["pixel_values"], query["pixel_values"])
            boxes = processor.post_process_object_detection(
                SimpleNamespace(logits=output.logits, pred_boxes=output.target_pred_boxes), threshold=threshold,
                target_sizes=torch.tensor([[image.height, image.width]]),
            )[0]  # fmt: skip
            found += [{"label": name, "score": s.item(), "box": [int(v) for v in b.int().tolist()]}
                      for s, b in zip(boxes["scores"], boxes["boxes"])]  # fmt: skip
        expected = merge_views([found], [(0, 0, image.width, image.height)])  # a dog's two examples merged
        _assert_same_boxes(json.loads(row["boxes"]), expected)
        total += len(expected)
    assert total > 0


def test_examples_need_a_folder_of_images(tmp_path, photo_folder):
    with pytest.raises(LabelError, match="holds no image"):
        (tmp_path / "empty").mkdir()
        sort_images(photo_folder, tmp_path / "out", detect=tmp_path / "empty")
    with pytest.raises(OptionError, match="detection"):
        SortOptions(by_example=True)


@pytest.mark.slow
def test_a_half_precision_detector_runs_and_is_recorded(tiny_owlv2, odd_images, tmp_path):
    """bf16 on the CPU exercises the half-precision path that fp16 takes on CUDA (`auto` there)."""
    full = sort_images(odd_images, tmp_path / "fp32", detect=OBJECTS, model=str(tiny_owlv2), progress_bar=False)
    half = sort_images(odd_images, tmp_path / "bf16", detect=OBJECTS, model=str(tiny_owlv2), precision="bf16",
                       progress_bar=False)  # fmt: skip
    model = json.loads(half.manifest_path.read_text())["model"]
    assert model["dtype"] == "bfloat16" and model["precision"] == "bf16"
    assert json.loads(full.manifest_path.read_text())["model"]["dtype"] == "float32"
    assert half.table["status"].tolist() and set(half.table["status"]) <= {"sorted", "uncertain"}
    best = [max([box["score"] for box in json.loads(text)], default=0.0) for text in full.table["boxes"]]
    best_half = [max([box["score"] for box in json.loads(text)], default=0.0) for text in half.table["boxes"]]
    assert np.allclose(best, best_half, atol=0.1)  # close, not equal: bf16 keeps 8 bits of mantissa


def test_runners_up_are_the_other_objects_found_up_to_top_k():
    objects = parse_labels(["a", "b", "c"], "{}", minimum=1)
    found = [{"label": name, "score": score, "box": [0, 0, 1, 1]} for name, score in (("c", 0.9), ("a", 0.5))]
    row = detection_row("x.jpg", "s", found, objects, threshold=0.1, top_k=3)
    assert (row["label"], row["label_2"], row["score_2"], row["objects"]) == ("c", "a", 0.5, "c; a")
    short = detection_row("x.jpg", "s", found, objects, threshold=0.1, top_k=1)
    assert "label_2" not in short and short["objects"] == "c; a"  # every object found is still listed


@pytest.mark.slow
def test_the_command_line_detects_with_per_object_thresholds_and_refuses_to_resort(tiny_owlv2, odd_images, tmp_path,
                                                                                    capsys):  # fmt: skip
    from smart_sorter.cli import main

    objects = tmp_path / "objects.yaml"
    objects.write_text("a cat:\n  prompts: [a cat]\n  threshold: 0.9\na dog: a dog\n")
    out = tmp_path / "found"
    assert main(["--source", str(odd_images), "--destination", str(out), "--labels-file", str(objects), "--detect",
                 "--model", str(tiny_owlv2), "--threshold", "0.5", "--quiet"]) == 0  # fmt: skip
    table = pd.read_csv(out / "output.csv", keep_default_na=False)
    boxes = [box for text in table["boxes"] for box in json.loads(text)]
    assert boxes and all(box["score"] > (0.9 if box["label"] == "a cat" else 0.5) for box in boxes)
    assert any(box["label"] == "a dog" and box["score"] <= 0.9 for box in boxes)  # the cat's threshold is its own
    capsys.readouterr()
    assert main(["resort", str(out), "--labels", "a cow, a horse"]) == 1
    assert "detected objects" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["tiny_owlv2", "tiny_grounding_dino"])
def test_tiled_views_go_through_the_model_batch_size_at_a_time(request, model_fixture, odd_images, tmp_path):
    """A batch of 32 images at 3 x 3 tiles is 416 views: they are sent as a batch of images would be, not at once."""
    from smart_sorter.pipeline.detector import Detector

    model = request.getfixturevalue(model_fixture)
    passes: list[int] = []

    def run(name: str, batch_size: int) -> pd.DataFrame:
        detector = Detector(str(model), device="cpu").load()
        for method in ("image_side", "detect"):  # OWL models: the image tower; Grounding DINO: the whole model
            original = getattr(detector, method)
            setattr(detector, method, lambda values, *rest, original=original: passes.append(len(values))
                    or original(values, *rest))  # fmt: skip
        result = sort_images(odd_images, tmp_path / name, detect=OBJECTS, model=str(model), threshold=0.3, tiles=2,
                             batch_size=batch_size, encoder=detector, use_cache=False, progress_bar=False)  # fmt: skip
        return result.table

    small = run("small", 2)
    assert passes and max(passes) <= 2 and sum(passes) > 2 * len(small)  # several views per file, two at a time
    passes.clear()
    large = run("large", 64)
    assert max(passes) > 2
    assert small["file"].tolist() == large["file"].tolist()
    for few, many in zip(small["boxes"], large["boxes"]):
        ours, theirs = json.loads(few), json.loads(many)
        assert [(f["label"], f["box"]) for f in ours] == [(f["label"], f["box"]) for f in theirs]
        assert np.allclose([f["score"] for f in ours], [f["score"] for f in theirs], atol=1e-4, rtol=0)
