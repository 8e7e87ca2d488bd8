"""The Python API: what sort_images returns and how a run can be stopped."""

import json
import threading

import pandas as pd

from smart_sorter import sort_images
from smart_sorter.pipeline.finding import find_images
from smart_sorter.pipeline.reading import prepared_stream


def test_the_result_table_is_output_csv(photo_folder, tiny_clip, tmp_path):
    result = sort_images(photo_folder, tmp_path / "out", "cat,dog", model=str(tiny_clip), progress_bar=False)
    on_disk = pd.read_csv(result.csv_path)
    assert list(result.table.columns) == list(on_disk.columns)
    assert list(result.table["file"]) == list(on_disk["file"])
    assert result.table["score"].tolist() == on_disk["score"].tolist()  # unrounded floats survive the CSV
    assert sum(result.label_counts.values()) == 6 and result.status_counts == {"sorted": 6}
    assert "Sorted 6 of 6 files" in result.summary()


def test_stop_ends_the_run_after_the_current_batch(photo_folder, tiny_clip, tmp_path):
    stop = threading.Event()
    notes = []
    stop.set()  # asked before the first batch ends: that batch is finished and recorded, no more
    result = sort_images(
        photo_folder,
        tmp_path / "out",
        "cat,dog",
        model=str(tiny_clip),
        batch_size=2,
        progress_bar=False,
        stop=stop,
        notify=notes.append,
    )
    assert len(result.table) == 2 and result.stopped_early
    assert len(list((tmp_path / "out").rglob("*.jpg"))) == 2
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["status"] == "stopped"


def test_progress_is_reported_after_each_batch(photo_folder, tiny_clip, tmp_path):
    seen = []
    sort_images(
        photo_folder, tmp_path / "out", "cat,dog", model=str(tiny_clip), batch_size=2, progress_bar=False,
        on_progress=seen.append,
    )  # fmt: skip
    assert [progress.done for progress in seen] == [0, 2, 4, 6, 6]
    assert {progress.total for progress in seen} == {6}
    assert sum(seen[-1].label_counts.values()) == 6 and set(seen[-1].label_counts) == {"cat", "dog"}
    assert seen[-2].rate > 0 and seen[-2].seconds_left == 0
    assert seen[1].seconds_left is not None and seen[1].seconds_left > 0


def test_prepared_stream_keeps_file_order_and_records_failures(tmp_path):
    for index in range(10):
        (tmp_path / f"{index:02d}.jpg").write_bytes(bytes([index]) * (index + 1))
    files = find_images(tmp_path).files

    def prepare(data: bytes):
        from smart_sorter.errors import DecodeError

        if data[0] % 3 == 0:
            raise DecodeError(f"bad {data[0]}")
        return len(data)

    items = list(prepared_stream(files, prepare, workers=3, lookahead=4))
    assert [item.found.relative for item in items] == [f"{i:02d}.jpg" for i in range(10)]
    assert [item.error for item in items if item.error] == ["bad 0", "bad 3", "bad 6", "bad 9"]
    assert [item.pixels for item in items if not item.error] == [2, 3, 5, 6, 8, 9]
