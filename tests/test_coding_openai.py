"""The OpenAI-compatible backend end to end, against a real server: `transformers serve` started on 127.0.0.1
with tiny LLaVA models built here (one random, one whose weights always say a known answer). Nothing is
mocked: requests, images as data URLs, usage, retries, error rows, cost, resume after a kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.core.coding import CODING_FILE_NAME, CODING_JOURNAL_NAME
from tests.factories import noise_image
from tests.vlm_server import SAYS
from tests.vlm_server import free_port as _free_port
from tests.vlm_server import requests_served as _requests

pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")
pytest.importorskip("openai")
pytestmark = pytest.mark.slow


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(5):
        noise_image(index, size=(48, 40)).save(folder / f"photo_{index}.jpg")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def _code(source: Path, destination: Path, model: Path, url: str, *extra: str) -> int:
    arguments = ["code", str(source), "--destination", str(destination), "--backend", "openai", "--base-url", url,
                 "--model", str(model), "--quiet", *extra]  # fmt: skip
    return main(arguments)


def test_answers_tokens_and_cost_from_a_real_server(photos, tmp_path, server, llava_says_yes, capsys, monkeypatch):
    url, log = server
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs no key
    before = _requests(log)
    code = _code(photos, tmp_path / "coded", llava_says_yes, url, "--ask", "Is there a person?",
                 "--price-in", "2", "--price-out", "10")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "coded" / CODING_FILE_NAME, keep_default_na=False)
    assert list(table["file"]) == ["broken.jpg", *(f"photo_{i}.jpg" for i in range(5))]
    answered = table[table["file"] != "broken.jpg"]
    assert set(answered["status"]) == {"coded"} and set(answered["answer"]) == {"yes"}
    assert set(answered["attempts"]) == {1} and set(answered["raw_answer"]) == {SAYS}
    assert (answered["tokens_in"] > 16).all()  # the prompt and the 16 image tokens
    assert set(answered["tokens_out"]) == {2}  # the answer's one token and the end
    expected = (answered["tokens_in"] * 2 + answered["tokens_out"] * 10) / 1e6
    assert answered["cost"].tolist() == pytest.approx(expected.tolist())
    broken = table[table["file"] == "broken.jpg"].iloc[0]
    assert broken["status"] == "error" and "not an image" in broken["error"] and broken["tokens_in"] == 0
    assert _requests(log) - before == 5  # the unreadable file was never sent
    assert "Coded 5 of 6 files" in capsys.readouterr().out


def test_answers_that_never_fit_are_asked_again_then_become_error_rows(photos, tmp_path, server, llava_random):
    url, log = server
    codebook = tmp_path / "codebook.yaml"
    codebook.write_text(
        "image_type:\n  description: What kind of image is this?\n  options: [photo, meme, screenshot]\n"
        "people:\n  description: How many people are visible?\n  type: number\n",
        encoding="utf-8",
    )
    before = _requests(log)
    code = _code(photos, tmp_path / "coded", llava_random, url, "--codebook", str(codebook), "--tries", "2",
                 "--max-new-tokens", "6", "--price-in", "1", "--price-out", "1")  # fmt: skip
    assert code == 0  # answers that do not fit are rows, never a crash
    table = pd.read_csv(tmp_path / "coded" / CODING_FILE_NAME, keep_default_na=False)
    answered = table[table["file"] != "broken.jpg"]
    assert set(answered["status"]) == {"error"}
    assert all(error.startswith("no answer fit the codebook in 2 answers") for error in answered["error"])
    assert set(answered["attempts"]) == {2} and set(answered["image_type"]) == {""}
    assert _requests(log) - before == 10  # two answers for each of the five images
    assert (answered["tokens_out"] > 0).all() and (answered["tokens_out"] <= 12).all()
    # the second request carries the first answer and the problems: more tokens in than one request
    one_request = json.loads((tmp_path / "coded" / ".smart-sorter" / CODING_JOURNAL_NAME).read_text().splitlines()[0])
    assert one_request["event"] == "run"
    assert (answered["tokens_in"] > 2 * 16).all()


def test_a_killed_run_resumes_without_asking_twice(tmp_path, server, llava_says_yes):
    url, log = server
    photos = tmp_path / "many"
    photos.mkdir()
    for index in range(12):
        noise_image(index, size=(48, 40)).save(photos / f"p{index:02d}.jpg")
    destination = tmp_path / "coded"
    command = [sys.executable, "-m", "smart_sorter", "code", str(photos), "--destination", str(destination),
               "--backend", "openai", "--base-url", url, "--model", str(llava_says_yes), "--ask", "A person?",
               "--concurrency", "1", "--quiet"]  # fmt: skip
    before = _requests(log)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = destination / ".smart-sorter" / CODING_JOURNAL_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count('"event": "done"') >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before_kill = journal.read_text().count('"event": "done"')
    asked_before_kill = _requests(log) - before
    assert 3 <= done_before_kill < 12
    assert main(["code", str(photos), "--destination", str(destination), "--backend", "openai", "--base-url", url,
                 "--model", str(llava_says_yes), "--ask", "A person?", "--quiet"]) == 0  # fmt: skip
    table = pd.read_csv(destination / CODING_FILE_NAME, keep_default_na=False)
    assert sorted(table["file"]) == [f"p{index:02d}.jpg" for index in range(12)]
    assert set(table["status"]) == {"coded"}
    # every image asked once, except at most the one in flight when killed
    assert _requests(log) - before <= 12 + (asked_before_kill - done_before_kill)
    assert main(["code", str(photos), "--destination", str(destination), "--backend", "openai", "--base-url", url,
                 "--model", str(llava_says_yes), "--ask", "A person?", "--quiet"]) == 0  # fmt: skip
    assert len(pd.read_csv(destination / CODING_FILE_NAME)) == 12


def test_an_unreachable_server_is_one_sentence(photos, tmp_path, capsys):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    code = main(["code", str(photos), "--destination", str(tmp_path / "coded"), "--backend", "openai",
                 "--base-url", url, "--model", "m", "--ask", "A person?", "--quiet"])  # fmt: skip
    assert code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: Cannot reach http://127.0.0.1:") and "run the same command again" in error
    assert "Traceback" not in error


def test_answers_that_never_fit_are_final_on_rerun_unless_retry_errors_pays_again(
    photos, tmp_path, server, llava_random, capsys
):
    """An error row of answers that never fit was paid for: the same command again asks nothing; with
    --retry-errors the files are asked (and paid for) again, and each row's tokens and cost add up both."""
    url, log = server
    destination = tmp_path / "coded"
    command = ("--ask", "Is there a person?", "--tries", "1", "--max-new-tokens", "4", "--price-in", "1")
    before = _requests(log)
    assert _code(photos, destination, llava_random, url, *command) == 0
    first = pd.read_csv(destination / CODING_FILE_NAME, keep_default_na=False).set_index("file")
    assert set(first["status"]) == {"error"} and _requests(log) - before == 5
    capsys.readouterr()
    assert _code(photos, destination, llava_random, url, *command) == 0
    said = capsys.readouterr().out
    assert _requests(log) - before == 5 and "Already done" in said and "--retry-errors" in said
    assert _code(photos, destination, llava_random, url, *command, "--retry-errors") == 0
    assert _requests(log) - before == 10  # the five images asked again; the unreadable file read again, not sent
    again = pd.read_csv(destination / CODING_FILE_NAME, keep_default_na=False).set_index("file")
    assert sorted(again.index) == sorted(first.index)
    photos_only = [file for file in first.index if file != "broken.jpg"]
    assert (again.loc[photos_only, "attempts"] == 2).all()
    assert (again.loc[photos_only, "tokens_in"] == 2 * first.loc[photos_only, "tokens_in"]).all()
    assert again.loc[photos_only, "cost"].tolist() == pytest.approx((2 * first.loc[photos_only, "cost"]).tolist())
    assert "6 files with errors were asked again" in capsys.readouterr().out  # the unreadable one read again
