"""Collections on disk: a folder or zip of editgan-vector/1 files plus a manifest.

    manifest.json                 {"format": "editgan-collection/1", "exported_at": ...,
                                   "vectors": [{"file": "vectors/0001.safetensors", "sha256": ...,
                                                "tags": [...], "licence": ..., "author": ...,
                                                "source_id": ..., "version": ...}, ...]}
    vectors/0001.safetensors      one file per vector; name, description, scales, classes and
    vectors/0002.safetensors      metrics travel inside the file's own header

File names are generated (never taken from user text), and reading accepts only manifest paths
of the form ``vectors/<letters, digits, . _ ->.safetensors``: no absolute paths, no ``..``, no
symlinks, nothing outside the collection. Every file is size-capped before it is read, checked
against its sha256, and parsed by the strict reader of core.vector_format. Reading is pure; the
service publishes all entries in one transaction, so an import is all-or-nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from core.vector_format import DEFAULT_MAX_BYTES, VectorFile, VectorFormatError
from vector_library import validation as check
from vector_library.errors import InvalidInput

COLLECTION_FORMAT = "editgan-collection/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_COLLECTION_VECTORS = 1000
MAX_COLLECTION_BYTES = 512 * 1024 * 1024
_FILE_RE = re.compile(r"vectors/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}\.safetensors")
_SHA_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CollectionEntry:
    """One vector of a collection: the file plus what the manifest says beyond it."""

    vector: VectorFile
    tags: tuple[str, ...] = ()
    licence: str = check.DEFAULT_LICENCE
    author: str = ""                 # informational: who published it where it came from
    source_id: Optional[int] = None  # informational: its id there
    version: Optional[int] = None


def manifest(entries: list[CollectionEntry]) -> tuple[dict, list[tuple[str, bytes]]]:
    """The manifest and the (path, bytes) files of a collection."""
    files, records = [], []
    for i, entry in enumerate(entries, start=1):
        data = entry.vector.to_bytes()
        path = f"vectors/{i:04d}.safetensors"
        files.append((path, data))
        records.append({"file": path, "sha256": hashlib.sha256(data).hexdigest(), "name": entry.vector.name,
                        "tags": list(entry.tags), "licence": entry.licence, "author": entry.author,
                        "source_id": entry.source_id, "version": entry.version})
    doc = {"format": COLLECTION_FORMAT, "exported_at": datetime.now(timezone.utc).isoformat(),
           "vectors": records}
    return doc, files


def pack_zip(entries: list[CollectionEntry]) -> bytes:
    doc, files = manifest(entries)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(doc, ensure_ascii=False, indent=1))
        for path, data in files:
            zf.writestr(path, data)
    return buf.getvalue()


def write_folder(entries: list[CollectionEntry], folder: Path) -> Path:
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInput(f"{folder} exists and is not an empty folder; exports go to a new or empty folder")
    doc, files = manifest(entries)
    (folder / "vectors").mkdir(parents=True, exist_ok=True)
    for path, data in files:
        (folder / path).write_bytes(data)
    (folder / MANIFEST).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def read_collection(source: Union[bytes, str, Path], max_file_bytes: int = DEFAULT_MAX_BYTES) -> list[CollectionEntry]:
    """Read and fully validate a collection: zip bytes, a .zip path, or a folder."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read_zip(bytes(source), max_file_bytes)
    path = Path(source)
    if path.is_dir():
        return _read_folder(path, max_file_bytes)
    if path.is_file():
        if path.stat().st_size > MAX_COLLECTION_BYTES:
            raise InvalidInput(f"{path.name} is larger than {MAX_COLLECTION_BYTES} bytes, the collection limit")
        return _read_zip(path.read_bytes(), max_file_bytes)
    raise InvalidInput(f"{path} is neither a collection folder nor a .zip file")


def _read_zip(data: bytes, max_file_bytes: int) -> list[CollectionEntry]:
    if len(data) > MAX_COLLECTION_BYTES:
        raise InvalidInput(f"the archive is {len(data)} bytes; at most {MAX_COLLECTION_BYTES} are accepted")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("the upload is not a zip archive; a collection is a zip or folder with "
                           f"{MANIFEST} and vectors/*.safetensors") from None
    with zf:
        if len(zf.infolist()) > MAX_COLLECTION_VECTORS + 16:
            raise InvalidInput(f"the archive has {len(zf.infolist())} entries; at most "
                               f"{MAX_COLLECTION_VECTORS} vectors are accepted")

        def read(name: str, limit: int) -> bytes:
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise InvalidInput(f"the archive has no {name}, which its manifest lists") from None
            if info.file_size > limit:
                raise InvalidInput(f"{name} is {info.file_size} bytes; at most {limit} are accepted")
            try:
                with zf.open(info) as fh:  # reads at most file_size bytes, checks the CRC
                    return fh.read(limit + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                raise InvalidInput(f"{name} cannot be read from the archive ({exc})") from None

        return _parse(read, max_file_bytes)


def _read_folder(folder: Path, max_file_bytes: int) -> list[CollectionEntry]:
    root = folder.resolve()

    def read(name: str, limit: int) -> bytes:
        path = folder / name
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise InvalidInput(f"{name} is a link or lies outside the collection folder; refused")
        if not path.is_file():
            raise InvalidInput(f"the folder has no {name}, which its manifest lists")
        size = path.stat().st_size
        if size > limit:
            raise InvalidInput(f"{name} is {size} bytes; at most {limit} are accepted")
        return path.read_bytes()

    return _parse(read, max_file_bytes)


def _parse(read, max_file_bytes: int) -> list[CollectionEntry]:
    raw = read(MANIFEST, MAX_MANIFEST_BYTES)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{MANIFEST} is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != COLLECTION_FORMAT:
        raise InvalidInput(f"{MANIFEST} must be a JSON object with format {COLLECTION_FORMAT!r}")
    records = doc.get("vectors")
    if not isinstance(records, list) or not 1 <= len(records) <= MAX_COLLECTION_VECTORS:
        raise InvalidInput(f"{MANIFEST} must list 1-{MAX_COLLECTION_VECTORS} vectors under 'vectors'")
    seen: set[str] = set()
    entries, total = [], 0
    for i, rec in enumerate(records, start=1):
        where = f"{MANIFEST} entry {i}"
        if not isinstance(rec, dict):
            raise InvalidInput(f"{where} must be a JSON object")
        path = rec.get("file")
        if not isinstance(path, str) or _FILE_RE.fullmatch(path) is None:
            raise InvalidInput(f"{where}: file {repr(path)[:80]} is not accepted; files are "
                               "'vectors/<letters, digits, . _ ->.safetensors'")
        if path in seen:
            raise InvalidInput(f"{where}: {path} is listed twice")
        seen.add(path)
        sha = rec.get("sha256")
        if not isinstance(sha, str) or _SHA_RE.fullmatch(sha) is None:
            raise InvalidInput(f"{where}: sha256 must be 64 lowercase hex characters")
        data = read(path, max_file_bytes)
        total += len(data)
        if total > MAX_COLLECTION_BYTES:
            raise InvalidInput(f"the collection holds more than {MAX_COLLECTION_BYTES} bytes of vectors")
        if hashlib.sha256(data).hexdigest() != sha:
            raise InvalidInput(f"{path} does not match the sha256 in {MANIFEST}; the collection is damaged")
        try:
            vector = VectorFile.from_bytes(data, max_bytes=max_file_bytes)
        except VectorFormatError as exc:
            raise InvalidInput(f"{path}: {exc}") from None
        entries.append(CollectionEntry(
            vector=vector,
            tags=check.tags(rec.get("tags", [])),
            licence=check.licence(rec.get("licence", check.DEFAULT_LICENCE)),
            author=_optional_text(rec.get("author"), f"{where}: author"),
            source_id=_optional_int(rec.get("source_id"), f"{where}: source_id"),
            version=_optional_int(rec.get("version"), f"{where}: version"),
        ))
    return entries


def _optional_text(value: Any, what: str) -> str:
    return "" if value is None else check.text(value, what, 128)


def _optional_int(value: Any, what: str) -> Optional[int]:
    return None if value is None else check.positive_int(value, what, 2**63 - 1)
