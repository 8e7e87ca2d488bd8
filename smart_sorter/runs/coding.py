"""The coding run: every image answered against a codebook by a vision-language model, into coding.csv.

Planned first (`coding_plan`: files, codebook, table; nothing written), then, holding the destination's
lock, it reads its journal (`.smart-sorter/coding.jsonl`): a rerun asks only about the files not
answered yet (and those whose request failed on the way), so no answer is paid for twice. A file whose
answers never fit the codebook keeps its error row, which was paid for: a rerun does not ask again unless
`retry_errors` is set, and then the new row's tokens and cost include the earlier ones. Each batch's rows
are journaled and appended to coding.csv as they come. With `sort_by`, each answered file is also copied
(or moved) into the folder of its value through the same verified, journaled placement as sorting, which
`smart-sorter undo` reverses. A video is answered from its sampled frames, sent together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.codebook import Codebook
from ..core.coding import (
    CODED,
    CODING_JOURNAL_NAME,
    CODING_MANIFEST_NAME,
    ERROR,
    CodingOptions,
    Seen,
    coding_row,
    paid_before,
    spent,
)
from ..errors import DestinationError
from ..options import MEGABYTE, STATE_FOLDER_NAME
from ..pipeline.finding import FoundFile
from ..pipeline.reading import Prepared, chunks
from ..pipeline.vlm_media import CodingMedia, seen_of
from ..storage.finished import interrupted_undo_message
from ..storage.journal import Journal, JournalState, read_journal
from ..storage.lock import DestinationLock
from ..storage.organising import Organiser, Recovery, recover
from ..storage.tables import CsvLog, read_manifest, write_manifest
from .coding_plan import CodingPlan, as_codebook, plan_coding
from .outcome import spoken_duration

Notify = Callable[[str], None]


@dataclass
class CodingResult:
    """The outcome of `code_images`: the table of coding.csv and what it cost."""

    table: Any  # pandas.DataFrame with the columns of coding.csv
    csv_path: Path
    destination: Path
    codebook: Codebook
    model: str
    status_counts: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    resumed_files: int = 0
    already_done: bool = False
    stopped: str = ""  # why the run stopped before the end (cost limit, stop), or ''
    skipped: list[tuple[str, str]] = field(default_factory=list)
    asked_again: int = 0  # files whose error rows were asked again (retry_errors)

    @property
    def videos(self) -> tuple[int, int]:
        """How many files were videos answered from their frames, and how many frames they sent."""
        shown = self.table[(self.table["media"] == "video") & (self.table["status"] == CODED)]
        return len(shown), int(shown["frames_sent"].astype(int).sum()) if len(shown) else 0

    def summary(self) -> str:
        total = len(self.table)
        if self.already_done:
            head = f"Already done: each of the {total} files has its row in {self.csv_path}; nothing was asked."
        else:
            head = f"Coded {self.status_counts.get(CODED, 0)} of {total} files with {self.model} into {self.csv_path}."
        lines = [head]
        videos, frames = self.videos
        if videos:
            lines.append(f"{videos} of the files were videos, answered from {frames} frames sent with them.")
        if self.status_counts.get(ERROR):
            lines.append(
                f"{self.status_counts[ERROR]} files have no answer (status error; the table says why). Answers"
                " already paid for are kept: to ask (and pay) again, run the same command with --retry-errors"
                " (in the form: Ask errors again)."
            )
        if self.asked_again:
            lines.append(f"{self.asked_again} files with errors were asked again (their cost includes the first try).")
        if self.resumed_files and not self.already_done:
            lines.append(f"{self.resumed_files} files were coded by an earlier run and not asked again.")
        lines.append(f"Tokens: {self.tokens_in:,} in, {self.tokens_out:,} out; cost {self.cost:.4f}.")
        if self.skipped:
            shown = "; ".join(f"{file}: {reason}" for file, reason in self.skipped[:3])
            lines.append(f"{len(self.skipped)} files passed over: {shown}")
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped} Run the same command again to code the rest.")
        return "\n".join(lines)


def load_coder(options: CodingOptions, notify: Notify | None = None) -> Any:
    """The backend that answers: a local transformers model, or an OpenAI-compatible server."""
    if options.backend == "openai":
        from ..pipeline.vlm_openai import OpenAICoder

        return OpenAICoder(options, notify=notify)
    from ..pipeline.vlm_local import LocalCoder

    return LocalCoder(options)


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .._version import __version__

    found = {"python": platform.python_version(), "smart-sorter": __version__}
    for package in ("torch", "transformers", "openai", "xgrammar", "pillow"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CodingRun:
    """One coding job with a given backend (loaded on first need if not given)."""

    def __init__(
        self, options: CodingOptions, *, coder: Any = None, notify: Notify | None = None,
        stop: threading.Event | None = None, progress_bar: bool = True,
    ) -> None:  # fmt: skip
        self.options = options
        self.notify = notify or (lambda message: None)
        self.coder = coder or load_coder(options, self.notify)
        self.stop = stop or threading.Event()
        self.progress_bar = progress_bar
        self.stopped = ""
        self.earlier: dict[str, dict[str, Any]] = {}  # rows of files asked again, whose cost the new rows add

    def run(self, plan: CodingPlan) -> CodingResult:
        journal_file = plan.destination / STATE_FOLDER_NAME / CODING_JOURNAL_NAME
        if self._to_code(plan, read_journal(journal_file)):
            self.coder.load()  # a model or server that cannot be used fails here, before anything is written
        try:
            plan.destination.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            where = str(plan.destination)
            raise DestinationError(f"Cannot create the destination {where!r}: {error.strerror}.") from None
        with DestinationLock(plan.destination, "coding run"):
            state = read_journal(journal_file)  # read again: now no one else writes
            if state.retiring is not None:
                raise DestinationError(interrupted_undo_message(plan.destination))
            _check_same_coding(state, plan)
            return self._run_locked(plan, state, journal_file)

    def _again(self, state: JournalState) -> set[str]:
        """Files recorded before that are asked again: failures that may pass, and with retry_errors every
        error row (answers that never fit, files that could not be read)."""
        again = state.to_retry()
        if self.options.retry_errors:
            again |= {file for file, record in state.files.items() if record.done and record.done["status"] == ERROR}
        return again

    def _to_code(self, plan: CodingPlan, state: JournalState) -> list[FoundFile]:
        again = self._again(state)
        return [found for found in plan.files if found.relative not in state.files or found.relative in again]

    def _run_locked(self, plan: CodingPlan, state: JournalState, journal_file: Path) -> CodingResult:
        resuming = state.settings is not None
        to_code = self._to_code(plan, state)
        in_flight = any(record.done is None and record.claiming for record in state.files.values())
        finished = read_manifest(plan.destination, CODING_MANIFEST_NAME).get("status") == "finished"
        if resuming and not to_code and not in_flight and finished:  # else coding.csv may lag the journal
            return self._result(plan, state.done_rows, resumed=0, already_done=True)
        journal = Journal(journal_file)
        organiser = Organiser(plan.destination, self.options.operation, journal)
        recovery = recover(state, plan.destination) if resuming else Recovery([], {})
        retry = self._again(state)
        self.earlier = {row["file"]: row for row in state.done_rows if row["file"] in retry}
        rows = [row for row in state.done_rows if row["file"] not in retry] if resuming else []
        rows += [organiser.finish(row) for row in recovery.finished]
        resumed = len(rows)
        log = CsvLog(plan.csv_path, plan.columns, resumed_rows=rows if resuming else None)
        journal.write("run", settings=plan.settings, started=_now(), resumed=resuming)
        manifest, status = self._manifest(plan, resuming), "interrupted"
        try:
            write_manifest(plan.destination / CODING_MANIFEST_NAME, manifest)
            by_name = {found.relative: found for found in plan.files}
            for file, row in recovery.to_place.items():  # answered before an interruption: placed now
                if file in by_name:
                    rows.append(self._finish(organiser, plan, by_name[file], row))
                    log.write([rows[-1]])
            self._code(to_code, plan, organiser, log, rows)
            status = "stopped" if self.stopped else "finished"
        finally:
            answered = {row["file"] for row in rows}
            left = [row for file, row in self.earlier.items() if file not in answered]  # not asked again yet
            log.write(left)
            rows.extend(left)
            log.close()
            journal.close()
            tokens_in, tokens_out, cost = spent(rows)
            manifest.update(status=status, finished=_now(), files=len(rows), tokens_in=tokens_in,
                            tokens_out=tokens_out, cost=cost, model=self.coder.describe())  # fmt: skip
            write_manifest(plan.destination / CODING_MANIFEST_NAME, manifest)
        result = self._result(plan, rows, resumed=resumed)
        result.asked_again = len(answered & set(self.earlier) & {found.relative for found in to_code})
        return result

    def _manifest(self, plan: CodingPlan, resuming: bool) -> dict[str, Any]:
        return {
            "tool": "smart-sorter", "kind": "coding", "status": "running", **plan.settings,
            "destination": str(plan.destination), "options": asdict(self.options), "versions": _versions(),
            "started": _now(), "resumed": resuming, "files_found": len(plan.files),
            "skipped": [{"file": skip.relative, "reason": skip.reason} for skip in plan.skipped],
        }  # fmt: skip

    def _code(self, files: list[FoundFile], plan: CodingPlan, organiser: Organiser, log: CsvLog, rows: list) -> None:
        from tqdm.auto import tqdm

        options, coder = self.options, self.coder
        media = CodingMedia(coder, options.video_frames)
        stream = media.stream(files, workers=2, lookahead=2 * options.concurrency,
                              max_bytes=options.max_image_mb * MEGABYTE)  # fmt: skip
        bar = tqdm(total=len(files), unit="img", disable=not self.progress_bar, desc="Coding", dynamic_ncols=True)
        started, asked = time.perf_counter(), 0
        for chunk in chunks(stream, options.concurrency):
            if self._should_stop(rows):  # the cost limit counts what earlier runs of this coding spent too
                break
            done = self._code_chunk(chunk, plan, organiser)
            organiser.sync()
            log.write(done)
            rows.extend(done)
            bar.update(len(chunk))
            asked += len(chunk)
            if asked == len(chunk):
                self._estimate(done, len(files), time.perf_counter() - started)
        bar.close()

    def _code_chunk(self, chunk: list[Prepared], plan: CodingPlan, organiser: Organiser) -> list[dict[str, Any]]:
        readable = [item for item in chunk if not item.error]
        answers = iter(self.coder.code([item.pixels for item in readable], plan.codebook)) if readable else iter(())
        done = []
        for item in chunk:
            earlier = self.earlier.get(item.found.relative)
            if item.error:
                seen = Seen("video" if item.found.kind == "video" else "image")
                row = coding_row(item.found.relative, item.sha256, plan.codebook, None, self.options,
                                 error=item.error, seen=seen)  # fmt: skip
                done.append(organiser.finish(paid_before(row, earlier) if earlier else row))
                continue
            coded = next(answers)
            row = coding_row(item.found.relative, item.sha256, plan.codebook, coded, self.options,
                             seen=seen_of(item.pixels))  # fmt: skip
            row = paid_before(row, earlier) if earlier else row
            if coded.transient:
                done.append(organiser.finish(row, retry=True))
            else:
                done.append(self._finish(organiser, plan, item.found, row))
        return done

    def _finish(self, organiser: Organiser, plan: CodingPlan, found: FoundFile, row: dict[str, Any]) -> dict:
        """Record a row; with --sort-by, an answered file is first copied into its value's folder."""
        value = row.get(self.options.sort_by) if self.options.sort_by else None
        if row["status"] != CODED or value not in plan.folder_paths:
            return organiser.finish({**row, "destination": "", "action": ""} if plan.folder_paths else row)
        return organiser.place(found.path, plan.folder_paths[value], row)

    def _estimate(self, first: list[dict[str, Any]], total: int, seconds: float) -> None:
        if not first or total <= len(first):
            return
        _, _, cost = spent(first)
        self.notify(coding_estimate(len(first), seconds, cost, total))

    def _should_stop(self, rows: list[dict[str, Any]]) -> bool:
        limit = self.options.max_cost
        if limit is not None and spent(rows)[2] >= limit:
            self.stopped = f"the cost limit of {limit:g} was reached ({spent(rows)[2]:.4f} spent)."
            return True
        if self.stop.is_set():
            self.stopped = "asked to stop."
            return True
        return False

    def _result(self, plan: CodingPlan, rows: list[dict[str, Any]], *, resumed: int, already_done: bool = False):
        import pandas as pd

        tokens_in, tokens_out, cost = spent(rows)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return CodingResult(
            table=pd.DataFrame(rows, columns=list(plan.columns)), csv_path=plan.csv_path,
            destination=plan.destination, codebook=plan.codebook, model=self.options.model_name,
            status_counts=counts, tokens_in=tokens_in, tokens_out=tokens_out, cost=cost, resumed_files=resumed,
            already_done=already_done, stopped=self.stopped,
            skipped=[(skip.relative, skip.reason) for skip in plan.skipped],
        )  # fmt: skip


def coding_estimate(done: int, seconds: float, cost: float, total: int) -> str:
    """'About 12 minutes and 3.10 (at your prices) for 5,000 images, from the first 4.'"""
    expected = total * seconds / max(done, 1)
    duration = spoken_duration(expected)
    amount = cost / max(done, 1) * total
    price = f" and {amount:.2f} (at your prices)" if amount >= 0.01 else " and under 0.01 (at your prices)"
    price = price if cost else ""
    return f"About {duration}{price} for {total:,} images, from the first {done}."


def _check_same_coding(state: JournalState, plan: CodingPlan) -> None:
    """A destination holding another coding (another codebook, model or server) is refused."""
    if state.settings is None or not state.files or state.settings == plan.settings:
        return
    changed = ", ".join(key for key in plan.settings if state.settings.get(key) != plan.settings[key])
    raise DestinationError(
        f"{str(plan.csv_path)!r} holds a coding with other settings ({changed} changed); only the same settings"
        " continue it. Give another --destination for the new coding."
    )


def code_images(
    source: str | Path,
    codebook: Codebook | Path | str | dict | list | None = None,
    destination: str | Path | None = None,
    options: CodingOptions | None = None,
    *,
    ask: str | None = None,
    ask_options: Any = None,
    coder: Any = None,
    notify: Notify | None = None,
    stop: threading.Event | None = None,
    progress_bar: bool = True,
    **overrides: Any,
) -> CodingResult:
    """Answer the codebook's questions for every image under `source` (a folder, or a sorting's
    destination) and write coding.csv into `destination` (beside output.csv by default for a sorting).

    `codebook` is a YAML/JSON file, a mapping of field -> {description, type, options}, or a Codebook;
    `ask` is one question instead (yes/no, or one of `ask_options`). Settings come from `options` (a
    `CodingOptions`) with any field as a keyword on top (`backend=`, `model=`, `base_url=`, `price_in=`...).
    """
    options = (options or CodingOptions()).with_changes(**overrides)
    book = as_codebook(codebook, ask, ask_options)
    plan = plan_coding(Path(source), None if destination is None else Path(destination), book, options)
    runner = CodingRun(options, coder=coder, notify=notify, stop=stop, progress_bar=progress_bar)
    return runner.run(plan)
