"""`code --sort-by FIELD`: files placed into their answer's folder through the sorting's own journaled
placement, copy or move, and reversed by `smart-sorter undo`. A kill at every journal line (and halfway
through it), then the same command: each file placed once, every row naming a file that holds its bytes;
then undo (or undo at once) puts the source back as it was.

The kill matrix drives the run with a deterministic stand-in coder (the answer is the image's dominant
colour channel), as the sorting's matrix uses its fake encoder: it checks the bookkeeping, not a model.
The real model's path through --sort-by is in the end-to-end tests.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from smart_sorter import SmartSorterError
from smart_sorter.cli import main
from smart_sorter.core.coding import CODING_FILE_NAME, CODING_JOURNAL_NAME, Coded
from smart_sorter.errors import DestinationError, OptionError, SourceError
from smart_sorter.pipeline.vlm_images import image_for_model
from smart_sorter.runs.coding import code_images
from smart_sorter.runs.undo import undo_run
from smart_sorter.storage.journal import read_journal
from smart_sorter.validation.coding_report import write_coding_report
from smart_sorter.validation.coding_sampling import sample_coding
from tests.test_evidence import Evidence, killed_at, read_table, snapshot

CODEBOOK = {"colour": {"description": "Which colour dominates?", "options": ["red", "green", "blue"]}}
COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


class ColourCoder:
    """Answers `colour` with the image's dominant channel; counts what it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def load(self) -> ColourCoder:
        return self

    def describe(self) -> dict[str, Any]:
        return {"backend": "test", "id": "colour-coder"}

    def prepare(self, data: bytes) -> Any:
        return np.asarray(image_for_model(data, 64), dtype=np.float32)  # DecodeError for what is not an image

    def prepare_frame(self, image: Any) -> Any:
        return np.asarray(image, dtype=np.float32)

    def code(self, images: list[Any], codebook) -> list[Coded]:
        self.asked += len(images)
        names = list(COLOURS)
        answers = [names[int(np.argmax(image.reshape(-1, 3).mean(axis=0)))] for image in images]
        return [Coded({"colour": answer}, raw=f'{{"colour": "{answer}"}}', tokens_in=10, tokens_out=3, attempts=1)
                for answer in answers]  # fmt: skip


def write_source(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, (name, colour) in enumerate([*COLOURS.items(), ("red", (220, 10, 40))]):
        Image.new("RGB", (24 + index, 20), colour).save(folder / f"{name}_{index}.png")
    Image.new("RGB", (20, 20), COLOURS["blue"]).save(folder / "nested.png")
    (folder / "sub").mkdir(exist_ok=True)
    Image.new("RGB", (22, 20), COLOURS["green"]).save(folder / "sub" / "green_sub.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def code(source: Path, out: Path, operation: str = "copy", coder: ColourCoder | None = None, **options):
    return code_images(source, CODEBOOK, out, coder=coder or ColourCoder(), sort_by="colour", operation=operation,
                       progress_bar=False, **options)  # fmt: skip


def check_coded(evidence: Evidence, operation: str) -> None:
    """coding.csv has one row per file; each placed row names a file holding its bytes, each file once."""
    rows = read_table(evidence.out / CODING_FILE_NAME)
    assert rows["file"].is_unique and sorted(rows["file"]) == sorted(evidence.before), rows["file"].tolist()
    out = snapshot(evidence.out)
    for row in rows.itertuples():
        if row.status == "coded":
            assert row.destination.split("/")[0] == row.colour
            assert out.get(row.destination) == row.sha256, f"{row.file}: not at {row.destination}"
    images = sorted(value for key, value in out.items() if key.endswith(".png"))
    assert images == sorted(row.sha256 for row in rows.itertuples() if row.destination), "placed twice or lost"
    left = snapshot(evidence.source)
    if operation == "copy":
        assert left == evidence.before
    else:
        assert sorted(left) == ["broken.png"]


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["copy", "move"])
def test_a_kill_at_every_journal_line_then_the_same_command_and_undo_lose_nothing(tmp_path, operation):
    line, when, kills = 1, "after", 0
    while True:
        for then in ("the same command, then undo", "undo at once"):
            source, out = write_source(tmp_path / f"s{line}{when}{then[0]}"), tmp_path / f"o{line}{when}{then[0]}"
            evidence = Evidence.take(source, out)
            work = lambda source=source, out=out: code(source, out, operation)  # noqa: E731
            if not killed_at(work, lambda n, event, fields, line=line: n == line, when):
                assert kills > 10, "the run wrote fewer journal lines than expected"
                return
            kills += 1
            if then.startswith("the same command"):
                coder = ColourCoder()
                code(source, out, operation, coder=coder)
                check_coded(evidence, operation)
                assert coder.asked <= 7  # files answered before the kill are not asked again
            try:
                undone = undo_run(out)
            except DestinationError as error:  # killed before the run was journaled: nothing placed
                assert "No smart-sorter run is recorded" in str(error), str(error)
                assert read_journal(out / ".smart-sorter" / CODING_JOURNAL_NAME).settings is None
            else:
                assert undone.kind == "coding"
            assert snapshot(source) == evidence.before
            assert not [key for key in snapshot(out) if key.endswith(".png")]
        line, when = (line, "torn") if when == "after" else (line + 1, "after")


def test_sort_by_copy_then_undo_through_the_command_line(tmp_path, capsys):
    source, out = write_source(tmp_path / "source"), tmp_path / "out"
    evidence = Evidence.take(source, out)
    result = code(source, out)
    check_coded(evidence, "copy")
    assert result.status_counts == {"coded": 6, "error": 1}
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == [".smart-sorter", "blue", "green", "red"]
    assert main(["undo", str(out)]) == 0
    said = capsys.readouterr().out
    assert "removed 6 copy(ies)" in said and "coding.csv and manifest stay" in said
    assert not [key for key in snapshot(out) if key.endswith(".png")] and snapshot(source) == evidence.before
    assert [path.name for path in out.glob("coding-undone-*.csv")]
    assert main(["undo", str(out)]) == 1  # nothing recorded any more
    assert "No smart-sorter run is recorded" in capsys.readouterr().err


def test_sort_by_move_then_undo_puts_every_file_back(tmp_path):
    source, out = write_source(tmp_path / "source"), tmp_path / "out"
    evidence = Evidence.take(source, out)
    code(source, out, "move")
    check_coded(evidence, "move")
    again = ColourCoder()
    assert code(source, out, "move", coder=again).already_done and again.asked == 0
    report = write_coding_report(out, tmp_path / "report.html")  # the moved files are shown from their folders
    assert report.read_text().count("data:image/jpeg;base64") >= 6
    sample = sample_coding(out, tmp_path / "sheet.csv", 3)
    assert len(list(sample.copies.iterdir())) == 3
    undone = undo_run(out)
    assert undone.restored == 6 and snapshot(source) == evidence.before


def test_move_and_copy_are_refused_or_explained_as_in_sorting(tmp_path, capsys):
    source = write_source(tmp_path / "source")
    with pytest.raises(OptionError, match="operation move goes with sort_by"):
        code_images(source, CODEBOOK, tmp_path / "out", coder=ColourCoder(), operation="move", progress_bar=False)
    with pytest.raises(SystemExit) as exited:
        main(["code", str(source), "--ask", "Red?", "--destination", str(tmp_path / "out"), "--operation", "move"])
    assert exited.value.code == 2 and "operation move goes with sort_by" in capsys.readouterr().err
    capsys.readouterr()
    sorted_out = tmp_path / "sorted"
    (sorted_out / ".smart-sorter").mkdir(parents=True)
    (sorted_out / ".smart-sorter" / "journal.jsonl").write_text("")
    with pytest.raises(DestinationError, match="holds a sorting run"):
        code(source, sorted_out)
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        os.chmod(source / "sub", stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(SourceError, match="read-only"):
                code(source, tmp_path / "out", "move")
        finally:
            os.chmod(source / "sub", stat.S_IRWXU)
        assert not (tmp_path / "out").exists()


def test_undo_of_a_coding_that_placed_nothing_says_so(tmp_path):
    source = write_source(tmp_path / "source")
    code_images(source, CODEBOOK, tmp_path / "out", coder=ColourCoder(), progress_bar=False)
    with pytest.raises(SmartSorterError, match="placed no file"):
        undo_run(tmp_path / "out")
