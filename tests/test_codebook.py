import json

import jsonschema
import pytest

from smart_sorter.core.codebook import (
    ASK_FIELD,
    cell,
    codebook_from_question,
    json_in_text,
    parse_codebook,
    read_answer,
    read_codebook_file,
    retry_prompt,
)
from smart_sorter.errors import CodebookError

CHAPTER = """
image_type:
  description: What kind of image is this?
  options: [photo, meme, screenshot, poster]
people:
  description: How many people are visible?
  type: number
  minimum: 0
text_present:
  description: Is there readable text in the image?
  type: yes/no
topics:
  description: Which topics does the image touch?
  type: several options
  options: [war, politics, sport]
sign:
  description: What does the largest sign say?
  type: short text
"""


@pytest.fixture
def chapter(tmp_path):
    path = tmp_path / "codebook.yaml"
    path.write_text(CHAPTER, encoding="utf-8")
    return read_codebook_file(path)


def test_a_yaml_codebook_becomes_fields_in_order(chapter):
    assert chapter.names == ("image_type", "people", "text_present", "topics", "sign")
    assert [field.kind for field in chapter.fields] == ["options", "number", "yes/no", "several options", "text"]
    assert chapter.field("image_type").options == ("photo", "meme", "screenshot", "poster")


def test_the_schema_accepts_a_good_answer_and_refuses_a_bad_one(chapter):
    schema = chapter.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    good = {"image_type": "meme", "people": 2, "text_present": "yes", "topics": ["war"], "sign": "STOP"}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "image_type": "drawing"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "extra": 1}, schema)


def test_a_good_answer_reads_into_values(chapter):
    reply = (
        '```json\n{"image_type": "Meme", "people": "3", "text_present": true, "topics": ["sport", "war"],'
        ' "sign": " hi "}\n```'
    )
    answer = read_answer(reply, chapter)
    assert answer.fits
    assert answer.values == {"image_type": "meme", "people": 3, "text_present": "yes", "topics": ["war", "sport"],
                             "sign": "hi"}  # fmt: skip
    assert cell(answer.values["topics"]) == "war; sport"


def test_a_bad_answer_lists_every_problem_in_words(chapter):
    reply = {"image_type": "drawing", "people": -1, "text_present": "maybe", "topics": "war", "colour": "red"}
    answer = read_answer(reply, chapter)
    assert not answer.fits
    text = retry_prompt(answer.problems)
    for expected in ("'image_type' must be one of photo, meme, screenshot, poster; got 'drawing'",
                     "'people' must be a number of at least 0; got -1", "'text_present' must be \"yes\" or \"no\"",
                     "'topics' must be a list", "'sign' is missing", "unknown keys 'colour'"):  # fmt: skip
        assert expected in text


def test_a_reply_without_json_is_a_problem_not_a_crash(chapter):
    assert read_answer("I cannot see the image.", chapter).problems[0].startswith("the reply is not a JSON object")
    assert read_answer("[1, 2]", chapter).problems
    assert json_in_text('Sure! {"a": {"b": 1}} and {"c": 2}') == {"a": {"b": 1}}


def test_ask_is_a_one_field_codebook():
    yes_no = codebook_from_question("Is there a weapon in the image?")
    assert yes_no.names == (ASK_FIELD,) and yes_no.fields[0].kind == "yes/no"
    assert yes_no.schema()["properties"][ASK_FIELD]["enum"] == ["yes", "no"]
    chosen = codebook_from_question("Which vehicle?", ["tank", "truck", "none"])
    assert chosen.fields[0].options == ("tank", "truck", "none")
    assert "Which vehicle?" in chosen.prompt()


def test_a_json_list_codebook_and_yaml_booleans_as_options(tmp_path):
    path = tmp_path / "codebook.json"
    path.write_text(json.dumps([{"name": "weapon", "description": "Weapon?", "type": "boolean"}]), encoding="utf-8")
    assert read_codebook_file(path).fields[0].kind == "yes/no"
    data = {"armed": {"description": "Armed?", "options": [True, False, "unclear"]}}
    assert parse_codebook(data).fields[0].options == ("yes", "no", "unclear")


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "no field"),
        ("weapon", "maps each field"),
        ({"weapon": "Is there a weapon?"}, "must have a description and a type"),
        ({"weapon": {"description": "Weapon?"}}, "needs a type"),
        ({"weapon": {"description": "Weapon?", "type": "colour"}}, "the types are options, yes/no"),
        ({"weapon": {"type": "yes/no"}}, "description of the field 'weapon'"),
        ({"kind": {"description": "Kind?", "options": ["photo"]}}, "one option only"),
        ({"kind": {"description": "Kind?", "options": ["photo", "Photo"]}}, "twice"),
        ({"kind": {"description": "Kind?", "type": "several options"}}, "needs a list of options"),
        ({"n": {"description": "How many?", "type": "number", "options": ["1"]}}, "takes no options"),
        ({"n": {"description": "How many?", "type": "number", "minimum": 5, "maximum": 1}}, "above its maximum"),
        ({"n": {"description": "How many?", "type": "number", "min": 0}}, "unknown keys min"),
        ({"cost": {"description": "Price?", "type": "number"}}, "a column coding.csv writes itself"),
        ({"a": {"description": "A?", "type": "text"}, "A": {"description": "A?", "type": "text"}}, "twice"),
    ],
)
def test_bad_codebooks_are_refused_with_a_sentence(data, message):
    with pytest.raises(CodebookError, match=message.replace("?", r"\?").replace("(", r"\(")):
        parse_codebook(data)


def test_a_bad_codebook_file_names_the_file(tmp_path):
    with pytest.raises(CodebookError, match="does not exist"):
        read_codebook_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("weapon: [unclosed", encoding="utf-8")
    with pytest.raises(CodebookError, match="not valid YAML"):
        read_codebook_file(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("weapon:\n  description: Weapon?\n  type: yesno?\n", encoding="utf-8")
    with pytest.raises(CodebookError, match="typo.yaml.*'yesno\\?'"):
        read_codebook_file(typo)


@pytest.mark.parametrize("written", ["count", "integer", "whole number"])
def test_a_count_takes_whole_numbers_only(written):
    codebook = parse_codebook({"people": {"description": "How many people?", "type": written, "minimum": 0}})
    field = codebook.field("people")
    assert field.kind == "number" and field.whole
    schema = codebook.schema()
    assert schema["properties"]["people"]["type"] == "integer"
    jsonschema.validate({"people": 3}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"people": 2.5}, schema)
    assert "Value: a whole number of at least 0." in field.instruction()
    assert read_answer('{"people": "4"}', codebook).values == {"people": 4}
    assert read_answer('{"people": 4.0}', codebook).values == {"people": 4}
    answer = read_answer('{"people": 2.5}', codebook)
    assert not answer.fits and "'people' must be a whole number; got 2.5" in retry_prompt(answer.problems)
    # a plain number still takes fractions
    plain = parse_codebook({"share": {"description": "What share is sky?", "type": "number"}})
    assert not plain.field("share").whole and read_answer('{"share": 0.25}', plain).values == {"share": 0.25}
