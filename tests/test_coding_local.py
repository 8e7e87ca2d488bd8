"""The local backend end to end: tiny LLaVA models built here, run by transformers with decoding constrained
to the codebook's schema (xgrammar). A random model says garbage, yet every answer parses and fits."""

from __future__ import annotations

import json

import jsonschema
import pandas as pd
import pytest

from smart_sorter import SmartSorterError
from smart_sorter.cli import main
from smart_sorter.core.codebook import parse_codebook
from smart_sorter.core.coding import CODING_FILE_NAME
from smart_sorter.runs.coding import code_images
from tests.factories import noise_image
from tests.vlm_factories import save_idefics3, save_llava

pytest.importorskip("xgrammar")
pytestmark = pytest.mark.slow
CHAPTER = {
    "image_type": {"description": "What kind of image is this?", "options": ["photo", "meme", "screenshot"]},
    "people": {"description": "How many people are visible?", "type": "number"},
    "text_present": {"description": "Is there readable text?", "type": "yes/no"},
    "topics": {"description": "Which topics?", "type": "several options", "options": ["war", "sport"]},
    "sign": {"description": "What does the sign say?", "type": "short text"},
}


@pytest.fixture(scope="module")
def llava_random(tmp_path_factory):
    return save_llava(tmp_path_factory.mktemp("llava-random"), seed=1)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(5):
        noise_image(index, size=(40 + 8 * index, 36)).save(folder / f"photo_{index}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    return folder


def test_a_random_model_still_gives_answers_that_fit_the_schema(photos, tmp_path, llava_random):
    result = code_images(photos, CHAPTER, tmp_path / "coded", model=str(llava_random), concurrency=3,
                         progress_bar=False)  # fmt: skip
    table = result.table.set_index("file")
    assert table.loc["broken.jpg", "status"] == "error"
    answered = table.drop(index="broken.jpg")
    assert set(answered["status"]) == {"coded"}, answered["error"].tolist()
    schema = parse_codebook(CHAPTER).schema()
    for raw in answered["raw_answer"]:
        jsonschema.validate(json.loads(raw, strict=False), schema)
    assert set(answered["image_type"]) <= {"photo", "meme", "screenshot"}
    assert set(answered["text_present"]) <= {"yes", "no"}
    assert (answered["tokens_in"] > 16).all() and (answered["tokens_out"] > 5).all()
    assert set(answered["cost"]) == {0.0}  # no prices given
    written = pd.read_csv(tmp_path / "coded" / CODING_FILE_NAME, keep_default_na=False)
    assert list(written.columns[:6]) == ["file", *CHAPTER]
    assert len(written) == 6


def test_sort_by_copies_each_file_into_its_answer_folder(photos, tmp_path):
    model = save_llava(tmp_path / "says-no", says='{"answer": "no"}')
    destination = tmp_path / "coded"
    code = main(["code", str(photos), "--destination", str(destination), "--ask", "Is there a weapon?",
                 "--model", str(model), "--sort-by", "answer", "--quiet"])  # fmt: skip
    assert code == 0
    table = pd.read_csv(destination / CODING_FILE_NAME, keep_default_na=False).set_index("file")
    assert sorted(path.name for path in (destination / "no").iterdir()) == [f"photo_{i}.png" for i in range(5)]
    assert table.loc["photo_0.png", "destination"] == "no/photo_0.png"
    assert table.loc["photo_0.png", "action"] == "copied"
    assert (destination / "no" / "photo_3.png").read_bytes() == (photos / "photo_3.png").read_bytes()
    assert table.loc["broken.jpg", "destination"] == ""
    assert sorted(path.name for path in photos.iterdir()) == ["broken.jpg", *(f"photo_{i}.png" for i in range(5))]
    # a rerun finds everything done and places nothing twice
    assert main(["code", str(photos), "--destination", str(destination), "--ask", "Is there a weapon?",
                 "--model", str(model), "--sort-by", "answer", "--quiet"]) == 0  # fmt: skip
    assert len(list((destination / "no").iterdir())) == 5


def test_a_changed_codebook_is_refused_in_the_same_destination(photos, tmp_path):
    model = save_llava(tmp_path / "says-no", says='{"answer": "no"}')
    code_images(photos, None, tmp_path / "coded", ask="A weapon?", model=str(model), progress_bar=False)
    with pytest.raises(SmartSorterError, match="other settings \\(codebook changed\\)"):
        code_images(photos, None, tmp_path / "coded", ask="A flag?", model=str(model), progress_bar=False)


def test_a_folder_that_is_no_model_is_one_sentence(photos, tmp_path, capsys):
    code = main(["code", str(photos), "--destination", str(tmp_path / "coded"), "--ask", "A weapon?",
                 "--model", str(tmp_path / "nothing-here"), "--quiet"])  # fmt: skip
    assert code == 1
    assert "cannot be loaded as an image-text-to-text model" in capsys.readouterr().err
    assert not (tmp_path / "coded").exists()


def test_a_sortings_destination_is_coded_in_place_under_output_csv_names(photos, tmp_path, tiny_clip):
    from smart_sorter import sort_images

    sort_images(photos, tmp_path / "sorted", "a cat, a dog", model=str(tiny_clip), operation="move",
                progress_bar=False)  # fmt: skip
    model = save_llava(tmp_path / "says-yes", says='{"answer": "yes"}')
    result = code_images(tmp_path / "sorted", None, ask="A weapon?", model=str(model), progress_bar=False)
    assert result.csv_path == (tmp_path / "sorted" / CODING_FILE_NAME).resolve()
    output = pd.read_csv(tmp_path / "sorted" / "output.csv", keep_default_na=False)
    coding = pd.read_csv(result.csv_path, keep_default_na=False)
    placed = output[output["destination"] != ""]
    assert sorted(coding["file"]) == sorted(placed["file"])  # the moved files, read where they lie now
    assert set(coding["answer"]) == {"yes"}
    assert [file for file, _ in result.skipped] == ["broken.jpg"]  # an error row of the sorting: never placed


def test_smolvlms_architecture_answers_within_the_schema(photos, tmp_path):
    model = save_idefics3(tmp_path / "idefics3")
    codebook = {"kind": {"description": "Kind?", "options": ["photo", "meme"]},
                "people": {"description": "How many?", "type": "number"}}  # fmt: skip
    result = code_images(photos, codebook, tmp_path / "coded", model=str(model), concurrency=3, progress_bar=False)
    answered = result.table[result.table["file"] != "broken.jpg"]
    assert set(answered["status"]) == {"coded"}, answered["error"].tolist()
    assert set(answered["kind"]) <= {"photo", "meme"}
    assert all(abs(float(number)) <= 1e9 for number in answered["people"])  # numbers are bounded while decoding
