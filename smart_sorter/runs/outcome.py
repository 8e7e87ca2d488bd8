"""What a finished (or stopped) run hands back: progress reports while it runs, and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..storage.frame_table import frames_path


@dataclass(frozen=True)
class Progress:
    """How far a run is, given to an observer after each batch: files done of all found, files per
    label so far, and the pace of the files scored by this run (resumed ones cost nothing)."""

    done: int
    total: int
    label_counts: dict[str, int]
    seconds: float
    scored: int = 0  # files this run scored or read: the pace counts only these

    @property
    def rate(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 and self.scored else 0.0

    @property
    def seconds_left(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None


@dataclass
class SortResult:
    """The outcome of `sort_images`: the table of output.csv and where things were written."""

    table: Any  # pandas.DataFrame with the columns of output.csv
    csv_path: Path
    manifest_path: Path
    destination: Path
    seconds: float
    model_seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False
    resumed_files: int = 0  # done by an earlier, interrupted run of the same settings
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): found, not sorted, no row
    already_done: bool = False  # the same run again after it had finished: nothing was done
    dry_run: bool = False  # a plan: no file was placed
    # this run's embedding cache hits and misses: {"images": {"hits", "misses"}, "frames": {...}}; None without cache
    cache: dict[str, dict[str, int]] | None = None
    detect: bool = False  # a detection run: `label_counts` are files per best object, then `nothing found`

    @property
    def errors(self) -> int:
        return self.status_counts.get("error", 0)

    def _video_lines(self) -> list[str]:
        """How many of the files were videos (or animated images sorted by their frames), and where their
        frames' scores are."""
        import pandas as pd

        if "kind" not in self.table.columns:
            return []
        videos = self.table[self.table["kind"] == "video"]
        if videos.empty:
            return []
        frames = int(pd.to_numeric(videos["frames"], errors="coerce").fillna(0).sum())
        where = f"; each frame's best label in {frames_path(self.csv_path).name}" if frames else ""
        return [f"  Sorted by their frames: {sampled_files(videos['file'])}, {frames} frames scored{where}."]

    def _cache_line(self) -> list[str]:
        """How much of the run the embedding cache answered: images, and video frames when there were any."""
        kinds = (("images", "images"), ("frames", "video frames"))
        counts = [(what, (self.cache or {}).get(name) or {}) for name, what in kinds]
        if not self.cache or not any(count.get("hits") for _, count in counts):
            return []  # a first run: nothing was there to be found
        parts = [
            f"{count.get('hits', 0)} of {count.get('hits', 0) + count.get('misses', 0)} {what}"
            for what, count in counts
            if count.get("hits", 0) + count.get("misses", 0)
        ]
        return [f"  From the embedding cache: {' and '.join(parts)} (no model pass for them)."]

    def found_parts(self) -> list[str]:
        """A detection run's files in words: ['19 with objects (a rifle 7, a tank 12)', '13 with nothing found'],
        each object counted once per file, by the file's best object (its copies are in the others' folders)."""
        with_objects = self.status_counts.get("sorted", 0)
        objects = set(self.objects)
        named = ", ".join(f"{name} {count}" for name, count in self.label_counts.items() if count and name in objects)
        parts = [f"{with_objects} with objects" + (f" ({named})" if named else "")]
        if self.status_counts.get("uncertain"):
            parts.append(f"{self.status_counts['uncertain']} with nothing found")
        return parts

    @property
    def objects(self) -> list[str]:
        """The objects a detection run looked for (its label columns' names), in the user's order."""
        return [column[len("count:") :] for column in self.table.columns if column.startswith("count:")]

    def summary(self) -> str:
        """A short human summary: files per label, errors, time and where the table is."""
        total = sum(self.status_counts.values())
        if self.already_done:
            return (
                f"Nothing to do: this run had already finished, with all {total} files done; nothing was changed."
                f"\nTable: {self.csv_path}"
            )
        timing = f"{self.seconds:.1f} s"
        sorting = self.seconds - self.model_seconds
        if self.model_seconds and sorting > 0:
            new = total - self.resumed_files
            timing += f" ({self.model_seconds:.1f} s loading the model, then {new / sorting:.1f} files/s)"
        verb = "Planned" if self.dry_run else "Sorted"
        if self.detect:  # every file counted: those with objects and those without
            lines = [f"{verb} {total} files in {timing}: {', '.join(self.found_parts())}."]
        else:
            lines = [f"{verb} {self.status_counts.get('sorted', 0)} of {total} files in {timing}."]
            lines += count_lines(self.label_counts)
        if self.errors:
            lines.append(f"  {self.errors} file(s) could not be read or placed: see the 'error' column.")
        lines += self._video_lines()
        lines += self._cache_line()
        if self.skipped:
            shown = "; ".join(f"{file} ({reason})" for file, reason in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more (listed in the run manifest)" if len(self.skipped) > 3 else ""
            lines.append(f"  {len(self.skipped)} file(s) or folder(s) were passed over: {shown}{more}.")
        if self.resumed_files:
            lines.append(f"  {self.resumed_files} file(s) had been done by the interrupted run that this one finished.")
        if self.stopped_early:
            lines.append("  The run stopped early; output.csv lists the files done so far.")
        if self.dry_run:
            lines.append("  Dry run: no file was placed; the 'destination' column shows where each would go.")
        lines.append(f"{'Plan' if self.dry_run else 'Table'}: {self.csv_path}")
        return "\n".join(lines)


def count_lines(label_counts: dict[str, int]) -> list[str]:
    """Files per label as aligned summary lines."""
    width = max((len(label) for label in label_counts), default=0)
    return [f"  {label:<{width}}  {count}" for label, count in label_counts.items()]


def sampled_files(names: Any) -> str:
    """'2 videos and 1 animated image': the files sorted by their frames, told apart by name (an animated
    GIF, WebP or PNG that `--animated frames` sampled has a row of kind video too)."""
    from ..pipeline.animation import ANIMATED_SUFFIXES

    names = list(names)
    animations = sum(Path(str(name)).suffix.lower() in ANIMATED_SUFFIXES for name in names)
    counts = ((len(names) - animations, "video", "videos"), (animations, "animated image", "animated images"))
    return " and ".join(f"{count} {one if count == 1 else many}" for count, one, many in counts if count)


def spoken_duration(seconds: float) -> str:
    """'45 seconds', '12 minutes' or '3.5 hours': how long a run is expected to take, in words."""
    if seconds < 120:
        whole = max(1, round(seconds))
        return "1 second" if whole == 1 else f"{whole} seconds"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"
