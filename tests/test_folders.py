import pytest

from smart_sorter.core.folders import MAX_FOLDER_BYTES, label_folder, label_folders, lookalike_folders
from smart_sorter.errors import LabelError
from smart_sorter.options import SORTER_NAMES
from smart_sorter.storage.layout import folder_path


@pytest.mark.parametrize(
    "label, folder",
    [
        ("cat", "cat"),
        ("../x", ".._x"),
        ("/abs/path", "_abs_path"),
        ("..", "_"),
        (".", "_"),
        ("CON", "_CON"),
        ("com1.txt", "_com1.txt"),
        ("dots...", "dots"),
        ("a:b*c?", "a_b_c_"),
        ("tab\there", "tab_here"),
        ("  padded  ", "padded"),
    ],
)
def test_label_folder_names_are_single_safe_components(label, folder):
    assert label_folder(label) == folder


def test_long_labels_are_cut_on_a_character_boundary():
    name = label_folder("ж" * 200)
    assert len(name.encode("utf-8")) <= MAX_FOLDER_BYTES
    assert name == "ж" * (MAX_FOLDER_BYTES // 2)


def test_unicode_is_normalised():
    assert label_folder("cafe\u0301") == "caf\u00e9"


@pytest.mark.parametrize("labels", [["a/b", "a_b"], ["Cat", "cat "], ["caf\u00e9", "CAFE\u0301"]])
def test_labels_sharing_a_folder_are_refused(labels):
    with pytest.raises(LabelError, match="would share the folder"):
        label_folders(labels)


def test_every_hostile_label_stays_inside_the_destination(tmp_path):
    for label in ["../../etc", "/etc/passwd", "..", "~", "a/../../b", "\x00", "C:\\Windows"]:
        path = folder_path(tmp_path, label_folder(label))
        assert path.parent == tmp_path.resolve()


@pytest.mark.parametrize(
    "label",
    [
        "output.csv",
        "OUTPUT.CSV",
        "plan.csv",
        "smart-sorter-run.json",
        "smart-sorter-plan.json",
        "output.csv.partial",
        "Smart-Sorter-Run.json.partial",
        "report.html",
        "corrections.csv",
        ".smart-sorter",
        ".smart-sorter-partial-1234-cat.jpg",
        "output-undone-20260101T000000.csv",
        "output.csv.",  # the trailing dot goes: the folder would be output.csv
    ],
)
def test_labels_taking_the_sorters_own_names_are_refused(label):
    with pytest.raises(LabelError, match="would get the folder .* a name the sorter keeps for its own files"):
        label_folders(["cat", label])


def test_the_sorters_names_are_the_ones_its_parts_write():
    from smart_sorter.runs.corrections import CORRECTIONS_FILE_NAME
    from smart_sorter.storage.journal import STATE_FOLDER
    from smart_sorter.storage.placing import TEMP_PREFIX

    assert {CORRECTIONS_FILE_NAME, STATE_FOLDER} <= set(SORTER_NAMES)
    with pytest.raises(LabelError):
        label_folders([TEMP_PREFIX + "x", "cat"])


def test_the_uncertain_folder_is_refused_only_when_used():
    assert label_folders(["uncertain", "cat"]) == {"uncertain": "uncertain", "cat": "cat"}
    with pytest.raises(LabelError, match="the 'uncertain' folder the sorter uses"):
        label_folders(["Uncertain", "cat"], reserved=("uncertain",))


def test_look_alike_folder_names_are_found_not_refused():
    assert label_folders(["Cat", "\u0421at"]) == {"Cat": "Cat", "\u0421at": "\u0421at"}
    ((first, second, why),) = lookalike_folders(["Cat", "\u0421at", "dog"])
    assert (first, second) == ("Cat", "\u0421at")
    assert why == "'C' is LATIN CAPITAL LETTER C, '\u0421' is CYRILLIC CAPITAL LETTER ES"
    assert lookalike_folders(["\u13aa", "A"])[0][:2] == ("\u13aa", "A")
    assert lookalike_folders(["\u0421at", "cat"])  # looks like Cat, next to cat: alike on a case-blind disk
    assert lookalike_folders(["cat", "dog", "1", "l"]) == []  # ASCII only: taken as meant
