"""Import/export of vector files and collections, and push/pull through the Hub API."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import HfApi

from vector_library import (
    InvalidInput,
    NotFound,
    SearchQuery,
    VectorLibrary,
    VectorMetadata,
    pull_collection,
    push_collection,
)
from vector_library.testing import CARS


class LocalHub:
    """A stand-in for huggingface_hub.HfApi that keeps dataset repos in a local folder.

    It implements only the three methods the library calls, with HfApi's parameter names, and
    records each call so a test can check it binds to the real HfApi signature."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, tuple, dict]] = []
        self.commits = 0

    def _repo(self, repo_id: str) -> Path:
        return self.root / repo_id.replace("/", "--")

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kw):
        self.calls.append(("create_repo", (repo_id,), dict(token=token, private=private, repo_type=repo_type,
                                                           exist_ok=exist_ok, **kw)))
        assert repo_type == "dataset"
        path = self._repo(repo_id)
        if path.exists() and not exist_ok:
            raise FileExistsError(repo_id)
        path.mkdir(parents=True, exist_ok=True)
        return f"https://hub.local/datasets/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, revision=None, commit_message=None,
                      allow_patterns=None, delete_patterns=None, **kw):
        self.calls.append(("upload_folder", (), dict(repo_id=repo_id, folder_path=folder_path, repo_type=repo_type,
                                                     revision=revision, commit_message=commit_message,
                                                     allow_patterns=allow_patterns,
                                                     delete_patterns=delete_patterns, **kw)))
        repo = self._repo(repo_id)
        if not repo.exists():
            raise FileNotFoundError(f"repository {repo_id} does not exist")
        for pattern in delete_patterns or []:
            for old in repo.glob(pattern):
                old.unlink()
        shutil.copytree(folder_path, repo, dirs_exist_ok=True)
        self.commits += 1
        return SimpleNamespace(oid=f"{self.commits:040x}", commit_url=f"https://hub.local/{repo_id}/commit")

    def snapshot_download(self, repo_id, *, repo_type=None, revision=None, local_dir=None, allow_patterns=None,
                          **kw):
        self.calls.append(("snapshot_download", (repo_id,), dict(repo_type=repo_type, revision=revision,
                                                                 local_dir=local_dir,
                                                                 allow_patterns=allow_patterns, **kw)))
        repo = self._repo(repo_id)
        if not repo.exists():
            raise FileNotFoundError(f"repository {repo_id} does not exist")
        shutil.copytree(repo, local_dir, dirs_exist_ok=True)
        return str(local_dir)


@pytest.fixture
def hub(tmp_path) -> LocalHub:
    return LocalHub(tmp_path / "hub")


def test_vector_file_export_then_upload_round_trips(library, publish):
    v = publish("alice", "exported", description="desc", metrics={"iou": 0.75})
    data = library.export_vector(v.id)
    copy = library.publish("bob", data, VectorMetadata(tags=("copy",)))
    assert library.export_vector(copy.id) == data
    assert (copy.name, copy.description, copy.metrics) == ("exported", "desc", {"iou": 0.75})


def test_zip_collection_round_trip(library, publish, make_vector):
    a = publish("alice", "first", tags=("smile",))
    b = library.publish("alice", make_vector(spec=CARS, edited_classes=("wheel",), name="car"),
                        VectorMetadata(tags=("car", "wheel"), licence="mit"))
    data = library.export_zip([a.id, b.id])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "vectors/0001.safetensors", "vectors/0002.safetensors"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "editgan-collection/1"
    assert [(e["tags"], e["licence"], e["author"]) for e in manifest["vectors"]] == \
        [(["smile"], "cc-by-4.0", "alice"), (["car", "wheel"], "mit", "alice")]

    imported = library.import_collection("bob", data)
    assert [(i.name, i.tags, i.licence, i.author, i.visibility) for i in imported] == \
        [("first", ("smile",), "cc-by-4.0", "bob", "private"), ("car", ("car", "wheel"), "mit", "bob", "private")]
    for src, dst in zip((a, b), imported):
        assert library.export_vector(dst.id, viewer="bob") == library.export_vector(src.id)


def test_folder_collection_round_trip(library, publish, tmp_path):
    ids = [publish("alice", f"v{i}").id for i in range(3)]
    folder = library.export_folder(ids, tmp_path / "out")
    assert sorted(p.name for p in (folder / "vectors").iterdir()) == \
        ["0001.safetensors", "0002.safetensors", "0003.safetensors"]
    got = library.import_collection("carol", folder, visibility="public")
    assert [g.name for g in got] == ["v0", "v1", "v2"] and {g.visibility for g in got} == {"public"}
    with pytest.raises(InvalidInput, match="not an empty folder"):
        library.export_folder(ids, folder)


def test_export_respects_visibility(library, publish):
    secret = publish("alice", visibility="private")
    with pytest.raises(NotFound):
        library.export_zip([secret.id], viewer="bob")
    assert library.export_zip([secret.id], viewer="alice")
    with pytest.raises(InvalidInput, match="each vector once"):
        library.export_zip([secret.id, secret.id], viewer="alice")
    with pytest.raises(InvalidInput, match="list of 1-1000"):
        library.export_zip([])


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _collection(entries: list[tuple[str, bytes]], **overrides) -> bytes:
    records = [{"file": path, "sha256": hashlib.sha256(data).hexdigest(), "tags": [], "licence": "mit"}
               for path, data in entries]
    for i, rec in overrides.get("records", {}).items():
        records[i].update(rec)
    manifest = {"format": "editgan-collection/1", "vectors": records}
    files = {"manifest.json": json.dumps(manifest).encode()}
    files.update({p: d for p, d in entries if not p.startswith("/") and ".." not in p})
    files.update(overrides.get("extra", {}))
    return _zip(files)


def test_import_is_all_or_nothing(library, publish, make_vector, snapshot):
    publish("alice", "existing")
    good = make_vector(name="good").to_bytes()
    cases = {
        "an unknown model": make_vector(model_id="9" * 32, name="x").to_bytes(),
        "a wrong shape": make_vector(shape=(5, 8), name="x").to_bytes(),
        "a pickle": b"\x80\x04\x95" + b"\0" * 40,
        "no name": make_vector(name="").to_bytes(),
        "an unknown class": make_vector(edited_classes=("tail",), name="x").to_bytes(),
    }
    before = snapshot()
    for why, bad in cases.items():
        data = _collection([("vectors/a.safetensors", good), ("vectors/b.safetensors", good),
                            ("vectors/c.safetensors", bad)])
        with pytest.raises((InvalidInput, NotFound)):
            library.import_collection("bob", data)
        assert snapshot() == before, why


@pytest.mark.parametrize("path", [
    "../evil.safetensors", "/etc/passwd", "vectors/../../evil.safetensors", "vectors/sub/x.safetensors",
    "vectors/.hidden.safetensors", "vectors/x.pt", "vectors\\x.safetensors", "C:/x.safetensors", 7,
])
def test_import_refuses_path_like_names(library, make_vector, path, snapshot):
    data = make_vector().to_bytes()
    before = snapshot()
    with pytest.raises(InvalidInput, match="is not accepted"):
        library.import_collection("bob", _collection([(path, data)]) if isinstance(path, str) else
                                  _collection([("vectors/a.safetensors", data)], records={0: {"file": path}}))
    assert snapshot() == before


def test_import_refuses_damaged_or_hostile_archives(library, make_vector, snapshot):
    data = make_vector().to_bytes()
    before = snapshot()
    with pytest.raises(InvalidInput, match="not a zip archive"):
        library.import_collection("bob", b"definitely not a zip")
    with pytest.raises(InvalidInput, match="no manifest.json"):
        library.import_collection("bob", _zip({"vectors/a.safetensors": data}))
    with pytest.raises(InvalidInput, match="does not match the sha256"):
        library.import_collection("bob", _collection([("vectors/a.safetensors", data)],
                                                     records={0: {"sha256": "0" * 64}}))
    with pytest.raises(InvalidInput, match="listed twice"):
        library.import_collection("bob", _collection([("vectors/a.safetensors", data)] * 2))
    with pytest.raises(InvalidInput, match="manifest.json must be a JSON object with format"):
        library.import_collection("bob", _zip({"manifest.json": b'{"format": "other"}'}))
    with pytest.raises(InvalidInput, match="not valid UTF-8 JSON"):
        library.import_collection("bob", _zip({"manifest.json": b"\xff\xfe"}))
    with pytest.raises(InvalidInput, match="tag"):
        library.import_collection("bob", _collection([("vectors/a.safetensors", data)],
                                                     records={0: {"tags": ["<script>"]}}))
    with pytest.raises(InvalidInput, match="licence"):
        library.import_collection("bob", _collection([("vectors/a.safetensors", data)],
                                                     records={0: {"licence": "'; DROP TABLE users; --"}}))
    with pytest.raises(PermissionError, match="anonymous"):
        library.import_collection(None, _collection([("vectors/a.safetensors", data)]))
    assert snapshot() == before


def test_import_caps_file_sizes_before_reading(database, library, make_vector, snapshot):
    small = VectorLibrary(database, max_upload_bytes=200)
    data = make_vector().to_bytes()
    assert len(data) > 200
    before = snapshot()
    with pytest.raises(InvalidInput, match="at most 200 are accepted"):
        small.import_collection("bob", _collection([("vectors/a.safetensors", data)]))
    bomb = _zip({"manifest.json": b"{" + b" " * (5 * 1024 * 1024) + b"}"})
    with pytest.raises(InvalidInput, match="manifest.json is .* bytes; at most"):
        library.import_collection("bob", bomb)
    assert snapshot() == before


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_import_refuses_symlinks_out_of_the_folder(library, publish, tmp_path, snapshot):
    folder = library.export_folder([publish().id], tmp_path / "c")
    target = folder / "vectors" / "0001.safetensors"
    outside = tmp_path / "outside.safetensors"
    target.rename(outside)
    target.symlink_to(outside)
    before = snapshot()
    with pytest.raises(InvalidInput, match="link or lies outside"):
        library.import_collection("bob", folder)
    assert snapshot() == before


def test_push_and_pull_through_the_hub_api(library, publish, hub):
    ids = [publish("alice", f"hub {i}", tags=("hub",)).id for i in range(3)]
    result = push_collection(library, "alice/smiles", ids, api=hub, private=True)
    assert (result.repo_id, result.n_vectors, result.commit) == ("alice/smiles", 3, f"{1:040x}")
    pulled = pull_collection(library, "alice/smiles", "bob", api=hub)
    assert [p.name for p in pulled] == ["hub 0", "hub 1", "hub 2"] and {p.author for p in pulled} == {"bob"}
    for src, dst in zip(ids, pulled):
        assert library.export_vector(dst.id, viewer="bob") == library.export_vector(src)

    # A second push replaces the collection: stale files are deleted in the same commit.
    push_collection(library, "alice/smiles", ids[:1], api=hub)
    assert [p.name for p in pull_collection(library, "alice/smiles", "carol", api=hub)] == ["hub 0"]


def test_hub_calls_bind_to_the_real_hfapi_signatures(library, publish, hub):
    push_collection(library, "alice/sig", [publish().id], api=hub)
    pull_collection(library, "alice/sig", "bob", api=hub)
    assert [c[0] for c in hub.calls] == ["create_repo", "upload_folder", "snapshot_download"]
    for name, args, kwargs in hub.calls:
        inspect.signature(getattr(HfApi, name)).bind(HfApi(), *args, **kwargs)  # raises TypeError if not


def test_pull_of_a_damaged_repo_imports_nothing(library, publish, hub, snapshot):
    push_collection(library, "alice/broken", [publish().id, publish().id], api=hub)
    (hub._repo("alice/broken") / "vectors" / "0002.safetensors").write_bytes(b"\x80\x04 pickle")
    before = snapshot()
    with pytest.raises(InvalidInput, match="sha256"):
        pull_collection(library, "alice/broken", "bob", api=hub)
    assert snapshot() == before


@pytest.mark.parametrize("repo_id", ["../etc", "noslash", "a/b/c", "a/..", "", None, "a/" + "b" * 200])
def test_bad_repo_ids_are_refused(library, hub, repo_id):
    with pytest.raises(InvalidInput, match="repo_id"):
        push_collection(library, repo_id, [1], api=hub)
    with pytest.raises(InvalidInput, match="repo_id"):
        pull_collection(library, repo_id, "bob", api=hub)
    assert hub.calls == []


def test_search_finds_imported_vectors(library, publish):
    data = library.export_zip([publish("alice", "lantern jaw").id])
    library.import_collection("bob", data, visibility="public")
    assert sorted(v.author for v in library.search(SearchQuery(text="lantern")).items) == ["alice", "bob"]
