"""The journal: events appended as they happen, folded back into one record per file."""

import json

from smart_sorter.storage.journal import Journal, journal_path, read_journal

NOT_UTF8 = b"caf\xe9 \xff.jpg".decode("utf-8", "surrogateescape")
SETTINGS = {"source": "/src", "prompts": {"cat": ["a cat"]}, "operation": "move"}


def sorted_row(file: str, **fields) -> dict:
    return {"file": file, "label": "cat", "status": "sorted", "sha256": "ab" * 32, "destination": f"cat/{file}",
            "action": "moved", "error": "", **fields}  # fmt: skip


def error_row(file: str, sha256: str = "") -> dict:
    return {"file": file, "label": "", "status": "error", "sha256": sha256, "destination": "", "action": "",
            "error": "cannot read file"}  # fmt: skip


def write(path, *events: tuple[str, dict]) -> None:
    journal = Journal(path)
    for event, fields in events:
        journal.write(event, **fields)
    journal.close()


def test_the_journal_lives_in_the_state_folder(tmp_path):
    assert journal_path(tmp_path) == tmp_path / ".smart-sorter" / "journal.jsonl"
    assert read_journal(journal_path(tmp_path)).settings is None  # no journal: an empty state


def test_a_placement_folds_into_one_record(tmp_path):
    path = journal_path(tmp_path)
    claim = {"file": "a.jpg", "sha256": "ab" * 32, "source": "/src/a.jpg", "folder": "cat", "name": "a.jpg",
             "temp": "", "action": "moved", "operation": "move", "row": sorted_row("a.jpg")}  # fmt: skip
    write(
        path,
        ("run", {"settings": SETTINGS, "started": "now"}),
        ("claiming", claim),
        ("placed", {"file": "a.jpg", "destination": "cat/a.jpg", "action": "moved"}),
        ("removed", {"file": "a.jpg"}),
        ("done", {"file": "a.jpg", "row": sorted_row("a.jpg")}),
    )
    state = read_journal(path)
    assert state.settings == SETTINGS and state.torn_lines == 0
    record = state.files["a.jpg"]
    assert record.claiming["name"] == "a.jpg" and record.claiming["row"] == sorted_row("a.jpg")
    assert record.placed["destination"] == "cat/a.jpg" and record.removed
    assert record.done == sorted_row("a.jpg") and not record.retry and not record.undone
    assert record.relocating is None and record.copies == {} and record.copy_claims == {}
    assert state.done_rows == [sorted_row("a.jpg")]


def test_copies_are_kept_per_tag_folder_latest_claim_last(tmp_path):
    path = journal_path(tmp_path)
    write(
        path,
        ("claiming_copy", {"file": "a.jpg", "folder": "dog", "name": "a.jpg", "temp": ".part", "action": "copied"}),
        ("claiming_copy", {"file": "a.jpg", "folder": "dog", "name": "a (1).jpg", "temp": "", "action": "copied"}),
        ("claiming_copy", {"file": "a.jpg", "folder": "bird", "name": "a.jpg", "temp": "", "action": "copied"}),
        ("copy", {"file": "a.jpg", "folder": "dog", "destination": "dog/a (1).jpg", "action": "copied"}),
    )  # fmt: skip
    record = read_journal(path).files["a.jpg"]
    assert record.copy_claims["dog"]["name"] == "a (1).jpg" and set(record.copy_claims) == {"dog", "bird"}
    assert record.copies == {"dog": {"event": "copy", "file": "a.jpg", "folder": "dog",
                                     "destination": "dog/a (1).jpg", "action": "copied"}}  # fmt: skip


def test_a_relocation_is_pending_until_placed(tmp_path):
    path = journal_path(tmp_path)
    moving = {"file": "a.jpg", "origin": "cat/a.jpg", "folder": "dog", "name": "a.jpg", "temp": "",
              "row": sorted_row("a.jpg", label="dog")}  # fmt: skip
    write(path, ("placed", {"file": "a.jpg", "destination": "cat/a.jpg", "action": "moved"}), ("relocating", moving))
    record = read_journal(path).files["a.jpg"]
    assert record.relocating["origin"] == "cat/a.jpg" and record.placed["destination"] == "cat/a.jpg"
    write(path, ("placed", {"file": "a.jpg", "destination": "dog/a.jpg", "action": "moved"}))
    record = read_journal(path).files["a.jpg"]
    assert record.relocating is None and record.placed["destination"] == "dog/a.jpg"


def test_done_with_retry_and_undone(tmp_path):
    path = journal_path(tmp_path)
    write(
        path,
        ("done", {"file": "changed.jpg", "row": error_row("changed.jpg", "cd" * 32), "retry": True}),
        ("done", {"file": "unreadable.jpg", "row": error_row("unreadable.jpg")}),
        ("done", {"file": "broken.jpg", "row": error_row("broken.jpg", "ef" * 32)}),  # the image itself is bad
        ("done", {"file": "fine.jpg", "row": sorted_row("fine.jpg")}),
        ("done", {"file": "later.jpg", "row": error_row("later.jpg", "01" * 32), "retry": True}),
        ("done", {"file": "later.jpg", "row": sorted_row("later.jpg")}),  # tried again and sorted
        ("undone", {"file": "fine.jpg"}),
    )
    state = read_journal(path)
    assert state.files["changed.jpg"].retry and not state.files["broken.jpg"].retry
    assert not state.files["later.jpg"].retry and state.files["later.jpg"].done["status"] == "sorted"
    assert state.to_retry() == {"changed.jpg", "unreadable.jpg"}
    assert state.files["fine.jpg"].undone and not state.files["later.jpg"].undone
    assert [row["file"] for row in state.done_rows] == ["changed.jpg", "unreadable.jpg", "broken.jpg", "fine.jpg",
                                                        "later.jpg"]  # fmt: skip


def test_the_latest_run_line_gives_the_settings_and_lines_without_a_file_are_ignored(tmp_path):
    path = journal_path(tmp_path)
    resorted = {**SETTINGS, "prompts": {"dog": ["a dog"]}}
    write(path, ("run", {"settings": SETTINGS}), ("note", {"text": "no file"}), ("run", {"settings": resorted}))
    state = read_journal(path)
    assert state.settings == resorted and state.files == {}


def test_a_torn_last_line_is_skipped_counted_and_the_next_event_starts_a_line(tmp_path):
    path = journal_path(tmp_path)
    write(path, ("done", {"file": "a.jpg", "row": sorted_row("a.jpg")}))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"event": "done", "file": "b.jpg", "row": {"fi')  # killed in the middle of a line
    state = read_journal(path)
    assert state.torn_lines == 1 and list(state.files) == ["a.jpg"]
    write(path, ("done", {"file": "c.jpg", "row": sorted_row("c.jpg")}))  # a resumed run appends
    state = read_journal(path)
    assert state.torn_lines == 1 and list(state.files) == ["a.jpg", "c.jpg"]
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[-1])["file"] == "c.jpg"


def test_a_name_that_is_not_utf8_round_trips(tmp_path):
    path = journal_path(tmp_path)
    write(path, ("placed", {"file": NOT_UTF8, "destination": f"cat/{NOT_UTF8}", "action": "copied"}),
          ("done", {"file": NOT_UTF8, "row": sorted_row(NOT_UTF8)}))  # fmt: skip
    path.read_bytes().decode("utf-8")  # the journal stays valid UTF-8
    state = read_journal(path)
    assert list(state.files) == [NOT_UTF8]
    record = state.files[NOT_UTF8]
    assert record.placed["destination"].encode("utf-8", "surrogateescape") == b"cat/caf\xe9 \xff.jpg"
    assert record.done["file"] == NOT_UTF8 and state.torn_lines == 0
