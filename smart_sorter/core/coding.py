"""Coding with a vision-language model: its settings, and the rows of coding.csv as pure functions.

coding.csv has one row per file: `file` (as in output.csv), one column per codebook field, then
`status` (`coded` or `error`), `error`, `media` (`image` or `video`), `frames_sent` (how many of a video's
frames the model saw, 1 for an image), `model`, `tokens_in`, `tokens_out`, `cost`, `attempts`, `raw_answer` and
`sha256`; with `--sort-by`, also `destination` and `action` as in output.csv. A file's tokens and cost are
all that was paid for it, answers asked again by `--retry-errors` included.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import OptionError
from .codebook import Codebook, cell

CODING_FILE_NAME = "coding.csv"
CODING_JOURNAL_NAME = "coding.jsonl"  # in the destination's .smart-sorter folder
CODING_MANIFEST_NAME = "smart-sorter-coding.json"  # the run's record: model, codebook, settings, totals
BACKENDS = ("local", "openai")
DEFAULT_MODELS = {"local": "HuggingFaceTB/SmolVLM-256M-Instruct", "openai": "gpt-4o-mini"}
CODED, ERROR = "coded", "error"
TRAILING_COLUMNS = ("status", "error", "media", "frames_sent", "model", "tokens_in", "tokens_out", "cost", "attempts")
TRAILING_COLUMNS += ("raw_answer", "sha256")
PLACED_COLUMNS = ("destination", "action")
PER_MILLION = 1_000_000
MAX_CODING_FRAMES = 32  # a video's frames in one request at most: each costs an image's tokens


@dataclass(frozen=True, kw_only=True)
class CodingOptions:
    """How one coding run asks its questions: everything but the source, the destination and the codebook."""

    backend: str = "local"
    model: str | None = None  # None: the backend's default (DEFAULT_MODELS)
    base_url: str | None = None  # the OpenAI-compatible server; None: OpenAI's own
    price_in: float = 0.0  # per million tokens read (the prompt and the image)
    price_out: float = 0.0  # per million tokens written
    max_cost: float | None = None  # the run stops cleanly once it has spent this much
    tries: int = 3  # an answer that does not fit the codebook is asked again, with its problems, up to this
    concurrency: int = 4  # requests in flight at once (openai) / images per batch (local)
    max_new_tokens: int = 256
    image_size: int = 1024  # the longer side of the image sent, in pixels
    timeout: float = 120.0  # seconds for one request
    network_retries: int = 4  # a failed request (network, rate limit, server error) is retried with back-off
    device: str = "auto"
    sort_by: str | None = None  # a field whose value names the folder each file is placed into
    operation: str = "copy"  # with sort_by: copy or move the files into their folders, as sorting does
    max_image_mb: int = 256
    video_frames: int = 4  # a video is answered from this many frames, evenly spaced, sent in one request
    retry_errors: bool = False  # a rerun asks again (and pays again) for files whose answers never fit

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptionError(f"backend must be one of {', '.join(BACKENDS)}; got {self.backend!r}.")
        if self.operation not in ("copy", "move"):
            raise OptionError(f"operation must be copy or move; got {self.operation!r}.")
        for name in ("price_in", "price_out"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name.replace('_', ' ')} must be 0 or more (per million tokens).")
        if self.max_cost is not None and self.max_cost <= 0:
            raise OptionError(f"the cost limit must be above 0; got {self.max_cost}.")
        if self.operation == "move" and self.sort_by is None:
            raise OptionError("operation move goes with sort_by (--sort-by FIELD): without it no file is placed.")
        if not 1 <= self.video_frames <= MAX_CODING_FRAMES:
            raise OptionError(f"video frames must be between 1 and {MAX_CODING_FRAMES}; got {self.video_frames}.")
        for name in ("tries", "concurrency", "max_new_tokens", "image_size", "max_image_mb"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name.replace('_', ' ')} must be at least 1; got {getattr(self, name)}.")
        if self.network_retries < 0 or self.timeout <= 0:
            raise OptionError("network retries must be 0 or more and the timeout above 0 seconds.")

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS[self.backend]

    def with_changes(self, **changes: Any) -> CodingOptions:
        names = {field.name for field in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise OptionError(f"Unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(sorted(names))}.")
        return replace(self, **changes)


def coding_columns(codebook: Codebook, *, placed: bool = False) -> tuple[str, ...]:
    return ("file", *codebook.names, *TRAILING_COLUMNS, *(PLACED_COLUMNS if placed else ()))


def cost_of(tokens_in: int, tokens_out: int, options: CodingOptions) -> float:
    """What the tokens cost at the user's prices (per million tokens)."""
    return (tokens_in * options.price_in + tokens_out * options.price_out) / PER_MILLION


@dataclass
class Coded:
    """What the model said of one image: the values when the answer fit, else why not."""

    values: dict[str, Any]
    problems: tuple[str, ...] = ()
    raw: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0
    failure: str = ""  # the request itself failed (network, server): no answer at all
    transient: bool = False  # that failure may pass: a rerun asks again


@dataclass(frozen=True)
class Seen:
    """What the model was shown of one file: an image, or a video's frames at `times` (seconds)."""

    kind: str = "image"
    times: tuple[float, ...] = ()
    duration: float | None = None

    @property
    def frames(self) -> int:
        return len(self.times) if self.kind == "video" else 1


def video_prompt(prompt: str, seen: Seen) -> str:
    """The codebook's instructions for a video: its frames come first, in order, and the answer is the video's."""
    if seen.kind != "video":
        return prompt
    times = ", ".join(f"{moment:.1f}" for moment in seen.times)
    length = f" of a video {seen.duration:.1f} s long" if seen.duration else " of a video"
    intro = (
        f"The {len(seen.times)} images are frames{length}, in order, taken at {times} s. Answer for the video as a"
        " whole: count what is in the video, not in each frame added up."
    )
    return intro + "\n" + prompt.replace("Look at the image and answer", "Answer", 1)


def coding_row(
    relative: str, sha256: str, codebook: Codebook, coded: Coded | None, options: CodingOptions, *, error: str = "",
    seen: Seen | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One coding.csv row: the answer's values, or empty fields and the reason (`error` when the file
    could not be read, so no model was asked)."""
    seen = seen or Seen()
    row: dict[str, Any] = {"file": relative, **{name: "" for name in codebook.names}}
    row |= {"media": seen.kind, "frames_sent": seen.frames if coded is not None else 0}
    row |= {"model": options.model_name, "sha256": sha256, "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
    row |= {"attempts": 0, "raw_answer": ""}
    if coded is None:
        return row | {"status": ERROR, "error": error}
    row |= {"tokens_in": coded.tokens_in, "tokens_out": coded.tokens_out, "attempts": coded.attempts}
    row |= {"cost": cost_of(coded.tokens_in, coded.tokens_out, options), "raw_answer": coded.raw}
    if coded.failure:
        return row | {"status": ERROR, "error": coded.failure}
    if coded.problems:
        tries = f"{coded.attempts} answer{'s' if coded.attempts != 1 else ''}"
        return row | {"status": ERROR, "error": f"no answer fit the codebook in {tries}: " + "; ".join(coded.problems)}
    return row | {name: cell(value) for name, value in coded.values.items()} | {"status": CODED, "error": ""}


def paid_before(row: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    """A file's new row with what its earlier answers (asked again by --retry-errors) cost added: a file's
    tokens and cost stay all that was paid for it."""
    added = {name: int(row.get(name) or 0) + int(earlier.get(name) or 0) for name in ("tokens_in", "tokens_out")}
    added["attempts"] = int(row.get("attempts") or 0) + int(earlier.get("attempts") or 0)
    return row | added | {"cost": float(row.get("cost") or 0.0) + float(earlier.get("cost") or 0.0)}


def spent(rows: list[dict[str, Any]]) -> tuple[int, int, float]:
    """Tokens in, tokens out and cost of rows (as journaled, or read back from coding.csv)."""
    tokens_in = sum(int(row.get("tokens_in") or 0) for row in rows)
    tokens_out = sum(int(row.get("tokens_out") or 0) for row in rows)
    return tokens_in, tokens_out, sum(float(row.get("cost") or 0.0) for row in rows)
