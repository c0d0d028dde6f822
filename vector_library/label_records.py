"""What the label store takes and returns (frozen dataclasses, never ORM rows) and the checks of its input.

Nothing here touches the database: every check runs before a transaction opens, so a refused request costs
no lock. Values are accepted as given or refused with an InvalidInput naming what was wrong and what is
accepted; the one normalisation is that class names are stripped of surrounding whitespace.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Sequence

import numpy as np

from core.data.palette import CLASS_NAMES, PALETTE
from vector_library import validation as check
from vector_library.errors import InvalidInput

MIN_CLASSES, MAX_CLASSES = 2, 32
MAX_CLASS_NAME_CHARS = 40
MAX_SET_NAME_CHARS = 80
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024  # EditGAN labels at 512 and 1024; a 1024² mask is 1 MiB raw
MAX_SAMPLES_PER_SET = 256  # EditGAN trains its branch on a few dozen labelled samples
MAX_SEED = 2**31 - 1
MAX_TRUNCATION = 1.5
MAX_BRANCH_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = 256 * 1024  # a branch's config or training record
MAX_CLAIM_TTL_S = 24 * 3600.0

Color = tuple[int, int, int]

# The shipped face classes (core/data/palette.py), as create_set takes them. core.data.palette imports numpy
# only (tests/vector_library/test_labels.py checks that importing it pulls no torch).
FACE_TEMPLATE: tuple[tuple[str, Color], ...] = tuple(
    (name, (int(r), int(g), int(b))) for name, (r, g, b) in zip(CLASS_NAMES, PALETTE.tolist()))

# Letters and digits of any script, '_', '-' and inner spaces: nothing a browser could read as markup.
_CLASS_NAME_RE = re.compile(r"[\w-](?:[\w -]*[\w-])?")


@dataclass(frozen=True)
class LabelClass:
    name: str
    color: Color  # (r, g, b), each 0-255


@dataclass(frozen=True)
class LabelSetInfo:
    id: int
    model_id: str
    name: str
    owner: str
    classes: tuple[LabelClass, ...]  # class id i is classes[i]
    locked: bool  # a branch version was trained from it: its classes no longer change
    resolution: int  # masks are [resolution, resolution]
    members: tuple[str, ...]  # the owner first, then the added members in the order added
    n_samples: int
    n_labelled: int
    created_at: datetime
    public: bool = False


@dataclass(frozen=True)
class SampleInfo:
    id: int
    set_id: int
    seed: int
    truncation: float
    position: int  # 0, 1, ... in the order added
    latest_version: int  # 0: not labelled yet
    labelled_by: Optional[str]  # author of the latest version
    labelled_at: Optional[datetime]
    claimed_by: Optional[str]  # who is painting it, while claim_expires is in the future
    claim_expires: Optional[datetime]


@dataclass(frozen=True)
class MaskInfo:
    sample_id: int
    version: int
    author: str
    created_at: datetime
    note: str


@dataclass(frozen=True)
class BranchVersionInfo:
    id: int
    model_id: str
    version: int  # 1, 2, ... per model
    label_set_id: Optional[int]
    created_by: str
    created_at: datetime
    config: dict
    record: dict
    n_masks: int
    published: bool


# ---------------------------------------------------------------------- checks
def set_name(value: Any) -> str:
    return check.text(value, "label set name", MAX_SET_NAME_CHARS, allow_empty=False)


def resolution(value: Any) -> int:
    res = check.positive_int(value, "mask resolution", MAX_RESOLUTION)
    if res < MIN_RESOLUTION:
        raise InvalidInput(f"mask resolution is {res}; accepted: an integer in {MIN_RESOLUTION}-{MAX_RESOLUTION}")
    return res


def class_name(value: Any, i: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"class {i}'s name must be a string, got {type(value).__name__}")
    name = value.strip()
    if not 1 <= len(name) <= MAX_CLASS_NAME_CHARS or _CLASS_NAME_RE.fullmatch(name) is None:
        raise InvalidInput(
            f"class {i}'s name {value[:60]!r} is not accepted; use 1-{MAX_CLASS_NAME_CHARS} letters, digits, "
            "spaces, '_' or '-'")
    return name


def color(value: Any, i: int) -> Color:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 3 \
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255
                       for v in value):
        raise InvalidInput(f"class {i}'s colour {repr(value)[:60]} is not accepted; a colour is 3 integers "
                           "(r, g, b), each 0-255")
    return (int(value[0]), int(value[1]), int(value[2]))


def classes(values: Any) -> tuple[LabelClass, ...]:
    """(name, (r, g, b)) pairs or LabelClass objects: 2-32 of them, names and colours each used once."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInput("classes are a list of (name, (r, g, b)) pairs")
    if not MIN_CLASSES <= len(values) <= MAX_CLASSES:
        raise InvalidInput(f"a label set has {MIN_CLASSES}-{MAX_CLASSES} classes; got {len(values)}")
    out: list[LabelClass] = []
    for i, item in enumerate(values):
        if isinstance(item, LabelClass):
            item = (item.name, item.color)
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
            raise InvalidInput(f"class {i} must be a (name, (r, g, b)) pair")
        cls = LabelClass(class_name(item[0], i), color(item[1], i))
        for j, prev in enumerate(out):
            if prev.name.casefold() == cls.name.casefold():
                raise InvalidInput(f"classes {j} and {i} are both named {cls.name!r} (names ignore case); "
                                   "each name is accepted once")
            if prev.color == cls.color:
                raise InvalidInput(f"classes {j} ({prev.name!r}) and {i} ({cls.name!r}) share the colour "
                                   f"{cls.color}; each colour is accepted once, so a painted pixel names one class")
        out.append(cls)
    return tuple(out)


def seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_SEED:
        raise InvalidInput(f"seed {repr(value)[:40]} is not accepted; a seed is an integer in 0-{MAX_SEED}")
    return int(value)


def truncation(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0 < value <= MAX_TRUNCATION:
        raise InvalidInput(f"truncation {repr(value)[:40]} is not accepted; a number in (0, {MAX_TRUNCATION}]")
    return float(value)


def ttl(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0 < value <= MAX_CLAIM_TTL_S:
        raise InvalidInput(f"a claim's duration is {repr(value)[:40]} s; accepted: (0, {MAX_CLAIM_TTL_S:.0f}] s")
    return float(value)


def version(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= check.MAX_ID:
        raise InvalidInput(f"{what} is {repr(value)[:40]}; accepted: an integer from {minimum}")
    return int(value)


def mask_array(mask: Any) -> np.ndarray:
    """A 2-d integer array of class ids as uint8 [H, W]; its shape and classes are checked against the set later."""
    if not isinstance(mask, np.ndarray):
        raise InvalidInput(f"a mask is a 2-d integer numpy array of class ids, got {type(mask).__name__}")
    if mask.ndim != 2 or mask.size == 0:
        raise InvalidInput(f"a mask is a non-empty 2-d array [H, W] of class ids; got shape {list(mask.shape)}")
    if mask.dtype.kind not in "iu":
        raise InvalidInput(f"a mask holds integer class ids; got dtype {mask.dtype}")
    low, high = int(mask.min()), int(mask.max())
    if low < 0 or high > MAX_CLASSES - 1:
        bad = np.unique(mask[(mask < 0) | (mask > MAX_CLASSES - 1)])[:10].tolist()
        raise InvalidInput(f"a mask holds class ids 0-{MAX_CLASSES - 1}; it holds {bad}")
    return np.ascontiguousarray(mask, dtype=np.uint8)


def json_object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput(f"a branch's {what} is a JSON object (dict), got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a branch's {what} must be JSON of strings, finite numbers, lists and objects ({exc})") \
            from None
    if len(text.encode()) > MAX_JSON_BYTES:
        raise InvalidInput(f"a branch's {what} is {len(text.encode())} bytes as JSON; at most {MAX_JSON_BYTES}")
    return json.loads(text)


def safetensors_bytes(data: Any) -> bytes:
    """Weights of a branch: the bytes of a safetensors file (header checked here, tensors read by the loader)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"branch weights are the bytes of a .safetensors file, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_BRANCH_BYTES:
        raise InvalidInput(f"branch weights are {len(data)} bytes; at most {MAX_BRANCH_BYTES} "
                           f"({MAX_BRANCH_BYTES // 2**20} MiB) are accepted")
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else -1
    ok = 0 < n <= len(data) - 8
    if ok:
        try:
            ok = isinstance(json.loads(data[8:8 + n]), dict)
        except ValueError:
            ok = False
    if not ok:
        raise InvalidInput("branch weights are not a safetensors file (8-byte header length, then a JSON header); "
                           "save them with safetensors")
    return data
