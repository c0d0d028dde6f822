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
