"""The command line of validation: `sample`, `evaluate` and `report`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .printing import TextReport, print_outcome


def _parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"smart-sorter {name}", description=description)
    parser.add_argument("--verbose", action="store_true", help="show details of errors")
    return parser


def sample_command(argv: Sequence[str]) -> int:
    parser = _parser("sample", "Draw a random sample of a finished run's files to label by hand.")
    parser.add_argument("destination", type=Path, help="the destination folder of a finished run")
    parser.add_argument("--size", "-n", type=int, default=50, help="how many files (50)")
    parser.add_argument("--stratified", action="store_true", help="spread the sample evenly over the labels")
    parser.add_argument("--seed", type=int, default=0, help="random seed, for a sample that can be drawn again (0)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--csv",
        type=Path,
        help="write a CSV (id, file, empty label) to fill in, and copies named by id into <name>_files/ beside it",
    )
    where.add_argument(
        "--folders", type=Path, help="copy the files into NEW/_to_label, beside a folder per label, to drag them into"
    )
    arguments = parser.parse_args(argv)
    from ..validation.sampling import take_sample

    def work():
        output = arguments.folders if arguments.folders is not None else arguments.csv
        return take_sample(arguments.destination, output, arguments.size, as_folders=arguments.folders is not None,
                           stratified=arguments.stratified, seed=arguments.seed)  # fmt: skip

    return print_outcome(work, arguments.verbose)


def evaluate_command(argv: Sequence[str]) -> int:
    parser = _parser("evaluate", "Measure a sorting against hand labels: accuracy, macro F1, kappa, alpha.")
    parser.add_argument("--results", type=Path, required=True, help="output.csv of the run, or its destination")
    parser.add_argument(
        "--truth", type=Path, required=True, help="CSV with file,label columns, or a folder of label folders"
    )
    parser.add_argument("--report", type=Path, help="also write the HTML report, with the evaluation, to this file")
    parser.add_argument("--force", action="store_true", help="let --report replace an existing file")
    parser.add_argument(
        "--precision", type=float, default=0.9, help="advise per-label thresholds that reach this precision (0.9)"
    )
    parser.add_argument("--blur", action="store_true", help="in the report, blur images until clicked")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="resamples for the intervals of macro F1, kappa and alpha; 0 for none (accuracy's is Wilson's) (1000)",
    )
    arguments = parser.parse_args(argv)

    def work() -> TextReport:
        destination = arguments.results if arguments.results.is_dir() else arguments.results.parent
        if arguments.report is None:
            return _evaluated(arguments, destination)
        from ..validation.html_report import report_lock, report_path

        report_path(destination, arguments.report, force=arguments.force)  # refused before the work, not after
        with report_lock(destination):  # the table the report shows is the one evaluated: no run changes it between
            return _evaluated(arguments, destination)

    return print_outcome(work, arguments.verbose)


def _evaluated(arguments: argparse.Namespace, destination: Path) -> TextReport:
    """`evaluate`'s work: the table against the truth, thresholds advised, the report written if asked."""
    from ..storage.tables import read_results
    from ..validation.evaluation import advise_thresholds, evaluate, run_categories
    from ..validation.presence import is_detection_table

    table = read_results(arguments.results)
    if is_detection_table(table):  # a detection run: is each object found where it is?
        return _presence_report(arguments, table, destination)
    categories = run_categories(arguments.results, table)
    evaluation = evaluate(table, arguments.truth, bootstrap=max(arguments.bootstrap, 0), categories=categories)
    advice = advise_thresholds(table, evaluation.pairs, precision=arguments.precision)  # truth read once
    lines = [evaluation.summary(), f"Thresholds for a precision of {arguments.precision:.2f} (from the sample):"]
    for label, row in advice.iterrows():
        labelled, left = int(row["labelled"]), int(row["would_be_uncertain"])
        if row["threshold"] != row["threshold"]:  # NaN
            lines.append(f"  {label}: no threshold reaches it on the {labelled} labelled file(s)")
        elif row["threshold"] == 0:
            lines.append(f"  {label}: reached without a threshold ({labelled} labelled file(s))")
        else:
            lines.append(
                f"  {label}: threshold {row['threshold']:.3f} (precision {row['precision_reached']:.2f} on"
                f" {labelled} labelled file(s)) would leave {left} file(s) uncertain"
            )
    if arguments.report is not None:
        from ..validation.html_report import write_report

        written = write_report(destination, arguments.report, results=table, evaluation=evaluation,
                               blur=arguments.blur, force=arguments.force, locked=True)  # fmt: skip
        lines.append(f"Report: {written}")
    return TextReport("\n".join(lines))


def _presence_report(arguments: argparse.Namespace, table: Any, destination: Path) -> TextReport:
    """`evaluate` of a detection run: each object's precision and recall, and the report with them if asked."""
    from ..validation.presence import evaluate_presence

    presence = evaluate_presence(arguments.results, arguments.truth)
    if arguments.report is None:
        return TextReport(presence.summary())
    from ..validation.html_report import write_report

    written = write_report(destination, arguments.report, results=table, presence=presence,
                           blur=arguments.blur, force=arguments.force, locked=True)  # fmt: skip
    return TextReport(f"{presence.summary()}\nReport: {written}")


def report_command(argv: Sequence[str]) -> int:
    parser = _parser("report", "Write one self-contained HTML file showing a sorting (works offline).")
    parser.add_argument("destination", type=Path, help="the destination folder of a run")
    parser.add_argument("--output", "-o", type=Path, help="where to write it (DESTINATION/report.html)")
    parser.add_argument("--truth", type=Path, help="hand labels (CSV or folders): adds the evaluation")
    parser.add_argument("--per-label", type=int, default=24, help="images shown per label (24)")
    parser.add_argument("--blur", action="store_true", help="blur images until clicked (graphic material)")
    parser.add_argument("--force", action="store_true", help="replace an existing report file")
    arguments = parser.parse_args(argv)
    from ..storage.tables import read_results
    from ..validation.evaluation import evaluate
    from ..validation.html_report import report_path, write_report
    from ..validation.presence import evaluate_presence, is_detection_table

    def work() -> TextReport:
        report_path(arguments.destination, arguments.output, force=arguments.force)  # refused before the work
        evaluation = presence = None
        if arguments.truth is not None and is_detection_table(read_results(arguments.destination)):
            presence = evaluate_presence(arguments.destination, arguments.truth)
        elif arguments.truth is not None:
            evaluation = evaluate(arguments.destination, arguments.truth)
        written = write_report(arguments.destination, arguments.output, evaluation=evaluation, presence=presence,
                               per_label=arguments.per_label, blur=arguments.blur, force=arguments.force)  # fmt: skip
        return TextReport(f"Report: {written}")

    return print_outcome(work, arguments.verbose)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "sample": sample_command,
    "evaluate": evaluate_command,
    "report": report_command,
}
