"""Agreement of a coding with human coders, per field (fast: tables written by the test, no model)."""

from __future__ import annotations

import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.errors import SourceError
from smart_sorter.validation.coding_evaluation import evaluate_coding

CODEBOOK = {
    "image_type": {"description": "Kind?", "options": ["photo", "meme", "screenshot"]},
    "people": {"description": "How many?", "type": "number"},
    "text_present": {"description": "Text?", "type": "yes/no"},
    "topics": {"description": "Topics?", "type": "several options", "options": ["war", "sport"]},
}


def _coding(tmp_path):
    rows = [
        ("a.jpg", "photo", "2", "yes", "war", "coded"),
        ("b.jpg", "meme", "0", "no", "sport; war", "coded"),
        ("c.jpg", "photo", "5", "yes", "", "coded"),
        ("d.jpg", "screenshot", "1", "yes", "war", "coded"),
        ("e.jpg", "", "", "", "", "error"),
    ]
    table = pd.DataFrame(rows, columns=["file", "image_type", "people", "text_present", "topics", "status"])
    path = tmp_path / "coding.csv"
    table.to_csv(path, index=False)
    human = pd.DataFrame(
        [("a.jpg", "photo", "2", "yes", "war"), ("b.jpg", "meme", "1", "no", "war; sport"),
         ("c.jpg", "meme", "5", "yes", ""), ("d.jpg", "screenshot", "1", "", "war"),
         ("e.jpg", "photo", "0", "no", ""), ("zz.jpg", "photo", "0", "no", "")],
        columns=["file", "image_type", "people", "text_present", "topics"],
    )  # fmt: skip
    human_path = tmp_path / "human.csv"
    human.to_csv(human_path, index=False)
    return path, human_path


def test_each_field_is_compared_as_its_type_asks(tmp_path):
    coding, human = _coding(tmp_path)
    result = evaluate_coding(coding, human, CODEBOOK, bootstrap=50)
    table = result.table
    assert table.loc["image_type", "accuracy"] == pytest.approx(3 / 4)
    assert table.loc["image_type", "compared"] == 4
    assert 0 < table.loc["image_type", "kappa"] < 1
    assert table.loc["text_present", "compared"] == 3  # an empty hand cell is not counted
    assert table.loc["text_present", "accuracy"] == 1.0
    assert table.loc["people", "mean_absolute_error"] == pytest.approx(1 / 4)
    assert table.loc["topics", "accuracy"] == 1.0  # the same set, in another order
    assert result.unanswered == ["e.jpg"] and result.unmatched == ["zz.jpg"]
    text = result.summary()
    assert "image_type (options, 4 files): agreement 0.750 [" in text and "kappa" in text


def test_the_command_reads_the_codebook_the_coding_recorded_or_asks_for_it(tmp_path, capsys):
    coding, human = _coding(tmp_path)
    assert main(["evaluate", "--coding", str(coding), "--truth", str(human), "--bootstrap", "0"]) == 1
    assert "give it (--codebook)" in capsys.readouterr().err
    codebook = tmp_path / "codebook.json"
    import json

    codebook.write_text(json.dumps(CODEBOOK), encoding="utf-8")
    assert main(["evaluate", "--coding", str(coding), "--truth", str(human), "--codebook", str(codebook),
                 "--bootstrap", "20"]) == 0  # fmt: skip
    assert "people (number, 4 files): agreement 0.750" in capsys.readouterr().out
    with pytest.raises(SourceError, match="none of the codebook's fields"):
        evaluate_coding(coding, pd.DataFrame({"file": ["a.jpg"], "colour": ["red"]}), CODEBOOK)


def test_the_coding_commands_help_imports_no_heavy_package():
    import subprocess
    import sys

    code = (
        "import sys; from smart_sorter.cli import main\n"
        "for argv in (['code', '--help'], ['evaluate', '--coding', 'x', '--help'], ['sample', '--coding', 'x',"
        " '--help'], ['report', '--coding', 'x', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = ('torch', 'transformers', 'PIL', 'pandas', 'openai', 'xgrammar')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in output and "smart-sorter code" in output
