"""The edit-vector file format, "editgan-vector/1": a safetensors file plus typed metadata.

An edit vector is a change in StyleGAN2's W+ space learned by an EditGAN-style edit
(Ling et al., "EditGAN: High-Precision Semantic Image Editing", NeurIPS 2021). Bare .npy/.pt
files do not say which generator, latent space or shape a direction belongs to; this format
records all of that in the safetensors header so a vector can be checked before it is used.

Layout (https://github.com/huggingface/safetensors, format "safetensors"):

    tensors   delta    float32 [n_latent, w_dim]   the W+ change
              preview  uint8   [H, W, 3]            optional RGB thumbnail, H, W <= 256
              change   uint8   [2, R, R]            optional: the painted change the vector was made
                                                    from, class ids before and after (R <= 1024);
                                                    mode 2 carries it onto other faces
    metadata  format="editgan-vector/1", model_id (lowercase hex, 16-64 chars: the content
              hash of the generator), latent_space="w+", n_latent, w_dim (decimal ints equal to
              the delta's shape), edited_classes (JSON list of strings), default_scale,
              scale_min, scale_max (floats, scale_min <= default_scale <= scale_max,
              scale_min < scale_max), metrics (JSON object of string -> finite number),
              name and description (optional free text).

Pure numpy + safetensors: no torch, so core, the vector library and the app all share it.
The container is written here rather than by ``safetensors.numpy.save`` because that writer
emits the metadata in hash-map order, which differs between processes; ours sorts keys, so
``to_bytes`` is canonical and ``content_hash`` is stable. Reading goes through
``safetensors.numpy.load``, the reference parser, after our own checks of the header.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

FORMAT = "editgan-vector/1"
LATENT_SPACES = ("w+",)
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
MAX_HEADER_BYTES = 1024 * 1024
MAX_PREVIEW_SIDE = 256
MAX_CHANGE_SIDE = 1024
MAX_N_LATENT = 64
MAX_W_DIM = 4096
MAX_NAME_CHARS = 120
MAX_DESCRIPTION_CHARS = 10_000
MAX_CLASS_CHARS = 64
MAX_CLASSES = 256
MAX_METRICS = 64
MAX_METRIC_KEY_CHARS = 64
MAX_ABS_SCALE = 1e6
# per-element RMS of a delta: real edits stay far below it; a random face's whole latent is ~1 (docs/results.md,
# benchmarks/delta_norms.py); a finite but huge delta (all 1e30) would render a solid square
MAX_DELTA_RMS = 100.0

TENSOR_NAMES = ("delta", "preview", "change")
REQUIRED_KEYS = (
    "format", "model_id", "latent_space", "n_latent", "w_dim", "edited_classes",
    "default_scale", "scale_min", "scale_max", "metrics",
)
OPTIONAL_KEYS = ("name", "description")

_MODEL_ID_RE = re.compile(r"[0-9a-f]{16,64}")
_INT_RE = re.compile(r"[1-9][0-9]{0,5}")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# C0/C1 control characters, DEL, and the Unicode line/paragraph separators and bidi overrides
# that make a name display as something other than what it is.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_MULTILINE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_DTYPES = {"F32": np.dtype("<f4"), "U8": np.dtype("u1")}


class VectorFormatError(ValueError):
    """An edit-vector file or value that does not follow editgan-vector/1."""


def check_text(value: Any, what: str, max_chars: int, *, multiline: bool = False,
               allow_empty: bool = True) -> str:
    """Return ``value`` if it is acceptable free text, else raise VectorFormatError.

    Accepted: a str of at most ``max_chars`` characters, valid Unicode, with no control
    characters (tab, newline and carriage return only when ``multiline``). Text is never
    silently altered: what is stored is what was given.
    """
    if not isinstance(value, str):
        raise VectorFormatError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise VectorFormatError(f"{what} is {len(value)} characters long; at most {max_chars} are accepted")
    if not allow_empty and not value.strip():
        raise VectorFormatError(f"{what} must not be empty")
    bad = (_CONTROL_MULTILINE_RE if multiline else _CONTROL_RE).search(value)
    if bad is not None:
        allowed = "tab and newline are the only control characters accepted" if multiline \
            else "control characters (newlines included) are not accepted"
        raise VectorFormatError(
            f"{what} contains the control character U+{ord(bad.group()):04X} at position {bad.start()}; {allowed}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise VectorFormatError(f"{what} contains an unpaired surrogate at position {exc.start}; "
                                "only valid Unicode text is accepted") from None
    return value


def check_model_id(value: Any) -> str:
    if not isinstance(value, str) or _MODEL_ID_RE.fullmatch(value) is None:
        shown = repr(value)[:80]
        raise VectorFormatError(
            f"model_id {shown} is not accepted; it must be the generator's content hash as 16-64 "
            "lowercase hex characters")
    return value


def check_scales(default_scale: Any, scale_min: Any, scale_max: Any) -> tuple[float, float, float]:
    """Validate a (default, min, max) scale triple and return it as floats."""
    values = []
    for what, v in (("default_scale", default_scale), ("scale_min", scale_min), ("scale_max", scale_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise VectorFormatError(f"{what} must be a number, got {type(v).__name__}")
        v = float(v)
        if not math.isfinite(v) or abs(v) > MAX_ABS_SCALE:
            raise VectorFormatError(f"{what} is {v!r}; a finite number within +-{MAX_ABS_SCALE:g} is accepted")
        values.append(v)
    d, lo, hi = values
    if not lo < hi:
        raise VectorFormatError(f"scale_min ({lo!r}) must be smaller than scale_max ({hi!r})")
    if not lo <= d <= hi:
        raise VectorFormatError(f"default_scale ({d!r}) must lie within [scale_min, scale_max] = [{lo!r}, {hi!r}]")
    return d, lo, hi


def check_edited_classes(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise VectorFormatError("edited_classes must be a list of class-name strings")
    if len(value) > MAX_CLASSES:
        raise VectorFormatError(f"edited_classes lists {len(value)} classes; at most {MAX_CLASSES} are accepted")
    out = []
    for i, name in enumerate(value):
        check_text(name, f"edited_classes[{i}]", MAX_CLASS_CHARS, allow_empty=False)
        if name in out:
            raise VectorFormatError(f"edited_classes lists {name!r} twice; each class is accepted once")
        out.append(name)
    return tuple(out)


def check_metrics(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise VectorFormatError("metrics must be a JSON object of name -> number")
    if len(value) > MAX_METRICS:
        raise VectorFormatError(f"metrics has {len(value)} entries; at most {MAX_METRICS} are accepted")
    out: dict[str, float] = {}
    for k, v in value.items():
        check_text(k, "a metrics key", MAX_METRIC_KEY_CHARS, allow_empty=False)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise VectorFormatError(f"metrics[{k!r}] must be a number, got {type(v).__name__}")
        if not math.isfinite(float(v)):
            raise VectorFormatError(f"metrics[{k!r}] is {v!r}; only finite numbers are accepted")
        out[k] = int(v) if isinstance(v, (int, np.integer)) else float(v)
    return out


def check_delta(delta: Any) -> np.ndarray:
    """Validate an edit delta, # [n_latent, w_dim] float32, finite."""
    if not isinstance(delta, np.ndarray):
        raise VectorFormatError(f"delta must be a numpy array, got {type(delta).__name__}")
    if delta.dtype != np.dtype("<f4"):
        raise VectorFormatError(f"delta must be float32, got {delta.dtype}")
    if delta.ndim != 2:
        raise VectorFormatError(f"delta must have rank 2 [n_latent, w_dim], got shape {list(delta.shape)}")
    n, w = delta.shape
    if not (1 <= n <= MAX_N_LATENT and 1 <= w <= MAX_W_DIM):
        raise VectorFormatError(
            f"delta shape {list(delta.shape)} is out of range; n_latent 1-{MAX_N_LATENT} and "
            f"w_dim 1-{MAX_W_DIM} are accepted")
    if not np.isfinite(delta).all():
        bad = int((~np.isfinite(delta)).sum())
        raise VectorFormatError(f"delta contains {bad} NaN or infinite values; only finite values are accepted")
    rms = delta_rms(delta)
    if not rms <= MAX_DELTA_RMS:
        raise VectorFormatError(
            f"delta is far larger than any edit: its per-element RMS (L2 norm / sqrt(n_latent * w_dim)) is "
            f"{rms:.4g}; at most {MAX_DELTA_RMS:g} is accepted")
    return delta


def delta_rms(delta: np.ndarray) -> float:
    """A delta's size independent of its shape: L2 norm / sqrt(number of elements), computed in float64."""
    a = np.asarray(delta, np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def _uint8_array(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise VectorFormatError(f"{what} must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise VectorFormatError(f"{what} must be uint8, got {value.dtype}")
    return value


def check_preview(preview: Any) -> Optional[np.ndarray]:
    """Validate an optional thumbnail, # [H, W, 3] uint8 with H, W <= 256."""
    if preview is None:
        return None
    _uint8_array(preview, "preview")
    if preview.ndim != 3 or preview.shape[2] != 3:
        raise VectorFormatError(f"preview must have shape [H, W, 3], got {list(preview.shape)}")
    h, w = preview.shape[:2]
    if not (1 <= h <= MAX_PREVIEW_SIDE and 1 <= w <= MAX_PREVIEW_SIDE):
        raise VectorFormatError(
            f"preview is {h}x{w}; sides of 1-{MAX_PREVIEW_SIDE} pixels are accepted")
    return preview


def check_change(change: Any) -> Optional[np.ndarray]:
    """Validate an optional painted change, # [2, R, R] uint8 class ids (before, after) that differ somewhere."""
    if change is None:
        return None
    _uint8_array(change, "change (class ids)")
    if change.ndim != 3 or change.shape[0] != 2 or change.shape[1] != change.shape[2]:
        raise VectorFormatError(f"change must have shape [2, R, R] (before, after), got {list(change.shape)}")
    if not 1 <= change.shape[1] <= MAX_CHANGE_SIDE:
        raise VectorFormatError(f"change is {change.shape[1]} px square; sides of 1-{MAX_CHANGE_SIDE} are accepted")
    if np.array_equal(change[0], change[1]):
        raise VectorFormatError("change holds the same mask before and after; a change must differ somewhere")
    return change


# Classes that surround every part of a face: a change names them only where nothing else changed (slimming a face
# moves skin against background). core.edit uses the same tuple for the region an edit may touch.
CONTEXT_CLASSES = ("background", "skin")
# a class is a subject of a change when it is on either side of at least this share of the pixels the leading
# class is (glasses painted over the eyes: glasses, not the eyes they cover; an open mouth: teeth and lips)
SUBJECT_SHARE = 0.5


def class_change_pixels(before: np.ndarray, after: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 [n_classes]: per class id, the changed pixels (before != after) it is on either side of.

    ``before`` and ``after`` are class-id maps of one shape; ids at or above ``n_classes`` are not counted.
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"before {list(before.shape)} and after {list(after.shape)} must have one shape")
    changed = before != after
    ids = np.concatenate([before[changed], after[changed]]).astype(np.int64)
    return np.bincount(ids[(ids >= 0) & (ids < n_classes)], minlength=n_classes)[:n_classes]


def subject_classes(change: np.ndarray, class_names: Sequence[str],
                    context_classes: Sequence[str] = CONTEXT_CLASSES, share: float = SUBJECT_SHARE) -> tuple[str, ...]:
    """The classes a painted change is about, the most changed first: uint8 ``change`` [2, R, R] (before, after).

    Of the classes on either side of a changed pixel, the context classes aside unless nothing else changed, those
    on at least ``share`` of the pixels the leading class is on; ties by class id. Painting glasses over the eyes
    gives ``("glasses",)`` where the edited classes also name the eyes, brows and skin it covers.
    """
    counts = class_change_pixels(change[0], change[1], len(class_names))
    touched = list(np.flatnonzero(counts))
    ids = [i for i in touched if class_names[i] not in context_classes] or touched
    if not ids:
        return ()
    top = max(int(counts[i]) for i in ids)
    keep = sorted((i for i in ids if counts[i] >= share * top), key=lambda i: (-int(counts[i]), int(i)))
    return tuple(class_names[i] for i in keep)


def _frozen_copy(a: np.ndarray) -> np.ndarray:
    out = np.array(a, copy=True, order="C")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class VectorFile:
    """One edit vector with everything needed to check it against a generator.

    ``delta`` is # [n_latent, w_dim] float32; ``preview`` is # [H, W, 3] uint8 or None.
    Construction validates every field and stores read-only copies of the arrays.
    """

    delta: np.ndarray
    model_id: str
    edited_classes: tuple[str, ...] = ()
    default_scale: float = 1.0
    scale_min: float = -3.0
    scale_max: float = 3.0
    metrics: dict = field(default_factory=dict)
    name: str = ""
    description: str = ""
    preview: Optional[np.ndarray] = None
    latent_space: str = "w+"
    change: Optional[np.ndarray] = None  # [2, R, R] uint8: the painted change (before, after), see the module doc

    def __post_init__(self) -> None:
        check_delta(self.delta)
        check_model_id(self.model_id)
        d, lo, hi = check_scales(self.default_scale, self.scale_min, self.scale_max)
        if self.latent_space not in LATENT_SPACES:
            raise VectorFormatError(
                f"latent_space {str(self.latent_space)[:40]!r} is not supported; accepted: {', '.join(LATENT_SPACES)}")
        set_ = object.__setattr__
        set_(self, "delta", _frozen_copy(self.delta))
        set_(self, "preview", None if check_preview(self.preview) is None else _frozen_copy(self.preview))
        set_(self, "change", None if check_change(self.change) is None else _frozen_copy(self.change))
        set_(self, "edited_classes", check_edited_classes(self.edited_classes))
        set_(self, "metrics", check_metrics(self.metrics))
        set_(self, "default_scale", d)
        set_(self, "scale_min", lo)
        set_(self, "scale_max", hi)
        check_text(self.name, "name", MAX_NAME_CHARS)
        check_text(self.description, "description", MAX_DESCRIPTION_CHARS, multiline=True)

    @property
    def n_latent(self) -> int:
        return int(self.delta.shape[0])

    @property
    def w_dim(self) -> int:
        return int(self.delta.shape[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorFile):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # mutable-looking arrays inside: compare, don't hash

    def metadata(self) -> dict[str, str]:
        """The header metadata as written to the file (all values strings)."""
        md = {
            "format": FORMAT,
            "model_id": self.model_id,
            "latent_space": self.latent_space,
            "n_latent": str(self.n_latent),
            "w_dim": str(self.w_dim),
            "edited_classes": json.dumps(list(self.edited_classes), ensure_ascii=False),
            "default_scale": repr(self.default_scale),
            "scale_min": repr(self.scale_min),
            "scale_max": repr(self.scale_max),
            "metrics": json.dumps(self.metrics, ensure_ascii=False, sort_keys=True),
        }
        if self.name:
            md["name"] = self.name
        if self.description:
            md["description"] = self.description
        return md

    def to_bytes(self) -> bytes:
        """The canonical safetensors bytes: sorted header keys, delta first, 8-byte aligned header."""
        tensors = [("delta", "F32", self.delta)]
        if self.preview is not None:
            tensors.append(("preview", "U8", self.preview))
        if self.change is not None:
            tensors.append(("change", "U8", self.change))
        return _write_safetensors(tensors, self.metadata())

    def content_hash(self) -> str:
        """sha256 hex digest of ``to_bytes()``; equal for equal vectors in any process."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> "VectorFile":
        """Parse and validate an editgan-vector/1 file; raise VectorFormatError when it is not one."""
        header, tensors = _read_safetensors(data, max_bytes)
        md = _check_metadata(header.get("__metadata__"))
        delta = tensors["delta"]
        preview = tensors.get("preview")
        n, w = _parse_int(md["n_latent"], "n_latent"), _parse_int(md["w_dim"], "w_dim")
        if delta.ndim != 2:
            raise VectorFormatError(f"tensor 'delta' must have rank 2 [n_latent, w_dim], got shape {list(delta.shape)}")
        if (n, w) != tuple(delta.shape):
            raise VectorFormatError(
                f"header says n_latent={n}, w_dim={w} but tensor 'delta' has shape {list(delta.shape)}")
        return cls(
            delta=delta,
            model_id=md["model_id"],
            edited_classes=tuple(_parse_json(md["edited_classes"], "edited_classes", list)),
            default_scale=_parse_float(md["default_scale"], "default_scale"),
            scale_min=_parse_float(md["scale_min"], "scale_min"),
            scale_max=_parse_float(md["scale_max"], "scale_max"),
            metrics=_parse_json(md["metrics"], "metrics", dict),
            name=md.get("name", ""),
            description=md.get("description", ""),
            preview=preview,
            latent_space=md["latent_space"],
            change=tensors.get("change"),
        )

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Union[str, Path], max_bytes: int = DEFAULT_MAX_BYTES) -> "VectorFile":
        path = Path(path)
        size = path.stat().st_size
        if size > max_bytes:
            raise VectorFormatError(f"{path.name} is {size} bytes; at most {max_bytes} are accepted")
        return cls.from_bytes(path.read_bytes(), max_bytes=max_bytes)


def _write_safetensors(tensors: list[tuple[str, str, np.ndarray]], metadata: dict[str, str]) -> bytes:
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name, dtype, array in tensors:
        raw = np.ascontiguousarray(array, dtype=_DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the spec pads the header with spaces to 8-byte alignment
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def _sniff(data: bytes) -> str:
    """Name what a non-safetensors upload most likely is, for the error message."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (unpickling uploads is unsafe and refused)"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive (e.g. a PyTorch .pt checkpoint; torch.load of uploads is refused)"
    if data[:6] == b"\x93NUMPY":
        return "a NumPy .npy file"
    return "not a safetensors file"


def _read_safetensors(data: bytes, max_bytes: int) -> tuple[dict, dict[str, np.ndarray]]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise VectorFormatError(f"expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise VectorFormatError(f"the file is {len(data)} bytes; at most {max_bytes} are accepted")
    accepted = "only safetensors files in the editgan-vector/1 format are accepted"
    if len(data) < 8:
        raise VectorFormatError(f"the file is {len(data)} bytes, too short for safetensors; {accepted}")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data) or data[8:9] != b"{":
        kind = _sniff(data)
        if kind == "not a safetensors file" and 8 + n > len(data) and data[8:9] == b"{":
            kind = "a truncated safetensors file (the header runs past the end)"
        raise VectorFormatError(f"the upload is {kind}; {accepted}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VectorFormatError(f"the safetensors header is not valid UTF-8 JSON ({exc}); {accepted}") from None
    if not isinstance(header, dict):
        raise VectorFormatError(f"the safetensors header must be a JSON object; {accepted}")
    names = [k for k in header if k != "__metadata__"]
    unknown = sorted(set(names) - set(TENSOR_NAMES))
    if unknown:
        raise VectorFormatError(
            f"unknown tensor(s) {', '.join(repr(u[:40]) for u in unknown)}; accepted: 'delta' (required), 'preview', "
            "'change'")
    if "delta" not in names:
        raise VectorFormatError("the file has no 'delta' tensor; an edit vector needs 'delta' [n_latent, w_dim] float32")
    for name in names:
        info = header[name]
        expected = "F32" if name == "delta" else "U8"
        if not isinstance(info, dict) or info.get("dtype") != expected:
            got = info.get("dtype") if isinstance(info, dict) else info
            raise VectorFormatError(f"tensor {name!r} has dtype {str(got)[:20]!r}; {expected} is accepted")
    try:
        from safetensors.numpy import load as st_load
        tensors = st_load(data)
    except Exception as exc:  # the reference parser raises SafetensorError for any malformation
        raise VectorFormatError(f"the safetensors data is malformed ({exc}); {accepted}") from None
    return header, tensors


def _check_metadata(md: Any) -> dict[str, str]:
    if md is None:
        raise VectorFormatError(f"the file has no metadata; editgan-vector files carry format={FORMAT!r} and "
                                f"the keys {', '.join(REQUIRED_KEYS)}")
    if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
        raise VectorFormatError("the safetensors metadata must map strings to strings")
    fmt = md.get("format")
    if fmt != FORMAT:
        shown = "missing" if fmt is None else repr(fmt[:40])
        raise VectorFormatError(f"format is {shown}; accepted: {FORMAT!r}")
    missing = [k for k in REQUIRED_KEYS if k not in md]
    if missing:
        raise VectorFormatError(f"metadata is missing {', '.join(missing)}")
    unknown = sorted(set(md) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise VectorFormatError(
            f"unknown metadata key(s) {', '.join(repr(k[:40]) for k in unknown)}; accepted: "
            f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    return md


def _parse_int(text: str, what: str) -> int:
    if _INT_RE.fullmatch(text) is None:
        raise VectorFormatError(f"{what} is {text[:40]!r}; a positive decimal integer is accepted")
    return int(text)


def _parse_float(text: str, what: str) -> float:
    if _FLOAT_RE.fullmatch(text) is None:
        raise VectorFormatError(f"{what} is {text[:40]!r}; a finite decimal number is accepted")
    return float(text)


def _parse_json(text: str, what: str, kind: type) -> Any:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, VectorFormatError) as exc:
        raise VectorFormatError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise VectorFormatError(f"{what} must be a JSON {'list' if kind is list else 'object'}")
    return value


def _reject_constant(name: str) -> None:
    raise VectorFormatError(f"{name} is not a finite number")
