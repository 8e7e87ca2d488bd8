"""The chapter's codebook (image type, people, readable text) coded on the real telegram-32 JPEGs from the command
line, with a tiny random LLaVA run locally, then evaluated against the hand coding in docs/coding/. A random model
agrees with the coders only by chance: this shows the whole path works on real images, not that coding is right."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from smart_sorter.cli import main
from tests.vlm_factories import save_llava

pytest.importorskip("xgrammar")
pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "coding"


def test_the_chapters_codebook_on_the_telegram_images_then_evaluated(corpus, tmp_path, capsys):
    model = save_llava(tmp_path / "llava", seed=3)
    destination = tmp_path / "coded"
    code = main(["code", str(corpus), "--codebook", str(EXAMPLE / "codebook.yaml"), "--destination",
                 str(destination), "--model", str(model), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(destination / "coding.csv", keep_default_na=False)
    hand = pd.read_csv(EXAMPLE / "telegram-32-hand-coding.csv", keep_default_na=False)
    assert sorted(table["file"]) == sorted(hand["file"]) == sorted(path.name for path in corpus.glob("*.jpg"))
    assert set(table["status"]) == {"coded"}
    assert set(table["image_type"]) <= {"photo", "meme", "newspaper", "screenshot", "illustration", "chart"}
    assert (pd.to_numeric(table["people"]) >= 0).all() and set(table["text_present"]) <= {"yes", "no"}
    capsys.readouterr()
    assert main(["evaluate", "--coding", str(destination), "--truth", str(EXAMPLE / "telegram-32-hand-coding.csv"),
                 "--bootstrap", "100"]) == 0  # fmt: skip
    report = capsys.readouterr().out
    for line in ("image_type (options, 32 files): agreement", "people (number, 32 files)",
                 "text_present (yes/no, 32 files)", "mean absolute error"):  # fmt: skip
        assert line in report
