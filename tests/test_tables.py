"""output.csv and the run manifest: never written over a file that is not ours, names kept as they are."""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from smart_sorter.core.rows import BASE_COLUMNS, csv_columns
from smart_sorter.errors import DestinationError, SourceError
from smart_sorter.options import MANIFEST_FILE_NAME
from smart_sorter.storage.tables import (
    CsvLog,
    label_folders_of,
    placed_rows,
    read_manifest,
    read_results,
    shown_row,
    shown_text,
    write_manifest,
)

COLUMNS = csv_columns(2)
NOT_UTF8 = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")  # a Latin-1 name, as Python holds it


def row(file: str, label: str = "cat", score: float = 0.9, **fields) -> dict:
    return {"file": file, "label": label, "score": score, "destination": f"{label}/{file}", "status": "sorted",
            "error": "", "sha256": "ab" * 32, "prompt": f"a photo of a {label}", "action": "copied",
            "label_2": "dog", "score_2": None if score is None else 1 - score, **fields}  # fmt: skip


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_a_new_log_writes_its_header_then_each_row_as_it_comes(tmp_path):
    path = tmp_path / "output.csv"
    log = CsvLog(path, COLUMNS)
    assert lines(path) == [",".join(COLUMNS)]
    log.write([row("a.jpg")])
    assert len(lines(path)) == 2  # on disk before the log is closed: a crash keeps it
    log.write([row("b.jpg"), row("c.jpg", "dog", 0.7)])
    log.close()
    table = read_results(path)
    assert list(table["file"]) == ["a.jpg", "b.jpg", "c.jpg"] and list(table.columns) == list(COLUMNS)


def test_a_new_log_never_writes_over_a_file_that_is_there(tmp_path):
    path = tmp_path / "output.csv"
    path.write_text("the user's own notes\n", encoding="utf-8")
    with pytest.raises(DestinationError, match="already exists and was not written by this run"):
        CsvLog(path, COLUMNS)
    with pytest.raises(DestinationError, match="already exists"):
        CsvLog(path, COLUMNS, replace_own=True)  # not a table of ours: refused as well
    assert path.read_text(encoding="utf-8") == "the user's own notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output.csv"]


def test_a_table_holding_only_this_logs_header_is_continued(tmp_path):
    """A run killed after writing its header and before journaling itself left it: the next run goes on
    with it; a header with anything more, or another header, is still refused."""
    path = tmp_path / "output.csv"
    CsvLog(path, COLUMNS).close()
    log = CsvLog(path, COLUMNS)
    log.write([row("a.jpg")])
    log.close()
    assert lines(path) == [",".join(COLUMNS), lines(path)[1]] and list(read_results(path)["file"]) == ["a.jpg"]
    for other in (path, tmp_path / "other-columns.csv"):
        if other != path:
            CsvLog(other, csv_columns(3)).close()
        before = other.read_bytes()
        with pytest.raises(DestinationError, match="already exists"):
            CsvLog(other, COLUMNS)
        assert other.read_bytes() == before


def test_replace_own_replaces_only_a_table_of_ours(tmp_path):
    path = tmp_path / "plan.csv"
    first = CsvLog(path, COLUMNS, replace_own=True)
    first.write([row("old.jpg")])
    first.close()
    second = CsvLog(path, COLUMNS, replace_own=True)  # a dry run again: its plan replaces the last one whole
    second.write([row("new.jpg")])
    second.close()
    assert list(read_results(path)["file"]) == ["new.jpg"]
    assert not path.with_name("plan.csv.partial").exists()


def test_a_resumed_log_is_written_whole_from_its_rows_then_appended_to(tmp_path):
    path = tmp_path / "output.csv"
    path.write_text(",".join(COLUMNS) + "\na.jpg,cat,0.9,cat/a.jpg,sorted,,torn li", encoding="utf-8")  # killed
    log = CsvLog(path, COLUMNS, resumed_rows=[row("a.jpg"), row("b.jpg", "dog", 0.6)])
    log.write([row("c.jpg")])
    log.close()
    table = read_results(path)
    assert list(table["file"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert list(table["score"]) == [0.9, 0.6, 0.9]
    assert not path.with_name("output.csv.partial").exists()
    assert lines(path)[0] == ",".join(COLUMNS)  # one header


def test_a_log_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(DestinationError, match="Cannot write"):
        CsvLog(tmp_path / "missing" / "output.csv", COLUMNS)


def test_shown_text_escapes_only_bytes_that_are_not_utf8():
    assert shown_text(NOT_UTF8) == "caf\\xe9.jpg"
    for name in ("café.jpg", "фото 1.jpg", "a\\xe9.jpg", "", "🙂.png"):
        assert shown_text(name) == name
    shown = shown_row(row(NOT_UTF8, destination=f"cat/{NOT_UTF8}"))
    assert shown["file"] == "caf\\xe9.jpg" and shown["destination"] == "cat/caf\\xe9.jpg"
    assert shown["score"] == 0.9 and shown["label"] == "cat"


def test_a_name_that_is_not_utf8_leaves_output_csv_valid_utf8(tmp_path):
    path = tmp_path / "output.csv"
    log = CsvLog(path, COLUMNS)
    log.write([row(NOT_UTF8)])
    log.close()
    path.read_bytes().decode("utf-8")  # raises if not
    assert read_results(path)["file"].tolist() == ["caf\\xe9.jpg"]


def test_the_manifest_keeps_names_that_are_not_utf8_and_reads_back(tmp_path):
    manifest = {"status": "finished", "skipped": [{"file": NOT_UTF8, "reason": "empty file"}], "labels": ["chat"]}
    path = tmp_path / MANIFEST_FILE_NAME
    write_manifest(path, manifest)
    text = path.read_bytes().decode("utf-8")  # valid UTF-8 ...
    assert "caf\\udce9.jpg" in text  # ... with the byte as a JSON escape of the surrogate
    assert read_manifest(tmp_path) == manifest
    assert json.loads(text)["skipped"][0]["file"].encode("utf-8", "surrogateescape") == b"caf\xe9.jpg"
    write_manifest(path, {**manifest, "status": "stopped"})  # written whole over its own last version
    assert read_manifest(tmp_path)["status"] == "stopped"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_FILE_NAME]


def test_no_manifest_reads_as_empty(tmp_path):
    assert read_manifest(tmp_path) == {}


@pytest.fixture
def output_csv(tmp_path) -> Path:
    path = tmp_path / "out" / "output.csv"
    path.parent.mkdir()
    log = CsvLog(path, COLUMNS)
    log.write([row("a.jpg"), row("NA", "dog", 0.25), row("b.jpg", "", None, status="error", destination="",
                                                           error="cannot decode", action="")])  # fmt: skip
    log.close()
    return path


def test_read_results_from_a_path_or_its_folder(output_csv):
    for given in (output_csv, output_csv.parent, str(output_csv)):
        table = read_results(given)
        assert table["file"].tolist() == ["a.jpg", "NA", "b.jpg"]  # text stays text, "NA" too
        assert table["score"].tolist()[:2] == [0.9, 0.25] and pd.isna(table["score"].iloc[2])
        assert table["score_2"].dtype.kind == "f" and table["error"].tolist()[2] == "cannot decode"


def test_read_results_from_a_dataframe_or_a_result_is_a_copy(output_csv):
    original = read_results(output_csv)
    for given in (original, SimpleNamespace(table=original)):
        copy = read_results(given)
        copy.loc[0, "label"] = "changed"
        assert original.loc[0, "label"] == "cat"


def test_read_results_names_what_is_wrong_with_other_tables(tmp_path):
    other = tmp_path / "notes.csv"
    other.write_text("name,colour\nx,red\n", encoding="utf-8")
    with pytest.raises(SourceError, match="is not a smart-sorter output.csv: it has no file, label, status"):
        read_results(other)
    with pytest.raises(SourceError, match="No results table at .*output.csv"):
        read_results(tmp_path)  # a folder without output.csv


def test_placed_rows_and_their_label_folders(output_csv):
    placed = placed_rows(read_results(output_csv))
    assert placed["file"].tolist() == ["a.jpg", "NA"]
    assert label_folders_of(placed).tolist() == ["cat", "dog"]
    assert BASE_COLUMNS[:3] == ("file", "label", "score")
