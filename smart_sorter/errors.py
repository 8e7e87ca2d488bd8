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
