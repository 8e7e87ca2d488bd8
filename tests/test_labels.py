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
    assert len(notes) == 1 and "('cat' and 'bird')" in notes[0] and "short descriptions" in notes[0]
    assert parse_labels({"cat": ["a photo of a cat"], "dog": ["a dog"]}, "{}").warnings() == []


@pytest.mark.parametrize(
    "labels, example",
    [
        ("army, a dog in a park", "such as 'an army in a street' or 'a close-up of an army'"),
        ("cat, a dog in a park", "such as 'a cat in a street' or 'a close-up of a cat'"),
        ("memes, a dog in a park", "such as 'memes in a street' or 'a close-up of memes'"),
        ("Paris, a dog in a park", "such as 'Paris in a street'"),
    ],
)
def test_single_word_advice_speaks_english(labels, example):
    (note,) = parse_labels(labels, DEFAULT_TEMPLATE).warnings()
    assert example in note and "a photo of" not in note  # the template says that already


def test_single_letters_and_articles_get_no_example():
    (note,) = parse_labels("a, b, the", DEFAULT_TEMPLATE).warnings()
    assert note == "Single-word labels ('a', 'b' and 'the') often sort worse than short descriptions with context."


@pytest.mark.parametrize(
    "label, bare",
    [
        ("a photo of a person", "a person"),
        ("A picture of an animal", "an animal"),
        ("an image of text", "text"),
        ("a photo showing a crowd", "a crowd"),
        ("photos of tanks", "tanks"),
        ("a photograph of a house", "a house"),
    ],
)
def test_labels_that_say_a_photo_of_when_the_template_does_get_one_note(label, bare):
    (note,) = parse_labels(f"{label}, a street at night", DEFAULT_TEMPLATE).warnings()
    doubled = DEFAULT_TEMPLATE.format(label)
    assert f"so the prompt doubles: {doubled!r}" in note and f"({label!r} -> {bare!r})" in note
    assert 'set the template to "{}" to use the labels as written' in note and "--template" not in note


def test_no_doubling_note_when_the_template_or_the_labels_do_not_say_it():
    assert parse_labels("a photo of a person, a photo of a dog", "{}").warnings() == []
    assert parse_labels("a photo of a person, a photo of a dog", "Something like {}").warnings() == []
    assert parse_labels("a person, photography equipment", DEFAULT_TEMPLATE).warnings() == []
    assert (
        parse_labels({"person": ["a photo of a person"], "dog": ["a photo of a dog"]}, DEFAULT_TEMPLATE).warnings()
        == []
    )


def test_every_kind_of_advice_is_one_note():
    labels = parse_labels(["a photo of a person", "army", "x " * 41, "Cat", "\u0421at"], DEFAULT_TEMPLATE)
    (note,) = labels.warnings()
    assert "the prompt doubles" in note and "Single-word labels" in note and "81 characters long" in note
    assert "'Cat' and '\u0421at'" in note and "CYRILLIC CAPITAL LETTER ES" in note


@pytest.mark.parametrize("pair", [("Cat", "\u0421at"), ("A", "\u13aa"), ("paypal", "p\u0430ypal")])
def test_labels_whose_folders_look_alike_are_named(pair):
    (note,) = parse_labels(list(pair), "{}").warnings()
    assert f"{pair[0]!r} and {pair[1]!r}" in note and "look the same" in note


def test_labels_in_other_scripts_are_not_look_alikes():
    for labels in (["кот", "собака"], ["café", "cafe"], ["label 1", "label l"]):
        assert not any("look the same" in note for note in parse_labels(labels, "{}").warnings()), labels


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
