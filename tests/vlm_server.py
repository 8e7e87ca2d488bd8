"""`transformers serve` started on 127.0.0.1 for the tests (a real OpenAI-compatible server), shared by the
coding tests and the coding form's browser test."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vlm_factories import save_llava

SAYS = '{"answer": "yes"}'  # what `llava_says_yes` always answers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def llava_says_yes(tmp_path_factory) -> Path:
    return save_llava(tmp_path_factory.mktemp("llava-says-yes"), says=SAYS)


@pytest.fixture(scope="session")
def llava_random(tmp_path_factory) -> Path:
    return save_llava(tmp_path_factory.mktemp("llava-random"))


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`transformers serve` on 127.0.0.1: it loads each model by the path a request names. Yields (url, log)."""
    port, log = free_port(), tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"]  # fmt: skip
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert process.poll() is None, log.read_text()
            time.sleep(0.5)
        else:
            pytest.fail(f"transformers serve did not start: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/v1", log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def requests_served(log: Path) -> int:
    return log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')
