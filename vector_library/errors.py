"""Errors of the vector library. Every refusal is one of these, with a message a UI can show as is."""

from __future__ import annotations


class LibraryError(Exception):
    """Base class of every refusal the library makes."""


class InvalidInput(LibraryError, ValueError):
    """The request itself is wrong: the message says what was wrong and what is accepted."""


class NotFound(LibraryError, LookupError):
    """No such user, model, vector or composition visible to the caller."""


class PermissionDenied(LibraryError, PermissionError):
    """The caller may see the thing but not do this to it (not the author; anonymous)."""


class Conflict(LibraryError):
    """The request contradicts what is stored (e.g. a model re-registered with another shape)."""


class LabelConflict(Conflict):
    """A mask save started from an older version than one someone else saved since; ``latest`` is that
    newer version (a MaskInfo). Load it, or save again with ``force=True`` to add yours on top anyway."""

    def __init__(self, message: str, latest) -> None:
        super().__init__(message)
        self.latest = latest


class SampleClaimed(Conflict):
    """Someone else is painting this sample: ``holder`` holds the claim until ``until`` (a UTC datetime)."""

    def __init__(self, message: str, holder: str, until) -> None:
        super().__init__(message)
        self.holder = holder
        self.until = until


class TrainingBusy(Conflict):
    """A training job for this generator is already running (and not yet counted as abandoned)."""
