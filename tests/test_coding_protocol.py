"""Protocol-level tests of the OpenAI-compatible backend against a tiny real HTTP server written here.

This server is no model: it answers from a script, to show what `transformers serve` cannot (it takes
`response_format` without complaint and never rate-limits): a server that refuses structured output, rate
limits with Retry-After, server errors, answers that fit only on the second try. The requests are real HTTP on
127.0.0.1 through the real `openai` client; the model end to end is in test_coding_openai.py.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from smart_sorter import SmartSorterError
from smart_sorter.core.coding import CODING_FILE_NAME
from smart_sorter.runs.coding import code_images
from tests.factories import noise_image

pytest.importorskip("openai")


class ScriptedServer:
    """Answers POST /v1/chat/completions from `script`: (status, body dict, headers) per request, the last
    one repeated; records every request's JSON body."""

    def __init__(self, script: list[tuple[int, dict, dict]]) -> None:
        self.script, self.requests = deque(script), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                status, answer, headers = owner.script[0] if len(owner.script) == 1 else owner.script.popleft()
                payload = json.dumps(answer(body) if callable(answer) else answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def completion(text: str, tokens_in: int = 100, tokens_out: int = 7) -> dict:
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }  # fmt: skip


def refuse_structured(body: dict) -> dict:
    return {"error": {"message": "response_format is not supported", "type": "invalid_request_error"}}


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        noise_image(index).save(folder / f"p{index}.jpg")
    return folder


@pytest.fixture
def serve():
    servers = []

    def start(script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _code(photos, tmp_path, server, **settings):
    notes = []
    result = code_images(photos, None, tmp_path / "coded", ask="A weapon?", backend="openai", base_url=server.url,
                         model="scripted", progress_bar=False, notify=notes.append, concurrency=1,
                         **settings)  # fmt: skip
    return result, notes


def test_a_server_that_refuses_structured_output_is_asked_by_the_prompt(photos, tmp_path, serve):
    server = serve([(400, refuse_structured({}), {}), (200, completion('{"answer": "no"}'), {})])
    result, notes = _code(photos, tmp_path, server, price_in=1.0, price_out=2.0)
    assert set(result.table["answer"]) == {"no"}
    first, second = server.requests[0], server.requests[1]
    assert first["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"] == ["yes", "no"]
    assert "response_format" not in second and all("response_format" not in body for body in server.requests[1:])
    assert len(server.requests) == 4  # the refused one, then one per image
    assert [note for note in notes if "does not take structured output" in note] != []
    image = second["messages"][0]["content"][1]["image_url"]["url"]
    assert image.startswith("data:image/jpeg;base64,")
    assert result.tokens_in == 300 and result.tokens_out == 21
    assert result.cost == pytest.approx((300 * 1.0 + 21 * 2.0) / 1e6)


def test_an_answer_that_fits_on_the_second_try_shows_the_model_its_problems(photos, tmp_path, serve):
    script = [(200, completion("It is a rifle."), {}), (200, completion('{"answer": "yes"}'), {})] * 3
    server = serve(script)
    result, _ = _code(photos, tmp_path, server)
    assert set(result.table["answer"]) == {"yes"} and set(result.table["attempts"]) == {2}
    retry = server.requests[1]["messages"]
    assert retry[1] == {"role": "assistant", "content": "It is a rifle."}
    assert "the reply is not a JSON object" in retry[2]["content"]
    assert set(result.table["tokens_in"]) == {200}  # both answers are paid for


def test_rate_limits_are_waited_out(photos, tmp_path, serve):
    limited = (429, {"error": {"message": "slow down"}}, {"retry-after-ms": "20"})
    server = serve([limited, limited, (200, completion('{"answer": "yes"}'), {})])
    result, _ = _code(photos, tmp_path, server)
    assert set(result.table["status"]) == {"coded"}
    assert len(server.requests) == 5


def test_server_errors_become_rows_that_a_rerun_asks_again(photos, tmp_path, serve):
    broken = serve([(500, {"error": {"message": "the GPU fell over"}}, {})])
    result, _ = _code(photos, tmp_path, broken, network_retries=1)
    assert set(result.table["status"]) == {"error"}
    assert all("the server answered 500: the GPU fell over" in error for error in result.table["error"])
    assert len(broken.requests) == 3 * 2  # each image: the request and one retry
    working = serve([(200, completion('{"answer": "no"}'), {})])
    again, _ = _code(photos, tmp_path, working)
    assert set(again.table["status"]) == {"coded"} and len(working.requests) == 3
    assert len(pd.read_csv(tmp_path / "coded" / CODING_FILE_NAME)) == 3


def test_the_cost_limit_stops_cleanly_and_a_rerun_goes_on(photos, tmp_path, serve):
    server = serve([(200, completion('{"answer": "no"}', tokens_in=1000, tokens_out=0), {})])
    result, _ = _code(photos, tmp_path, server, price_in=1000.0, max_cost=1.5)
    assert len(result.table) == 2 and "cost limit of 1.5 was reached" in result.summary()
    held, _ = _code(photos, tmp_path, server, price_in=1000.0, max_cost=1.5)  # the limit counts what was spent
    assert len(held.table) == 2 and len(server.requests) == 2 and "cost limit" in held.summary()
    again, _ = _code(photos, tmp_path, server, price_in=1000.0)
    assert len(again.table) == 3 and again.resumed_files == 2 and len(server.requests) == 3


def test_the_run_is_recorded_in_a_manifest(photos, tmp_path, serve):
    server = serve([(200, completion('{"answer": "yes"}', tokens_in=10, tokens_out=2), {})])
    _code(photos, tmp_path, server, price_in=1.0)
    manifest = json.loads((tmp_path / "coded" / "smart-sorter-coding.json").read_text())
    assert manifest["status"] == "finished" and manifest["kind"] == "coding"
    assert manifest["codebook"] == {"answer": {"description": "A weapon?", "type": "yes/no"}}
    assert manifest["model"]["structured"] is True and manifest["model"]["base_url"] == server.url
    assert (manifest["files"], manifest["tokens_in"], manifest["tokens_out"]) == (3, 30, 6)
    assert manifest["options"]["price_in"] == 1.0 and manifest["versions"]["openai"] != "not installed"


def test_an_answer_named_like_the_coding_table_cannot_be_a_folder(photos, tmp_path):
    with pytest.raises(SmartSorterError, match="coding.csv"):
        code_images(photos, {"kind": {"description": "Kind?", "options": ["coding.csv", "photo"]}},
                    tmp_path / "coded", sort_by="kind", backend="openai", base_url="http://127.0.0.1:9/v1")  # fmt: skip


def test_a_blind_sample_for_the_coders_then_their_agreement(photos, tmp_path, serve):
    from smart_sorter.cli import main

    server = serve([(200, completion('{"answer": "yes"}'), {})])
    _code(photos, tmp_path, server)
    sheet = tmp_path / "sheet.csv"
    assert main(["sample", "--coding", str(tmp_path / "coded"), "--size", "2", "--csv", str(sheet)]) == 0
    drawn = pd.read_csv(sheet, keep_default_na=False)
    assert list(drawn.columns) == ["id", "file", "answer"] and set(drawn["answer"]) == {""}
    copies = sorted((tmp_path / "sheet_files").iterdir())
    assert [copy.name for copy in copies] == ["0001.jpg", "0002.jpg"]
    assert copies[0].read_bytes() == (photos / drawn["file"][0]).read_bytes()
    drawn["answer"] = ["yes", "no"]
    drawn.to_csv(sheet, index=False)
    assert main(["evaluate", "--coding", str(tmp_path / "coded"), "--truth", str(sheet), "--bootstrap", "0"]) == 0
    assert main(["sample", "--coding", str(tmp_path / "coded"), "--size", "2", "--csv", str(sheet)]) == 1  # kept
    assert main(["sample", "--coding", str(tmp_path / "coded"), "--size", "2", "--csv", str(photos / "s.csv")]) == 1
    assert not (photos / "s.csv").exists() and not (photos / "s_files").exists()  # never into the images' folder


def test_the_report_shows_each_image_beside_its_answers(photos, tmp_path, serve):
    from smart_sorter.cli import main

    server = serve([(200, completion('{"answer": "yes"}'), {})])
    _code(photos, tmp_path, server)
    (photos / "late.jpg").write_bytes(b"not an image")  # a file coded as an error on a second run
    _code(photos, tmp_path, server)
    assert main(["report", "--coding", str(tmp_path / "coded"), "--blur"]) == 0
    page = (tmp_path / "coded" / "coding-report.html").read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") == 3 and "not an image" in page
    assert '<td>yes</td><td class="number">3</td>' in page and 'class="blurred"' in page
    assert "A weapon?" in page and "scripted" in page
    assert main(["report", "--coding", str(tmp_path / "coded")]) == 1  # never over the last one
    assert main(["report", "--coding", str(tmp_path / "coded"), "--output", str(photos / "r.html")]) == 1
    assert not (photos / "r.html").exists()


def test_stop_ends_the_run_between_batches_and_a_rerun_finishes(photos, tmp_path, serve):
    server = serve([(200, completion('{"answer": "yes"}'), {})])
    stop = threading.Event()
    stop.set()
    held = code_images(photos, None, tmp_path / "coded", ask="A weapon?", backend="openai", base_url=server.url,
                       model="scripted", progress_bar=False, concurrency=1, stop=stop)  # fmt: skip
    assert held.stopped == "asked to stop." and len(held.table) == 0 and server.requests == []
    assert "Stopped early: asked to stop. Run the same command again" in held.summary()
    done = code_images(photos, None, tmp_path / "coded", ask="A weapon?", backend="openai", base_url=server.url,
                       model="scripted", progress_bar=False)  # fmt: skip
    assert len(done.table) == 3 and len(server.requests) == 3


def test_openai_without_a_key_is_refused_before_anything_is_written(photos, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SmartSorterError, match="needs a key: set OPENAI_API_KEY"):
        code_images(photos, None, tmp_path / "coded", ask="A weapon?", backend="openai", progress_bar=False)
    assert not (tmp_path / "coded").exists()
