"""Exceptions a user may meet. Each message names the file, label or model and says what to do."""

from __future__ import annotations

import errno


class SmartSorterError(Exception):
    """Base class: the command line and the notebook show these as one sentence, never a traceback."""


class SourceError(SmartSorterError):
    """The source folder is missing, unreadable or holds no images."""


class DestinationError(SmartSorterError):
    """The destination cannot be used: inside-out with the source, not writable, or already used."""


class LabelError(SmartSorterError):
    """The labels are unusable: too few, empty, repeated, or sharing a folder."""


class ModelError(SmartSorterError):
    """The model cannot be loaded or is not a zero-shot image classifier."""


class OptionError(SmartSorterError):
    """An option has a value outside its valid choices."""


class DiskFullError(SmartSorterError):
    """The destination's disk is full; the run stopped with nothing half-written under a final name."""

    ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})

    @classmethod
    def at(cls, folder: object) -> DiskFullError:
        return cls(
            f"The disk holding {str(folder)!r} is full; nothing was left half-written. Free some space or choose"
            " another destination, then run the same command again: it finishes the run."
        )


class DecodeError(SmartSorterError):
    """One image could not be read; it becomes an `error` row and the run goes on."""


class PlacementError(SmartSorterError):
    """One file could not be copied or moved; it becomes an `error` row and the run goes on."""


# the settings of how videos are sampled and scored (SortOptions fields); re-sorting keeps them
VIDEO_SETTINGS = ("video_frames", "video_every", "video_keyframes", "video_score", "animated")


class OtherRunError(DestinationError):
    """The destination holds another run: only the same settings resume it; new labels go through re-sorting."""

    LABEL_SETTINGS = frozenset({"prompts", "prompt_mode", "threshold", "margin"})

    def __init__(self, destination: object, differences: list[str], *, finished: bool) -> None:
        self.destination = str(destination)
        self.differences = list(differences)
        self.finished = finished
        super().__init__(self.message_for("python"))

    @property
    def only_labels_changed(self) -> bool:
        return self.finished and set(self.differences) <= self.LABEL_SETTINGS

    def message_for(self, surface: str) -> str:
        """The sentence in the words of the surface showing it: `cli`, `python` or `form`."""
        where, changed = self.destination, ", ".join(self.differences)
        resort = {
            "cli": f'`smart-sorter resort "{where}" --labels "..."`',
            "python": f"`smart_sorter.resort({where!r}, labels)`",
            "form": "the Re-sort button",
        }[surface]
        undo = {
            "cli": f'`smart-sorter undo "{where}"`',
            "python": f"`smart_sorter.undo({where!r})`",
            "form": "the Undo button",
        }[surface]
        if self.only_labels_changed:
            return (
                f"The destination {where!r} already holds a finished sorting with other labels ({changed} changed)."
                f" To sort its files again with these labels, re-sort it in place with {resort}: it reuses the"
                " cached embeddings. Or choose a new destination."
            )
        state = "a finished run" if self.finished else "an unfinished run"
        finish = "" if self.finished else " Start it again with its own settings to finish it,"
        why = ""
        if self.finished and set(self.differences) & set(VIDEO_SETTINGS):
            why = " Re-sorting cannot do it: it reuses the frames the run scored, as the run combined them."
        return (
            f"The destination {where!r} holds {state} with other settings ({changed} changed).{why}{finish}"
            f" {'U' if self.finished else 'u'}ndo it with {undo}, or choose a new destination."
        )


class BusyError(DestinationError):
    """Another smart-sorter process is working on the same destination."""


class CodebookError(SmartSorterError):
    """The codebook (the questions asked of each image) is unusable: a field without a type, bad options."""


class BackendError(SmartSorterError):
    """The vision-language model's server cannot be reached, refuses the requests, or the model cannot be run."""
