"""The command line end to end, in-process, with tiny models loaded by path."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.core.rows import csv_columns
from smart_sorter.pipeline.embedding_cache import EmbeddingCache
from smart_sorter.storage.lock import DestinationLock
from tests.factories import noise_image

LABELS = (
    "screenshot of a newspaper article, a picture of a person, a picture of a politician,"
    " memes and computer-generated images"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str) -> int:
    return main([str(arg) for arg in args])


def sort(source: Path, out: Path, model: Path, *extra: str, labels: str = "a,b") -> int:
    """The command line with the usual arguments, quiet."""
    return run("--source", source, "--destination", out, "--labels", labels, "--model", model, "--quiet", *extra)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def test_sorts_the_telegram_corpus_byte_identical(corpus, tiny_clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert sort(corpus, out, tiny_clip, labels=LABELS) == 0
    table = read_table(out / "output.csv")
    assert tuple(table.columns) == csv_columns(3)
    assert len(table) == 32 and set(table["status"]) == {"sorted"}
    for _, row in table.iterrows():
        source = corpus / row["file"]
        placed = out / row["destination"]
        assert placed.read_bytes() == source.read_bytes()
        assert row["sha256"] == sha256(source)
        assert placed.parent.name == row["label"]
        assert 0.0 <= float(row["score"]) <= 1.0
        assert float(row["score"]) >= float(row["score_2"]) >= float(row["score_3"])
    placed_files = [p for p in out.rglob("*.jpg")]
    assert len(placed_files) == 32
    summary = capsys.readouterr().out
    assert "Sorted 32 of 32 files" in summary and "output.csv" in summary
    manifest = json.loads((out / "smart-sorter-run.json").read_text())
    assert manifest["status"] == "finished" and manifest["files_found"] == 32
    assert manifest["model"]["id"] == str(tiny_clip) and manifest["model"]["kind"] == "dual"
    assert sum(manifest["label_counts"].values()) == 32


def test_move_empties_the_source_and_every_hash_arrives(photo_folder, tiny_clip, tmp_path):
    before = {p.relative_to(photo_folder).as_posix(): sha256(p) for p in photo_folder.rglob("*.jpg")}
    out = tmp_path / "out"
    assert sort(photo_folder, out, tiny_clip, "--operation", "move") == 0
    assert not list(photo_folder.rglob("*.jpg"))
    table = read_table(out / "output.csv")
    assert dict(zip(table["file"], table["sha256"])) == before
    assert sorted(sha256(out / d) for d in table["destination"]) == sorted(before.values())


def test_unreadable_files_become_error_rows_and_the_run_finishes(photo_folder, tiny_clip, tmp_path):
    (photo_folder / "empty.jpg").write_bytes(b"")
    (photo_folder / "text.png").write_text("not a picture")
    good = (photo_folder / "photo_0.jpg").read_bytes()
    (photo_folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out"
    assert sort(photo_folder, out, tiny_clip, "--batch_size", "2") == 0
    table = read_table(out / "output.csv").set_index("file")
    assert len(table) == 9
    assert table.loc["empty.jpg", "error"] == "empty file (0 bytes)"
    assert table.loc["text.png", "error"] == "not an image file"
    assert "truncated" in table.loc["truncated.jpg", "error"]
    errors = table[table["status"] == "error"]
    assert set(errors.index) == {"empty.jpg", "text.png", "truncated.jpg"}
    assert (errors["destination"] == "").all() and (errors["label"] == "").all()
    assert (table[table["status"] == "sorted"]["destination"] != "").all()
    assert (photo_folder / "empty.jpg").exists()  # never touched


def test_strange_file_names_round_trip_through_the_csv(tmp_path, tiny_clip):
    source = tmp_path / "src"
    source.mkdir()
    names = [
        "with space.jpg",
        "comma,name.jpg",
        "new\nline.jpg",
        'quote".jpg',
        "=SUM(A1).jpg",
        "-dash.jpg",
        "фото.jpg",
        "写真.jpg",
    ]
    for index, name in enumerate(names):
        noise_image(index).save(source / name, format="JPEG")
    out = tmp_path / "out"
    assert sort(source, out, tiny_clip) == 0
    table = read_table(out / "output.csv")
    assert sorted(table["file"]) == sorted(names)
    for _, row in table.iterrows():
        assert (out / row["destination"]).read_bytes() == (source / row["file"]).read_bytes()


def test_labels_file_records_the_matched_prompt(photo_folder, tiny_clip, tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text("noise:\n  - random noise\n  - static on a screen\nphoto:\n  - a photo of a person\n")
    out = tmp_path / "out"
    assert run("--source", photo_folder, "--destination", out, "--labels-file", labels, "--model", tiny_clip,
               "--top_k", "2", "--quiet") == 0  # fmt: skip
    table = read_table(out / "output.csv")
    prompts = {"noise": {"random noise", "static on a screen"}, "photo": {"a photo of a person"}}
    assert all(row["prompt"] in prompts[row["label"]] for _, row in table.iterrows())
    assert tuple(table.columns) == csv_columns(2)


def test_destination_inside_the_source_is_not_sorted_again(photo_folder, tiny_clip):
    out = photo_folder / "sorted"
    command = ["--source", photo_folder, "--destination", out, "--labels", "a,b", "--model", tiny_clip, "--quiet"]
    assert run(*command) == 0
    assert run(*command) == 0  # the same command again finds its own run finished: nothing twice
    assert len(read_table(out / "output.csv")) == 6
    assert len([p for p in out.rglob("*.jpg")]) == 6


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note: ")]
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing source", "does not exist"),
        ("no images", "No images found"),
        ("one label", "At least two labels"),
        ("unreachable model", "HF_HUB_OFFLINE"),
        ("source inside destination", "lies inside the destination"),
        ("label taking a sorter's name", "a name the sorter keeps for its own files"),
    ],
)
def test_user_errors_are_one_line_messages(case, message, photo_folder, tiny_clip, tmp_path, capsys):
    args = {"source": photo_folder, "destination": tmp_path / "out", "labels": "a,b", "model": tiny_clip}
    extra: list[str] = []
    if case == "missing source":
        args["source"] = tmp_path / "nowhere"
    elif case == "no images":
        args["source"] = tmp_path / "empty"
        args["source"].mkdir()
        (args["source"] / "readme.txt").write_text("hi")
    elif case == "one label":
        args["labels"] = "cats"
    elif case == "unreachable model":
        args["model"] = "nobody/no-model-here"
    elif case == "source inside destination":
        args["destination"] = photo_folder.parent
    elif case == "label taking a sorter's name":
        args["labels"] = "Output.CSV, b"
    argv = [item for key, value in args.items() for item in (f"--{key}", value)] + extra + ["--quiet"]
    assert run(*argv) == 1
    assert message in one_line_error(capsys)
    assert sorted(p.name for p in photo_folder.rglob("*.jpg")) == [f"photo_{i}.jpg" for i in range(6)]
    assert not (tmp_path / "out").exists()  # refused before anything was touched


def test_an_existing_output_csv_is_never_overwritten(photo_folder, tiny_clip, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "output.csv").write_text("precious")
    assert sort(photo_folder, out, tiny_clip) == 1
    assert "already exists" in one_line_error(capsys)
    assert (out / "output.csv").read_text() == "precious"


def test_bad_arguments_exit_non_zero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", "x"])
    assert exit_info.value.code == 2


def test_python_dash_m_and_help_work_without_loading_torch():
    probe = (
        "import sys, runpy\nsys.argv = ['smart-sorter', '--help']\n"
        "try:\n    runpy.run_module('smart_sorter', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "--labels-file" in done.stdout and "--preprocess" in done.stdout
    assert done.stdout.strip().endswith("False")
    version = subprocess.run([sys.executable, "-m", "smart_sorter", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("smart-sorter ")


def test_long_labels_are_warned_about(photo_folder, tiny_clip, tmp_path, capsys):
    labels = "short," + "a very long label " * 6
    assert sort(photo_folder, tmp_path / "o", tiny_clip, labels=labels) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "'... is 107 characters long" in notes[0]


@pytest.mark.slow
def test_a_trained_model_sorts_held_back_shapes_correctly(toy_clip, tmp_path):
    from tests.toy_clip import TOY_LABELS, write_shapes

    truth = write_shapes(tmp_path / "shapes", 60, seed=2024)
    out = tmp_path / "sorted"
    assert sort(tmp_path / "shapes", out, toy_clip, "--batch_size", "16", labels=",".join(TOY_LABELS)) == 0
    placed = {path.name: path.parent.name for path in out.rglob("shape_*")}
    assert placed.keys() == truth.keys()
    accuracy = sum(placed[name] == label for name, label in truth.items()) / len(truth)
    assert accuracy >= 0.9, accuracy


def test_the_original_smart_image_sorter_command_runs_unchanged(photo_folder, tiny_clip, tmp_path, monkeypatch):
    """Its README's command, flag for flag; two runs from one working folder each keep their own table."""
    monkeypatch.chdir(tmp_path)
    for destination in ("labeled", "labeled-again"):
        assert main(["--source", str(photo_folder), "--destination", destination, "--labels", "a cat,a dog",
                     "--model", str(tiny_clip), "--operation", "copy", "--output_file", "output.csv",
                     "--batch_size", "4", "--verbose=True"]) == 0  # fmt: skip
        table = read_table(tmp_path / destination / "output.csv")
        assert len(table) == 6 and set(table["status"]) == {"sorted"}
    assert not (tmp_path / "output.csv").exists()  # not in the working folder, where the second run would meet it


def test_another_run_in_the_destination_is_told_in_command_line_words(photo_folder, tiny_clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert sort(photo_folder, out, tiny_clip, labels="a cat,a dog") == 0
    capsys.readouterr()
    assert sort(photo_folder, out, tiny_clip, labels="a red car,a blue car") == 1
    message = one_line_error(capsys)
    assert f'`smart-sorter resort "{out.resolve()}" --labels "..."`' in message
    assert "smart_sorter.resort(" not in message
    assert main(["resort", str(out), "--labels", "a red car,a blue car", "--quiet"]) == 0  # the advice works
    assert set(read_table(out / "output.csv")["label"]) <= {"a red car", "a blue car"}


def test_a_busy_destination_is_one_sentence(photo_folder, tiny_clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert sort(photo_folder, out, tiny_clip) == 0
    capsys.readouterr()
    with DestinationLock(out, "sorting run"):
        assert main(["undo", str(out)]) == 1
    message = one_line_error(capsys)
    assert "is in use by a sorting run (process" in message and "start the undo again; nothing was changed" in message
    assert len(read_table(out / "output.csv")) == 6  # the run is still there


def test_a_busy_destination_is_said_before_its_run_or_model_is_looked_at(photo_folder, tiny_clip, tmp_path, capsys):
    """Another source (or other labels) into a destination a run is working on: busy, not 'another run'."""
    out = tmp_path / "out"
    assert sort(photo_folder, out, tiny_clip) == 0
    capsys.readouterr()
    with DestinationLock(out, "sorting run"):
        assert sort(photo_folder, out, tiny_clip, labels="a red car,a blue car") == 1
        assert "is in use by a sorting run (process" in one_line_error(capsys)
        assert sort(photo_folder, out, "nobody/no-such-model") == 1  # not even the model is loaded
        assert "is in use by a sorting run (process" in one_line_error(capsys)


def test_cache_clear_says_what_it_cleared(photo_folder, tiny_clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    assert sort(photo_folder, tmp_path / "out", tiny_clip) == 0
    capsys.readouterr()
    assert main(["cache", "--clear"]) == 0
    said = capsys.readouterr().out
    assert "Cleared 6 embeddings of 1 model and the hashes of 6 files" in said
    assert f"the cache file {tmp_path / 'home' / 'embeddings.sqlite'} is now" in said and " MB" in said
    store = EmbeddingCache()
    assert store.stats()["models"] == {}
    store.close()


def test_labels_the_model_confuses_are_one_note(photo_folder, tiny_clip, tmp_path, capsys):
    """The random tiny model finds several near-identical pairs among these: one note names them all."""
    assert sort(photo_folder, tmp_path / "out", tiny_clip, labels="a cat, a cat!, a dog, a dog!") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    similar = [note for note in notes if "nearly the same" in note]
    assert len(similar) == 1 and similar[0].count("/") >= 2, notes
    assert len(notes) <= 2  # the labels' own advice is one note too
