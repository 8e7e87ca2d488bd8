"""Videos in coding: a video is answered from its sampled frames, sent together as several images in one
request (local model or OpenAI-compatible server), and its row says how many frames the model saw. Real
tiny models and a real `transformers serve`; videos generated with PyAV."""

from __future__ import annotations

import pandas as pd
import pytest

from smart_sorter.cli import main
from smart_sorter.core.coding import CODING_FILE_NAME
from smart_sorter.runs.coding import code_images
from smart_sorter.validation.coding_report import write_coding_report
from tests.factories import noise_image
from tests.videos import write_video
from tests.vlm_server import SAYS, requests_served

pytest.importorskip("av")
pytestmark = pytest.mark.slow
IMAGE_TOKENS = 16  # the tiny LLaVA's tokens per image (32 px, patches of 8)


@pytest.fixture
def media(tmp_path):
    folder = tmp_path / "media"
    for index in range(2):
        folder.mkdir(exist_ok=True)
        noise_image(index, size=(48, 40)).save(folder / f"photo_{index}.jpg")
    write_video(folder / "clip.mp4", [("red circle", 1.0), ("blue square", 1.0)])
    write_video(folder / "named_like_a_photo.jpg", [("green triangle", 1.5)], seed=1, container_format="mp4")
    (folder / "cut.mp4").write_bytes((folder / "clip.mp4").read_bytes()[:300])  # damaged: an error row
    return folder


def _rows(table: pd.DataFrame) -> dict[str, dict]:
    return {row["file"]: row for row in table.to_dict("records")}


def test_a_local_model_answers_a_video_from_its_frames(media, tmp_path, llava_random):
    pytest.importorskip("xgrammar")
    result = code_images(media, None, tmp_path / "coded", ask="Is there a red circle?", model=str(llava_random),
                         video_frames=3, concurrency=4, progress_bar=False)  # fmt: skip
    rows = _rows(pd.read_csv(tmp_path / "coded" / CODING_FILE_NAME, keep_default_na=False))
    one = code_images(media, None, tmp_path / "one-frame", ask="Is there a red circle?", model=str(llava_random),
                      video_frames=1, concurrency=4, progress_bar=False)  # fmt: skip
    one_frame = _rows(one.table)
    assert rows["photo_0.jpg"]["media"] == "image" and rows["photo_0.jpg"]["frames_sent"] == 1
    for video in ("clip.mp4", "named_like_a_photo.jpg"):
        assert rows[video]["media"] == "video" and rows[video]["frames_sent"] == 3
        assert rows[video]["status"] == "coded" and rows[video]["answer"] in ("yes", "no")
        # three images in one prompt: two images' tokens more than one frame (and a few for the times named)
        extra = rows[video]["tokens_in"] - one_frame[video]["tokens_in"]
        assert 2 * IMAGE_TOKENS <= extra <= 2 * IMAGE_TOKENS + 20 and one_frame[video]["frames_sent"] == 1
    assert rows["cut.mp4"]["status"] == "error" and rows["cut.mp4"]["media"] == "video"
    assert rows["cut.mp4"]["frames_sent"] == 0 and rows["cut.mp4"]["tokens_in"] == 0
    assert "2 of the files were videos, answered from 6 frames" in result.summary()
    report = write_coding_report(tmp_path / "coded").read_text()
    assert report.count("(video, answered from 3 frames)") == 2


def _ask_server(media, destination, url, model, frames: int) -> int:
    return main(["code", str(media), "--destination", str(destination), "--backend", "openai", "--base-url", url,
                 "--model", str(model), "--ask", "A person?", "--video-frames", str(frames), "--quiet"])  # fmt: skip


def test_a_server_is_sent_a_video_as_its_frames_in_one_request(media, tmp_path, server, llava_says_yes, capsys):
    pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")
    url, log = server
    before = requests_served(log)
    assert _ask_server(media, tmp_path / "coded", url, llava_says_yes, 4) == 0, capsys.readouterr().err
    rows = _rows(pd.read_csv(tmp_path / "coded" / CODING_FILE_NAME, keep_default_na=False))
    assert requests_served(log) - before == 4  # two photos, two videos: one request each; the damaged one unsent
    assert rows["cut.mp4"]["status"] == "error" and "2 of the files were videos" in capsys.readouterr().out
    assert _ask_server(media, tmp_path / "one", url, llava_says_yes, 1) == 0
    one_frame = _rows(pd.read_csv(tmp_path / "one" / CODING_FILE_NAME, keep_default_na=False))
    for video in ("clip.mp4", "named_like_a_photo.jpg"):
        assert rows[video]["raw_answer"] == SAYS and rows[video]["frames_sent"] == 4 and rows[video]["media"] == "video"
        extra = rows[video]["tokens_in"] - one_frame[video]["tokens_in"]  # three more images in the one request
        assert 3 * IMAGE_TOKENS <= extra <= 3 * IMAGE_TOKENS + 30
