import json

import pytest

from smart_sorter.core.labels import parse_labels, read_labels_file
from smart_sorter.errors import LabelError
from smart_sorter.options import DEFAULT_TEMPLATE


def test_comma_list_fills_the_template():
    labels = parse_labels(" cat, a dog ,bird", DEFAULT_TEMPLATE)
    assert labels.categories == ("cat", "a dog", "bird")
    assert labels.all_prompts == ("This is a photo of cat.", "This is a photo of a dog.", "This is a photo of bird.")
    assert labels.prompt_owner == (0, 1, 2)


def test_a_list_keeps_commas_inside_labels():
    labels = parse_labels(["tanks, trucks", "people"], "{}")
    assert labels.categories == ("tanks, trucks", "people")


def test_mapping_uses_prompts_as_written():
    labels = parse_labels({"army": ["soldiers in uniform", "a tank"], "protest": "a crowd with banners"}, "{}")
    assert labels.categories == ("army", "protest")
    assert labels.all_prompts == ("soldiers in uniform", "a tank", "a crowd with banners")
    assert labels.prompt_owner == (0, 0, 1)
    assert labels.template is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("cat", "At least two labels"),
        ("", "empty"),
        ("cat,,dog", "empty"),
        ("cat,dog,", "empty"),
        ("cat,dog,Cat", "repeated"),
    ],
)
def test_bad_label_lists_are_refused_with_a_message(text, message):
    with pytest.raises(LabelError, match=message):
        parse_labels(text, DEFAULT_TEMPLATE)


def test_a_prompt_in_two_categories_is_refused():
    with pytest.raises(LabelError, match="belongs to both"):
        parse_labels({"a": ["x"], "b": ["x", "y"]}, "{}")


def test_long_labels_get_a_warning_not_an_error():
    labels = parse_labels(["a short label", "x " * 41], DEFAULT_TEMPLATE)
    warnings = labels.warnings()
    assert len(warnings) == 1 and "80 characters" in warnings[0]


def test_labels_files_in_json_and_yaml(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"cat": ["a cat"], "dog": ["a dog", "a puppy"]}))
    (tmp_path / "labels.yaml").write_text("cat:\n  - a cat\ndog:\n  - a dog\n  - a puppy\n")
    assert read_labels_file(tmp_path / "labels.json") == read_labels_file(tmp_path / "labels.yaml")


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ('["a", "b"]', "must map each category")],
)
def test_broken_labels_files_explain_themselves(tmp_path, content, message):
    path = tmp_path / "labels.json"
    path.write_text(content)
    with pytest.raises(LabelError, match=message):
        read_labels_file(path)


def test_missing_labels_file(tmp_path):
    with pytest.raises(LabelError, match="does not exist"):
        read_labels_file(tmp_path / "nope.yaml")


def test_single_word_labels_get_advice_once():
    notes = parse_labels("cat, a dog in a park, bird", DEFAULT_TEMPLATE).warnings()
    assert len(notes) == 1 and "'cat', 'bird'" in notes[0] and "short descriptions" in notes[0]
    assert parse_labels({"cat": ["a photo of a cat"], "dog": ["a dog"]}, "{}").warnings() == []


def test_text_box_labels_one_line_a_comma_list_several_lines_a_category_each():
    assert parse_labels("cat, dog", "A {}.").prompts == (("A cat.",), ("A dog.",))
    lines = parse_labels("a cat\n\n  a dog  \n", "A {}.")
    assert lines.categories == ("a cat", "a dog") and lines.template == "A {}."
    described = parse_labels("cats: a photo of a cat; a kitten\ndogs\nbirds:", "A {}.")
    assert described.categories == ("cats", "dogs", "birds")
    assert described.prompts == (("a photo of a cat", "a kitten"), ("A dogs.",), ("A birds.",))
    with pytest.raises(LabelError, match="repeated"):
        parse_labels("cat: a cat\nCat: another cat", "A {}.")
    with pytest.raises(LabelError, match="empty"):
        parse_labels(": a cat\ndog", "A {}.")
