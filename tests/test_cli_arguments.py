"""The command line's arguments, in-process and without a model: what is accepted, what is refused, and how."""

import shlex

import pytest

from smart_sorter.cli import main
from smart_sorter.cli.arguments import labels_given, verbose_values
from smart_sorter.cli.sorting import EXAMPLE, build_parser
from smart_sorter.errors import SmartSorterError

SORT = ["--source", "src", "--destination", "out", "--labels", "a cat, a dog"]


def argument_error(capsys, argv: list[str]) -> str:
    """The exit code of argparse's errors, its usage line, and the message."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    return err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--threshold", "50"], "argument --threshold: threshold must be between 0 and 1; got 50.0."),
        (["--margin", "-1"], "argument --margin: margin must be between 0 and 1; got -1.0."),
        (["--threshold", "nan"], "threshold must be between 0 and 1"),
        (["--batch_size", "0"], "argument --batch_size/--batch-size: batch size must be at least 1; got 0."),
        (["--top_k", "0"], "argument --top_k/--top-k: top-k must be at least 1; got 0."),
        (["--top_k", "two"], "expected a whole number; got 'two'"),
        (["--device", "gpu"], "device must be one of auto, cpu, cuda, mps or cuda:N; got 'gpu'"),
        (["--template", "a photo"], "needs exactly one {} where the label goes"),
    ],
)
def test_values_out_of_range_are_argument_errors(extra, message, capsys):
    err = argument_error(capsys, SORT + extra)
    assert err.startswith("usage: smart-sorter ") and message in err
    assert "Traceback" not in err


def test_resort_checks_its_values_the_same_way(capsys):
    err = argument_error(capsys, ["resort", "out", "--labels", "a,b", "--threshold", "1.5"])
    assert err.startswith("usage: smart-sorter resort") and "threshold must be between 0 and 1" in err


@pytest.mark.parametrize("name", ["labels.yaml", "my labels.YML", "labels.json", "does-not-exist.yaml"])
def test_a_labels_file_given_as_labels_is_named(name, capsys, tmp_path):
    if name != "does-not-exist.yaml":
        (tmp_path / name).write_text("a: [x]\nb: [y]\n")
    err = argument_error(capsys, ["--source", "src", "--destination", "out", "--labels", name])
    quoted = f"'{name}'" if " " in name else name
    assert f"{name!r} looks like a labels file; give it with --labels-file {quoted}" in err
    err = argument_error(capsys, ["resort", "out", "--labels", name])
    assert "looks like a labels file" in err


def test_labels_that_mention_a_file_name_are_still_labels():
    parser = build_parser()
    labels = "a screenshot of labels.json, a cat"
    arguments = parser.parse_args(["--source", "s", "--destination", "d", "--labels", labels])
    assert labels_given(parser, arguments) == labels


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--verbose"], ["--verbose"]),
        (["--verbose=True"], ["--verbose"]),
        (["--verbose=true", "x"], ["--verbose", "x"]),
        (["--verbose=1"], ["--verbose"]),
        (["--verbose=yes"], ["--verbose"]),
        (["--verbose=False"], []),
        (["--verbose=0", "x"], ["x"]),
        (["--verbose=no"], []),
        (["--verbose", "True", "x"], ["--verbose", "x"]),
        (["--verbose", "false", "x"], ["x"]),
        (["undo", "--verbose", "sorted"], ["undo", "--verbose", "sorted"]),  # a destination, not a value
        (["--verbose", "--verbose=False"], []),  # the last one counts
        (["--verbose=False", "--verbose"], ["--verbose"]),
        (["--labels", "a,b", "--", "--verbose=no"], ["--labels", "a,b", "--", "--verbose=no"]),
    ],
)
def test_verbose_takes_the_original_tools_values(argv, expected):
    assert verbose_values(argv) == expected


def test_verbose_with_a_value_that_is_no_yes_or_no(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(SORT + ["--verbose=maybe"])
    assert exit_info.value.code == 2
    assert "argument --verbose: expected true or false (or nothing, meaning true); got 'maybe'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "command",
    [
        ["--source", "{nowhere}", "--destination", "{tmp}/out", "--labels", "a cat,a dog", "--quiet"],
        ["undo", "{tmp}"],
        ["resort", "{tmp}", "--labels", "a cat,a dog", "--quiet"],
        ["cache", "--clear"],
        ["sample", "{tmp}", "--csv", "{tmp}/sample.csv"],
        ["evaluate", "--results", "{tmp}", "--truth", "{tmp}/truth.csv"],
        ["report", "{tmp}"],
    ],
)
@pytest.mark.parametrize("flag", ["--verbose", "--verbose=True", "--verbose=False", "--verbose=no", "--verbose=1"])
def test_every_command_takes_verbose_with_or_without_a_value(command, flag, tmp_path, monkeypatch):
    """Each of these fails on an empty folder (but `cache`): verbose shows the exception, otherwise one line."""
    monkeypatch.setenv("SMART_SORTER_HOME", str(tmp_path / "home"))
    argv = [part.format(tmp=tmp_path, nowhere=tmp_path / "nowhere") for part in command] + [flag]
    verbose = flag in ("--verbose", "--verbose=True", "--verbose=1")
    if command[0] == "cache":
        assert main(argv) == 0
    elif verbose:
        with pytest.raises(SmartSorterError):
            main(argv)
    else:
        assert main(argv) == 1


def test_resort_takes_quiet(tmp_path, capsys):
    assert main(["resort", str(tmp_path), "--labels", "a cat,a dog", "--quiet"]) == 1  # not an argument error
    assert "nothing for the re-sort" in capsys.readouterr().err


def test_every_help_works_and_the_examples_use_real_arguments(capsys):
    helps = {}
    for command in ("", "undo", "resort", "cache", "sample", "evaluate", "report", "code"):
        with pytest.raises(SystemExit) as exit_info:
            main([*command.split(), "--help"])
        assert exit_info.value.code == 0
        helps[command] = capsys.readouterr().out
        assert helps[command].startswith(f"usage: smart-sorter {command}".rstrip())
    examples = [shlex.split(line.strip().rstrip("\\")) for line in EXAMPLE.splitlines() if "smart-sorter " in line]
    examples[0] += shlex.split(EXAMPLE.split("\\\n")[1]) + shlex.split(EXAMPLE.split("\\\n")[2].split("\n")[0])
    assert len(examples) == 9 and {"--source", "--labels", "--model"} <= set(examples[0])
    for words in examples:
        command = words[1] if words[1] in helps else ""
        for flag in (word.strip("[]") for word in words if word.startswith(("--", "[--"))):
            assert flag in helps[command], (command, flag)
    assert "a photo of" not in EXAMPLE and "a picture of" not in EXAMPLE  # the default template says it
