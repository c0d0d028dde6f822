"""Sharing a label set and the branches trained from it: a folder, and a Hub dataset repo (issue #23, point 5).

Another user of the same generator (same model id) imports the folder and gets the samples, the masks and the
trained segmentation branch without labelling anything. The layout (all names generated, never user text):

    labels.json                   {"format": "editgan-labels/1", "exported_at", "model_id", "name", "owner",
                                   "resolution", "classes": [{"name", "color": [r, g, b]}],
                                   "samples": [{"position", "seed", "truncation", "mask": "masks/0.png" | null,
                                                "author", "created_at", "note",
                                                "history": [{"mask", "author", "created_at", "note"}, ...]}],
                                   "branches": [{"version", "weights": "branches/v1.safetensors",
                                                 "meta": "branches/v1.json", "sha256"}]}
    masks/<position>.png          the latest mask: an 8-bit palette PNG, pixel value = class id, the palette the
                                  set's colours (lossless; any PNG viewer shows the colours). "history" (only
                                  with include_history) lists older versions, oldest first: masks/<p>-v<k>.png
    branches/v<N>.safetensors     the branch's weights, byte for byte
    branches/v<N>.json            {"config", "record", "n_masks", "created_by", "created_at", "from_this_set"}

The same files in a zip (export_label_zip) import the same way: a .zip path or its bytes, e.g. an upload.

Reading validates everything before the first write: the format tag, the model id (equal to the one the
caller expects, and registered here), names, classes, seeds, notes and authors (the store's own checks), every
PNG (a palette or grayscale PNG of [resolution, resolution] whose values are class ids of the set), every
branch (size-capped, sha256, a safetensors header parsed here without torch: pickles and zips are refused),
and size limits on every file before it is read; paths are only the generated forms above, no links, nothing
outside the folder. Then the store calls run; they are several transactions (LabelStore owns one per action),
so if one fails midway (a database error, a concurrent change) the rows this import wrote are deleted again
in one transaction before the error is raised: an import lands whole or not at all.

On import, masks are saved as the importing user (the store stamps its own time); the original author and
time stay in the note ("labelled by alice at 2026-12-04 20:25 UTC: <their note>"). Branch versions get the next
numbers of this library; their record gains "imported": {"version", "created_by", "created_at", "set"}.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image
from sqlalchemy import delete, select

from db.models import BranchVersion, LabelMask, LabelSample, LabelSet, LabelSetMember
from vector_library import label_records as lcheck
from vector_library import validation as check
from vector_library.errors import Conflict, InvalidInput
from vector_library.hub import REPO_TYPE, _api, _check_repo_id
from vector_library.label_records import LabelClass, LabelSetInfo
from vector_library.labels import LabelStore

__all__ = ["LABELS_FORMAT", "LABELS_FILE", "LABEL_PATTERNS", "ImportResult", "LabelHubPushResult", "LabelFolder",
           "export_label_set", "export_label_zip", "import_label_set", "read_label_folder", "push_label_set",
           "pull_label_set"]

LABELS_FORMAT = "editgan-labels/1"
LABELS_FILE = "labels.json"
LABEL_PATTERNS = [LABELS_FILE, "masks/*.png", "branches/*.safetensors", "branches/*.json"]
MAX_LABELS_JSON_BYTES = 4 * 1024 * 1024
MAX_MASK_PNG_BYTES = 4 * 1024 * 1024  # a 1024² mask is 1 MiB raw; a PNG of it is smaller unless hostile
MAX_MASK_VERSIONS = 64  # per sample, history included
MAX_BRANCHES = 16
MAX_BRANCH_META_BYTES = 2 * lcheck.MAX_JSON_BYTES + 64 * 1024
MAX_FOLDER_BYTES = 1024 * 1024 * 1024  # a folder or a zip, all files together
MAX_ZIP_ENTRIES = lcheck.MAX_SAMPLES_PER_SET * MAX_MASK_VERSIONS + 2 * MAX_BRANCHES + 16
MAX_DECODED_MASK_BYTES = 512 * 1024 * 1024  # every mask version of an import, decoded (history included)
IMPORTED_SUFFIX = " (imported)"
MAX_NAME_TRIES = 100

_MASK_RE = re.compile(r"masks/(0|[1-9][0-9]{0,3})(-v[1-9][0-9]{0,5})?\.png")
_WEIGHTS_RE = re.compile(r"branches/v[1-9][0-9]{0,8}\.safetensors")
_META_RE = re.compile(r"branches/v[1-9][0-9]{0,8}\.json")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)
# safetensors dtypes and their sizes in bytes (F8 types are one byte each)
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
                "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


@dataclass(frozen=True)
class ImportResult:
    label_set: LabelSetInfo  # the new set (its name may carry " (imported)" when the original name was taken)
    n_samples: int
    n_masks: int  # mask versions saved, history included
    branch_versions: tuple[int, ...]  # the new version numbers here, in the order of the file
    source_branch_versions: tuple[int, ...]  # their numbers where they came from


@dataclass(frozen=True)
class LabelHubPushResult:
    repo_id: str
    commit: str  # the commit id (oid) the push created
    n_masks: int
    branch_versions: tuple[int, ...]


@dataclass(frozen=True)
class _Mask:
    ids: np.ndarray  # [resolution, resolution] uint8 class ids
    author: str
    created_at: datetime
    note: str


@dataclass(frozen=True)
class _Sample:
    seed: int
    truncation: float
    masks: tuple[_Mask, ...]  # oldest first; the last is the latest


@dataclass(frozen=True)
class _Branch:
    version: int
    weights: bytes
    config: dict
    record: dict
    n_masks: int
    created_by: str
    created_at: datetime
    from_this_set: bool


@dataclass(frozen=True)
class LabelFolder:
    """A validated label-set folder, ready to import; nothing in it has touched a database."""

    model_id: str
    name: str
    resolution: int
    classes: tuple[LabelClass, ...]
    samples: tuple[_Sample, ...]  # position order
    branches: tuple[_Branch, ...]


# ---------------------------------------------------------------------- export
def export_label_set(store: LabelStore, set_id: int, folder: Path, branch_versions: Sequence[int] = (),
                     include_history: bool = False) -> Path:
    """Write label set ``set_id`` (and the model's branch ``branch_versions``) to ``folder``, a new or empty
    folder. Only each sample's latest mask unless ``include_history``. The caller decides who may export."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInput(f"{folder} exists and is not an empty folder; exports go to a new or empty folder")
    versions = [lcheck.version(v, "branch version") for v in branch_versions]
    if len(set(versions)) != len(versions):
        raise InvalidInput(f"branch versions {versions} name a version twice")
    if len(versions) > MAX_BRANCHES:
        raise InvalidInput(f"{len(versions)} branch versions given; at most {MAX_BRANCHES} are exported at once")
    info = store.get_set(set_id)
    palette = [c for cls in info.classes for c in cls.color]
    files: dict[str, bytes] = {}
    samples = []
    for sample in store.samples(set_id):
        entry: dict[str, Any] = {"position": sample.position, "seed": sample.seed, "truncation": sample.truncation,
                                 "mask": None, "author": None, "created_at": None, "note": ""}
        if sample.latest_version > 0:
            numbers = [m.version for m in reversed(store.history(sample.id))] if include_history \
                else [sample.latest_version]
            records = []
            for number in numbers:
                m, ids = store.mask(sample.id, number)
                path = f"masks/{sample.position}.png" if number == sample.latest_version \
                    else f"masks/{sample.position}-v{number}.png"
                files[path] = _png(ids, palette)
                records.append({"mask": path, "author": m.author, "created_at": _iso(m.created_at), "note": m.note})
            entry.update(records[-1])
            if include_history:
                entry["history"] = records[:-1]
        samples.append(entry)
    branches = []
    for v in versions:
        b, weights = store.branch_version(info.model_id, v)
        weights_path, meta_path = f"branches/v{v}.safetensors", f"branches/v{v}.json"
        meta = {"config": b.config, "record": b.record, "n_masks": b.n_masks, "created_by": b.created_by,
                "created_at": _iso(b.created_at), "from_this_set": b.label_set_id == info.id}
        files[weights_path] = weights
        files[meta_path] = json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True).encode()
        branches.append({"version": v, "weights": weights_path, "meta": meta_path,
                         "sha256": hashlib.sha256(weights).hexdigest()})
    doc = {"format": LABELS_FORMAT, "exported_at": _iso(datetime.now(timezone.utc)), "model_id": info.model_id,
           "name": info.name, "owner": info.owner, "resolution": info.resolution,
           "classes": [{"name": c.name, "color": list(c.color)} for c in info.classes],
           "samples": samples, "branches": branches}
    for sub in ("masks", "branches"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        (folder / path).write_bytes(data)
    (folder / LABELS_FILE).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def export_label_zip(store: LabelStore, set_id: int, branch_versions: Sequence[int] = (),
                     include_history: bool = False) -> bytes:
    """The same layout as export_label_set, as the bytes of a zip archive (for a download button)."""
    with tempfile.TemporaryDirectory(prefix="editgan-labels-zip-") as tmp:
        folder = export_label_set(store, set_id, Path(tmp) / "labels", branch_versions, include_history)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                zf.write(path, path.relative_to(folder).as_posix())
        return buf.getvalue()


def _png(ids: np.ndarray, palette: list[int]) -> bytes:
    """Class ids # [H, W] uint8 as a palette PNG whose colours are the set's (index = class id)."""
    img = Image.frombytes("P", (ids.shape[1], ids.shape[0]), np.ascontiguousarray(ids, np.uint8).tobytes())
    img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _iso(t: datetime) -> str:
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).isoformat()


# ---------------------------------------------------------------------- reading and validation
def read_label_folder(source: Union[Path, str, bytes], model_id: Optional[str] = None) -> LabelFolder:
    """Read and fully validate a label set: a folder, a .zip file, or zip bytes (no database involved);
    InvalidInput naming the first fault."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read_zip(bytes(source), model_id)
    folder = Path(source)
    if folder.is_file():
        if folder.stat().st_size > MAX_FOLDER_BYTES:
            raise InvalidInput(f"{folder.name} is larger than {MAX_FOLDER_BYTES} bytes, the label-set limit")
        return _read_zip(folder.read_bytes(), model_id)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is neither a label-set folder (with {LABELS_FILE}) nor a .zip file")
    root, total = folder.resolve(), [0]

    def read(name: str, limit: int) -> bytes:
        path = folder / name
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise InvalidInput(f"{name} is a link or lies outside the label-set folder; refused")
        if not path.is_file():
            raise InvalidInput(f"the folder has no {name}, which {LABELS_FILE} lists" if name != LABELS_FILE else
                               f"the folder has no {LABELS_FILE}: it is not a label set exported by this app")
        size = path.stat().st_size
        if size > limit:
            raise InvalidInput(f"{name} is {size} bytes; at most {limit} are accepted")
        total[0] += size
        if total[0] > MAX_FOLDER_BYTES:
            raise InvalidInput(f"the label-set folder holds more than {MAX_FOLDER_BYTES} bytes")
        return path.read_bytes()

    return _parse(read, model_id)


def _read_zip(data: bytes, model_id: Optional[str]) -> LabelFolder:
    if len(data) > MAX_FOLDER_BYTES:
        raise InvalidInput(f"the archive is {len(data)} bytes; at most {MAX_FOLDER_BYTES} are accepted")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput(f"the upload is not a zip archive; a label set is a zip or folder with {LABELS_FILE}, "
                           "masks/*.png and branches/*") from None
    total = [0]
    with zf:
        if len(zf.infolist()) > MAX_ZIP_ENTRIES:
            raise InvalidInput(f"the archive has {len(zf.infolist())} entries; at most {MAX_ZIP_ENTRIES}")

        def read(name: str, limit: int) -> bytes:
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise InvalidInput(f"the archive has no {name}, which {LABELS_FILE} lists" if name != LABELS_FILE else
                                   f"the archive has no {LABELS_FILE}: it is not a label set exported by this app "
                                   "(Download this set makes one)") from None
            if info.file_size > limit:
                raise InvalidInput(f"{name} is {info.file_size} bytes; at most {limit} are accepted")
            total[0] += info.file_size
            if total[0] > MAX_FOLDER_BYTES:
                raise InvalidInput(f"the archive holds more than {MAX_FOLDER_BYTES} bytes")
            try:
                with zf.open(info) as fh:  # reads at most file_size bytes, checks the CRC
                    return fh.read(limit + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                raise InvalidInput(f"{name} cannot be read from the archive ({exc})") from None

        return _parse(read, model_id)


def _parse(read: Callable[[str, int], bytes], expected_model: Optional[str]) -> LabelFolder:
    doc = _json(read(LABELS_FILE, MAX_LABELS_JSON_BYTES), LABELS_FILE)
    if doc.get("format") != LABELS_FORMAT:
        raise InvalidInput(f"{LABELS_FILE} has format {repr(doc.get('format'))[:60]}; accepted: {LABELS_FORMAT!r}")
    model_id = check.model_id(doc.get("model_id"))
    if expected_model is not None and model_id != check.model_id(expected_model):
        raise InvalidInput(f"this label set labels model {model_id}, not {expected_model}: a branch only fits "
                           "the generator it was trained on")
    name = lcheck.set_name(doc.get("name"))
    resolution = lcheck.resolution(doc.get("resolution"))
    raw_classes = doc.get("classes")
    if not isinstance(raw_classes, list) or not all(isinstance(c, dict) for c in raw_classes):
        raise InvalidInput(f"{LABELS_FILE}: classes are a list of {{name, color}} objects")
    classes = lcheck.classes([(c.get("name"), c.get("color")) for c in raw_classes])
    raw_samples = doc.get("samples")
    if not isinstance(raw_samples, list) or len(raw_samples) > lcheck.MAX_SAMPLES_PER_SET:
        raise InvalidInput(f"{LABELS_FILE}: samples are a list of at most {lcheck.MAX_SAMPLES_PER_SET}")
    seen_files: set[str] = set()
    positions: dict[int, _Sample] = {}
    pairs: set[tuple[int, float]] = set()
    decoded = 0
    for i, rec in enumerate(raw_samples):
        where = f"{LABELS_FILE} sample {i}"
        if not isinstance(rec, dict):
            raise InvalidInput(f"{where} must be a JSON object")
        position = rec.get("position")
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < 10_000 \
                or position in positions:
            raise InvalidInput(f"{where}: position {repr(position)[:40]} is not accepted; positions are distinct "
                               "integers from 0")
        seed, trunc = lcheck.seed(rec.get("seed")), lcheck.truncation(rec.get("truncation"))
        if (seed, trunc) in pairs:
            raise InvalidInput(f"{where}: seed {seed} at truncation {trunc} is listed twice")
        pairs.add((seed, trunc))
        history = rec.get("history", [])
        if not isinstance(history, list) or len(history) >= MAX_MASK_VERSIONS:
            raise InvalidInput(f"{where}: history is a list of at most {MAX_MASK_VERSIONS - 1} older masks")
        versions = [*history, rec] if rec.get("mask") is not None else []
        if history and not versions:
            raise InvalidInput(f"{where} has a mask history but no latest mask")
        decoded += len(versions) * resolution**2
        if decoded > MAX_DECODED_MASK_BYTES:
            raise InvalidInput(f"the label set's masks decode to more than {MAX_DECODED_MASK_BYTES} bytes")
        masks = tuple(_mask(read, v, f"{where} mask {k + 1}", len(classes), resolution, seen_files)
                      for k, v in enumerate(versions))
        positions[position] = _Sample(seed, trunc, masks)
    branches = _branches(read, doc.get("branches", []), model_id, len(classes))
    return LabelFolder(model_id=model_id, name=name, resolution=resolution, classes=classes,
                       samples=tuple(positions[p] for p in sorted(positions)), branches=branches)


def _json(raw: bytes, what: str) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSON errors and over-deep nesting
        raise InvalidInput(f"{what} is not valid UTF-8 JSON ({str(exc)[:120]})") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return doc


def _time(value: Any, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        t = None
    if t is None:
        raise InvalidInput(f"{what} {repr(value)[:60]} is not an ISO 8601 time")
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _mask(read, rec: Any, where: str, n_classes: int, resolution: int, seen: set[str]) -> _Mask:
    if not isinstance(rec, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    path = rec.get("mask")
    if not isinstance(path, str) or _MASK_RE.fullmatch(path) is None or path in seen:
        raise InvalidInput(f"{where}: file {repr(path)[:80]} is not accepted; masks are 'masks/<position>.png' "
                           "or 'masks/<position>-v<version>.png', each listed once")
    seen.add(path)
    author = check.username(rec.get("author"))
    created = _time(rec.get("created_at"), f"{where}: created_at")
    note = check.text(rec.get("note", ""), f"{where}: note", check.MAX_NOTE_CHARS, multiline=True)
    return _Mask(_decode_png(read(path, MAX_MASK_PNG_BYTES), path, n_classes, resolution), author, created, note)


def _decode_png(data: bytes, path: str, n_classes: int, resolution: int) -> np.ndarray:
    """A palette ('P') or grayscale ('L') PNG of [resolution, resolution] class ids # -> [H, W] uint8."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:  # reads the header only
            if img.size != (resolution, resolution):
                raise InvalidInput(f"{path} is {img.size[0]}x{img.size[1]} pixels; masks of this set are "
                                   f"{resolution}x{resolution}")
            if img.mode not in ("P", "L"):
                raise InvalidInput(f"{path} is a {img.mode} image; a mask is an 8-bit palette or grayscale PNG "
                                   "whose pixel values are class ids")
            ids = np.asarray(img, dtype=np.uint8)
    except InvalidInput:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"{path} is not a readable PNG ({str(exc)[:120]})") from None
    if ids.shape != (resolution, resolution):
        raise InvalidInput(f"{path} decodes to shape {list(ids.shape)}; expected [{resolution}, {resolution}]")
    if int(ids.max()) >= n_classes:
        bad = np.unique(ids[ids >= n_classes])[:10].tolist()
        raise InvalidInput(f"{path} uses class id(s) {bad}, but the set has {n_classes} classes "
                           f"(ids 0-{n_classes - 1})")
    return ids.copy()


def _branches(read, records: Any, model_id: str, n_classes: int) -> tuple[_Branch, ...]:
    if not isinstance(records, list) or len(records) > MAX_BRANCHES:
        raise InvalidInput(f"{LABELS_FILE}: branches are a list of at most {MAX_BRANCHES}")
    out, seen = [], set()
    for i, rec in enumerate(records):
        where = f"{LABELS_FILE} branch {i}"
        if not isinstance(rec, dict):
            raise InvalidInput(f"{where} must be a JSON object")
        version = lcheck.version(rec.get("version"), f"{where}: version")
        weights_path, meta_path, sha = rec.get("weights"), rec.get("meta"), rec.get("sha256")
        if version in seen or weights_path != f"branches/v{version}.safetensors" \
                or meta_path != f"branches/v{version}.json" or _WEIGHTS_RE.fullmatch(weights_path) is None \
                or _META_RE.fullmatch(meta_path) is None:
            raise InvalidInput(f"{where}: each version is listed once, with files 'branches/v<N>.safetensors' "
                               "and 'branches/v<N>.json'")
        seen.add(version)
        if not isinstance(sha, str) or _SHA_RE.fullmatch(sha) is None:
            raise InvalidInput(f"{where}: sha256 must be 64 lowercase hex characters")
        weights = read(weights_path, lcheck.MAX_BRANCH_BYTES)
        _check_safetensors(weights, weights_path)
        if hashlib.sha256(weights).hexdigest() != sha:
            raise InvalidInput(f"{weights_path} does not match the sha256 in {LABELS_FILE}; the folder is damaged")
        meta = _json(read(meta_path, MAX_BRANCH_META_BYTES), meta_path)
        config = lcheck.json_object(meta.get("config"), "config")
        _check_config_classes(config, meta_path)
        record = lcheck.json_object(meta.get("record"), "record")
        n_masks = meta.get("n_masks")
        if isinstance(n_masks, bool) or not isinstance(n_masks, int) or not 0 <= n_masks <= check.MAX_ID:
            raise InvalidInput(f"{meta_path}: n_masks is {repr(n_masks)[:40]}; accepted: an integer from 0")
        created_by = check.username(meta.get("created_by"))
        created_at = _time(meta.get("created_at"), f"{meta_path}: created_at")
        from_set = meta.get("from_this_set", False)
        if not isinstance(from_set, bool):
            raise InvalidInput(f"{meta_path}: from_this_set is true or false")
        out.append(_Branch(version, weights, config, record, n_masks, created_by, created_at, from_set))
    return tuple(out)


def _check_safetensors(data: bytes, path: str) -> None:
    """The whole safetensors layout, without torch: header length, JSON header of known dtypes and shapes,
    data offsets that tile the byte buffer exactly. Pickles, zips (.pt) and anything else are refused."""
    if data[:1] == b"\x80" or data[:2] == b"PK":
        raise InvalidInput(f"{path} is a pickle or a zip (.pt/.pth) file, not safetensors; pickles are never "
                           "loaded: save the branch with safetensors")
    lcheck.safetensors_bytes(data)  # the 8-byte length and a JSON object header
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = len(data) - 8 - n
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise InvalidInput(f"{path}: __metadata__ must map strings to strings")
            continue
        ok = isinstance(entry, dict) and entry.get("dtype") in _DTYPE_BYTES and isinstance(entry.get("shape"), list) \
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"]) \
            and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2 \
            and all(isinstance(o, int) and not isinstance(o, bool) for o in entry["data_offsets"])
        if ok:
            begin, end = entry["data_offsets"]
            ok = 0 <= begin <= end <= body \
                and end - begin == math.prod(entry["shape"]) * _DTYPE_BYTES[entry["dtype"]]
        if not ok:
            raise InvalidInput(f"{path}: tensor {key[:60]!r} has a damaged entry (dtype, shape or data_offsets)")
        spans.append((begin, end))
    spans.sort()
    if not spans or spans[0][0] != 0 or spans[-1][1] != body or any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
        raise InvalidInput(f"{path}: the tensors do not tile the file's data exactly; the file is damaged")


def _check_config_classes(config: dict, path: str) -> None:
    """The app shows a branch's class names from its config: they pass the same checks as a set's classes."""
    if "classes" in config or "palette" in config:
        names, palette = config.get("classes"), config.get("palette")
        if not isinstance(names, list) or not isinstance(palette, list) or len(names) != len(palette):
            raise InvalidInput(f"{path}: config classes and palette are two lists of the same length")
        try:
            lcheck.classes(list(zip(names, palette)))
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: config: {exc}") from None


# ---------------------------------------------------------------------- import
def import_label_set(store: LabelStore, folder: Union[Path, str, bytes], user: str,
                     model_id: Optional[str] = None) -> ImportResult:
    """Import a label-set folder (or a .zip of it, or zip bytes) as ``user``'s new set with its branch versions,
    all or nothing.

    ``model_id``: the generator the caller has loaded; the folder must label that one. The set is named as the
    exported one, or "<name> (imported)", "<name> (imported 2)", ... when the model already has that name."""
    check.username(user)
    data = read_label_folder(folder, model_id)
    notes = [[_provenance(m) for m in s.masks] for s in data.samples]
    branch_records = []
    for b in data.branches:
        record = dict(b.record)
        record["imported"] = {"version": b.version, "created_by": b.created_by, "created_at": _iso(b.created_at),
                              "set": data.name}
        branch_records.append(lcheck.json_object(record, "record"))  # the size cap, before any write
    info = _create_set(store, data, user)
    added: list[int] = []
    try:
        samples = _add_samples(store, info.id, user, data.samples)
        n_masks = 0
        for sample, wanted, texts in zip(samples, data.samples, notes):
            for base, (m, note) in enumerate(zip(wanted.masks, texts)):
                store.save_mask(sample.id, user, m.ids, base_version=base, note=note)
                n_masks += 1
        new_versions = []
        for b, record in zip(data.branches, branch_records):
            stored = store.add_branch_version(data.model_id, user, b.weights, b.config, record,
                                              info.id if b.from_this_set else None, b.n_masks)
            added.append(stored.id)
            new_versions.append(stored.version)
    except BaseException:
        _undo(store, info.id, added)
        raise
    return ImportResult(label_set=store.get_set(info.id), n_samples=len(samples), n_masks=n_masks,
                        branch_versions=tuple(new_versions),
                        source_branch_versions=tuple(b.version for b in data.branches))


def _provenance(m: _Mask) -> str:
    """The note of an imported mask: who labelled it where it came from, and when, then their note (cut with
    '…' to the store's 500 characters when both do not fit)."""
    head = f"labelled by {m.author} at {m.created_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"
    if not m.note:
        return head
    room = check.MAX_NOTE_CHARS - len(head) - 2
    return f"{head}: {m.note if len(m.note) <= room else m.note[:room - 1] + '…'}"


def _names(name: str) -> list[str]:
    out = [name]
    for k in range(1, MAX_NAME_TRIES):
        suffix = IMPORTED_SUFFIX if k == 1 else f" (imported {k})"
        out.append(name[:lcheck.MAX_SET_NAME_CHARS - len(suffix)].rstrip() + suffix)
    return out


def _create_set(store: LabelStore, data: LabelFolder, user: str) -> LabelSetInfo:
    taken = {s.name for s in store.sets_for_model(data.model_id)}
    classes = [(c.name, c.color) for c in data.classes]
    for name in _names(data.name):
        if name in taken:
            continue
        try:
            return store.create_set(data.model_id, name, user, classes, data.resolution)
        except Conflict:  # created by someone else a moment ago: try the next name
            continue
    raise Conflict(f"model {data.model_id} already has label sets named {data.name!r} and {MAX_NAME_TRIES - 1} "
                   "imported copies of it; rename one first")


def _add_samples(store: LabelStore, set_id: int, user: str, samples: Sequence[_Sample]):
    """add_samples takes one truncation per call: one call per run of equal truncations keeps the order."""
    out, i = [], 0
    while i < len(samples):
        j = i
        while j < len(samples) and samples[j].truncation == samples[i].truncation:
            j += 1
        out += store.add_samples(set_id, user, [s.seed for s in samples[i:j]], samples[i].truncation)
        i = j
    return out


def _undo(store: LabelStore, set_id: int, branch_ids: list[int]) -> None:
    """Delete what a failed import wrote (its set, samples, masks and branch versions) in one transaction."""
    def action(s) -> None:
        if branch_ids:
            s.execute(delete(BranchVersion).where(BranchVersion.id.in_(branch_ids)))
        samples = select(LabelSample.id).where(LabelSample.set_id == set_id).scalar_subquery()
        s.execute(delete(LabelMask).where(LabelMask.sample_id.in_(samples)))
        s.execute(delete(LabelSample).where(LabelSample.set_id == set_id))
        s.execute(delete(LabelSetMember).where(LabelSetMember.set_id == set_id))
        s.execute(delete(LabelSet).where(LabelSet.id == set_id))

    try:
        store._write(action)
    except Exception:  # the import's own error is the one raised; this one is logged
        log.exception("could not delete label set %s after its import failed", set_id)


# ---------------------------------------------------------------------- Hub
def push_label_set(store: LabelStore, repo_id: str, set_id: int, branch_versions: Sequence[int] = (), *,
                   include_history: bool = False, api: Any = None, token: Optional[str] = None,
                   private: Optional[bool] = None, revision: Optional[str] = None,
                   commit_message: Optional[str] = None) -> LabelHubPushResult:
    """Export the set (and ``branch_versions``) and commit it to the dataset ``repo_id``, replacing the label
    set there (an edit-vector collection in the same repo is left alone: the patterns do not overlap)."""
    _check_repo_id(repo_id)
    hub = _api(api, token)
    with tempfile.TemporaryDirectory(prefix="editgan-push-labels-") as tmp:
        folder = export_label_set(store, set_id, Path(tmp) / "labels", branch_versions, include_history)
        n_masks = len(list((folder / "masks").glob("*.png")))
        hub.create_repo(repo_id, repo_type=REPO_TYPE, exist_ok=True, private=private)
        info = hub.upload_folder(
            repo_id=repo_id, folder_path=str(folder), repo_type=REPO_TYPE, revision=revision,
            commit_message=commit_message or f"Label set: {n_masks} masks, {len(branch_versions)} branch versions",
            allow_patterns=LABEL_PATTERNS, delete_patterns=LABEL_PATTERNS)
    return LabelHubPushResult(repo_id=repo_id, commit=str(getattr(info, "oid", "") or ""), n_masks=n_masks,
                              branch_versions=tuple(branch_versions))


def pull_label_set(store: LabelStore, repo_id: str, user: str, *, model_id: Optional[str] = None, api: Any = None,
                   token: Optional[str] = None, revision: Optional[str] = None) -> ImportResult:
    """Download the label set in ``repo_id`` and import it as ``user``'s, all or nothing."""
    _check_repo_id(repo_id)
    hub = _api(api, token)
    with tempfile.TemporaryDirectory(prefix="editgan-pull-labels-") as tmp:
        path = hub.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=revision, local_dir=tmp,
                                     allow_patterns=LABEL_PATTERNS)
        return import_label_set(store, Path(path), user, model_id=model_id)
