import pytest

from smart_sorter.core.folders import MAX_FOLDER_BYTES, label_folder, label_folders
from smart_sorter.errors import LabelError
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
