"""Checks of user-supplied values. Nothing is silently altered: a value is accepted as given or
refused with an InvalidInput that names what was wrong and what is accepted."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Iterable, Optional

from core.vector_format import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    VectorFormatError,
    check_model_id,
    check_text,
)
from vector_library.errors import InvalidInput

VISIBILITIES = ("public", "private")
# SPDX-style identifiers of licences commonly used for shared model weights and LoRAs.
LICENCES = (
    "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
    "mit", "apache-2.0", "openrail", "openrail++", "other",
)
DEFAULT_LICENCE = "cc-by-4.0"
MAX_TAGS = 16
MAX_TAG_CHARS = 32
MAX_QUERY_CHARS = 200
MAX_PAGE_SIZE = 100
MAX_NOTE_CHARS = 500
MAX_USERNAME_CHARS = 64
MAX_DISPLAY_NAME_CHARS = 128
MAX_COMPOSITION_ITEMS = 32

_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TAG_RE = re.compile(r"[^\W_][\w-]{0,31}")


def invalid(exc: VectorFormatError) -> InvalidInput:
    return InvalidInput(str(exc))


def username(value: Any) -> str:
    if not isinstance(value, str) or _USERNAME_RE.fullmatch(value) is None:
        raise InvalidInput(
            f"username {repr(value)[:80]} is not accepted; use 1-{MAX_USERNAME_CHARS} characters of "
            "letters, digits, '_', '.' and '-', starting with a letter or digit")
    return value


def text(value: Any, what: str, max_chars: int, *, multiline: bool = False, allow_empty: bool = True) -> str:
    try:
        return check_text(value, what, max_chars, multiline=multiline, allow_empty=allow_empty)
    except VectorFormatError as exc:
        raise invalid(exc) from None


def name(value: Any) -> str:
    return text(value, "name", MAX_NAME_CHARS, allow_empty=False)


def description(value: Any) -> str:
    return text(value, "description", MAX_DESCRIPTION_CHARS, multiline=True)


def tags(values: Any) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidInput("tags must be a list of strings")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or _TAG_RE.fullmatch(value) is None or value != value.lower():
            raise InvalidInput(
                f"tag {repr(value)[:60]} is not accepted; tags are 1-{MAX_TAG_CHARS} lowercase letters, "
                "digits, '-' or '_', starting with a letter or digit")
        if value in out:
            raise InvalidInput(f"tag {value!r} is given twice; each tag is accepted once")
        out.append(value)
        if len(out) > MAX_TAGS:
            raise InvalidInput(f"more than {MAX_TAGS} tags given; at most {MAX_TAGS} are accepted")
    return tuple(out)


def licence(value: Any) -> str:
    if value not in LICENCES:
        raise InvalidInput(f"licence {repr(value)[:60]} is not accepted; accepted: {', '.join(LICENCES)}")
    return value


def visibility(value: Any) -> str:
    if value not in VISIBILITIES:
        raise InvalidInput(f"visibility {repr(value)[:60]} is not accepted; accepted: public, private")
    return value


def model_id(value: Any) -> str:
    try:
        return check_model_id(value)
    except VectorFormatError as exc:
        raise invalid(exc) from None


def positive_int(value: Any, what: str, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1 \
            or (maximum and value > maximum):
        limit = f"an integer in 1-{maximum}" if maximum else "a positive integer"
        raise InvalidInput(f"{what} is {repr(value)[:40]}; accepted: {limit}")
    return int(value)


MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns on every backend


def record_id(value: Any, what: str = "id") -> int:
    return positive_int(value, what, MAX_ID)


def scale(value: Any, what: str = "scale") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInput(f"{what} is {repr(value)[:40]}; a finite number is accepted")
    return float(value)
