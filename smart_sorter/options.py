"""The one set of options shared by the Python API, the command line and the notebook."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import OptionError

DEFAULT_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_DETECTOR = "google/owlv2-base-patch16-ensemble"  # detection mode's model unless one is given
# The transformers zero-shot image pipeline's own default, so scores match it.
DEFAULT_TEMPLATE = "This is a photo of {}."
OUTPUT_FILE_NAME = "output.csv"
FRAMES_FILE_NAME = "frames.csv"  # beside output.csv: every scored frame of every video
MANIFEST_FILE_NAME = "smart-sorter-run.json"
PLAN_FILE_NAME = "plan.csv"  # a dry run's table: where each file would go
PLAN_MANIFEST_NAME = "smart-sorter-plan.json"
UNCERTAIN_FOLDER = "uncertain"
# Every other name the sorter may write into a destination: no label folder may take one of them.
REPORT_FILE_NAME = "report.html"
CORRECTIONS_FILE_NAME = "corrections.csv"
STATE_FOLDER_NAME = ".smart-sorter"  # the journal and the lock
PARTIAL_FILE_PREFIX = ".smart-sorter-partial-"  # a file being placed, before its final name
_TABLES = (OUTPUT_FILE_NAME, PLAN_FILE_NAME, MANIFEST_FILE_NAME, PLAN_MANIFEST_NAME, REPORT_FILE_NAME)
_TABLES += (FRAMES_FILE_NAME, f"{Path(PLAN_FILE_NAME).stem}-{FRAMES_FILE_NAME}")  # a dry run's: plan-frames.csv
SORTER_NAMES = (*_TABLES, *(f"{name}.partial" for name in _TABLES), CORRECTIONS_FILE_NAME, STATE_FOLDER_NAME)
# a file being placed, and the tables an undo keeps (output-undone-STAMP.csv, ...)
SORTER_PREFIXES = (PARTIAL_FILE_PREFIX, *(f"{Path(name).stem}-undone-" for name in _TABLES))

OPERATIONS = ("copy", "move")
PREPROCESS_MODES = ("fast", "exact")
PROMPT_MODES = ("average", "best")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # of the image tower; see pipeline/precision.py
MEGABYTE = 1024 * 1024
VIDEO_SCORES = ("auto", "mean", "max")  # a video's label from its frames; auto: mean, or max with tags
MAX_VIDEO_FRAMES = 240  # frames sampled from one video at most, whatever the sampling asks
ANIMATED_MODES = ("first", "frames")  # an animated GIF/WebP/APNG: its first frame as an image, or its frames as a video


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


@dataclass(frozen=True, kw_only=True)
class SortOptions:
    """How one run sorts: everything but the source, the destination and the labels."""

    model: str = DEFAULT_MODEL
    operation: str = "copy"
    batch_size: int = 32
    preprocess: str = "fast"
    template: str = DEFAULT_TEMPLATE
    prompt_mode: str = "average"
    top_k: int = 3
    device: str = "auto"
    revision: str | None = None
    output_file: Path | None = None  # default: DESTINATION/output.csv
    dry_run: bool = False
    threshold: float | None = None  # best probability below it: the file goes to uncertain/
    margin: float | None = None  # best minus runner-up below it: the file goes to uncertain/
    multi_label: bool = False  # every category above its threshold (default 0.5) becomes a tag
    copy_tags: bool = False  # multi-label: also copy each file into the folder of every other tag
    use_cache: bool = True  # keep image embeddings in SMART_SORTER_HOME so new labels need no image pass
    decode_workers: int | None = None  # None: chosen for the device (see Sorter.decode_workers)
    max_image_mb: int = 256  # a larger file is hashed (streamed) but not decoded: an error row says so
    precision: str = "auto"  # the image tower's: fp16 on CUDA, bf16 where native and faster, else fp32
    video_frames: int = 8  # frames sampled evenly from each video
    video_every: float | None = None  # instead: a frame every this many seconds
    video_keyframes: bool = False  # instead: the keyframes alone (fast: nothing between them is decoded)
    video_score: str = "auto"  # a video's label: mean of its frames' probabilities, or max (best frame)
    animated: str = "first"  # an animated GIF/WebP/APNG: its first frame (an image), or "frames": sampled as a video
    tiles: int = 0  # > 0: also score tiles, this many across the shorter side; a label scores its best view
    detect: bool = False  # the labels are objects to find with a zero-shot detector (the model): boxes per file
    by_example: bool = False  # detection: each object's prompts are paths of example images showing it (OWL)

    def __post_init__(self) -> None:
        if self.detect and self.model == DEFAULT_MODEL:  # the default classifier cannot detect: the default detector
            object.__setattr__(self, "model", DEFAULT_DETECTOR)
        if self.output_file is not None and not isinstance(self.output_file, Path):
            object.__setattr__(self, "output_file", Path(self.output_file))
        _check_choice("operation", self.operation, OPERATIONS)
        _check_choice("preprocess", self.preprocess, PREPROCESS_MODES)
        _check_choice("prompt mode", self.prompt_mode, PROMPT_MODES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("video score", self.video_score, VIDEO_SCORES)
        _check_choice("animated", self.animated, ANIMATED_MODES)
        if self.preprocess == "exact" and self.precision not in ("auto", "fp32"):
            raise OptionError(
                f"The exact preprocessing reproduces the model's own scores, which needs fp32; precision"
                f" {self.precision} would change them. Use precision auto or fp32 with it, or the fast preprocessing."
            )
        if not (self.device in DEVICES or self.device.startswith(("cuda:", "mps:"))):
            raise OptionError(f"device must be one of {', '.join(DEVICES)} or cuda:N; got {self.device!r}.")
        if self.batch_size < 1:
            raise OptionError(f"batch size must be at least 1; got {self.batch_size}.")
        if self.tiles < 0:
            raise OptionError(f"tiles must be 0 (no tiling) or more; got {self.tiles}.")
        if self.top_k < 1:
            raise OptionError(f"top-k must be at least 1; got {self.top_k}.")
        for name, value in (("threshold", self.threshold), ("margin", self.margin)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise OptionError(f"{name} must be between 0 and 1; got {value}.")
        if self.by_example and not self.detect:
            raise OptionError("Example images are for finding objects; turn detection on as well.")
        if self.detect and self.animated == "frames":
            raise OptionError(
                "Detection looks at still images (an animation is its first frame); leave animated images at 'first'"
                " with it, or sort without detection to score their frames."
            )
        if self.detect and self.multi_label:
            raise OptionError("Detection already finds every object in an image; turn multi-label mode off with it.")
        if self.copy_tags and not self.multi_label:
            raise OptionError("Copying into every tagged folder needs multi-label mode; turn it on as well.")
        if self.max_image_mb < 1:
            raise OptionError(f"the image size limit must be at least 1 MB; got {self.max_image_mb}.")
        if not 1 <= self.video_frames <= MAX_VIDEO_FRAMES:
            raise OptionError(f"video frames must be between 1 and {MAX_VIDEO_FRAMES}; got {self.video_frames}.")
        if self.video_every is not None and not self.video_every > 0:
            raise OptionError(f"the seconds between video frames must be more than 0; got {self.video_every}.")
        if self.decode_workers is not None and self.decode_workers < 1:
            raise OptionError(f"decode workers must be at least 1; got {self.decode_workers}.")
        rest = self.template.replace("{}", "", 1)
        if "{}" not in self.template or "{" in rest or "}" in rest:
            raise OptionError(
                f"The template {self.template!r} needs exactly one {{}} where the label goes and no other "
                'braces; write it like "This is a photo of {}.", or "{}" to use labels as written.'
            )

    @property
    def model_precision(self) -> str:
        """The precision the encoder is asked for: the exact preprocessing implies fp32."""
        return "fp32" if self.preprocess == "exact" else self.precision

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    def with_changes(self, **changes: Any) -> SortOptions:
        """A copy with some settings changed; a sentence naming the valid settings for an unknown one."""
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise OptionError(
                f"Unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(self.field_names())}."
            )
        return replace(self, **changes)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SortOptions:
        """The options a run manifest recorded (`asdict` of them), ignoring settings this version lacks."""
        known = {name: record[name] for name in cls.field_names() if name in record}
        if "use_cache" not in record and "cache" in record:  # manifests written before the rename
            known["use_cache"] = bool(record["cache"])
        return cls(**known)
