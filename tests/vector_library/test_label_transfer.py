"""Sharing a label set and its branch (vector_library.label_transfer), on SQLite and PostgreSQL: a round trip into
a second, fresh database; every kind of damaged or hostile folder refused with nothing written; name clashes;
a failure midway undone; push and pull through a stand-in for the Hub API."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
from huggingface_hub import HfApi
from PIL import Image
from safetensors.numpy import save as save_safetensors

from db.testing import fresh_sqlite
from vector_library import Conflict, InvalidInput, LabelStore, NotFound, VectorLibrary
from vector_library import label_transfer as lt
from vector_library.label_transfer import (
    export_label_set,
    import_label_set,
    pull_label_set,
    push_label_set,
)
from vector_library.testing import CARS, FACES

RES = 16
CLASSES = [("background", (0, 0, 0)), ("skin", (255, 200, 150)), ("eye", (0, 120, 255))]
CONFIG = {"branch": {"num_classes": 3}, "classes": [c[0] for c in CLASSES], "palette": [list(c[1]) for c in CLASSES]}


def weights(n: int = 4) -> bytes:
    return save_safetensors({"w": np.arange(n, dtype=np.float32), "b": np.ones((2, 3), np.float32)})


def painted(seed: int, n_classes: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_classes, (RES, RES), dtype=np.uint8)  # [RES, RES]


@pytest.fixture
def store(library, database) -> LabelStore:
    return LabelStore(database)


@pytest.fixture
def other(sqlite_template, tmp_path) -> LabelStore:
    """A second, fresh library (SQLite) with its own users and the same generators registered."""
    db = fresh_sqlite(sqlite_template, tmp_path / "other.sqlite3")
    lib = VectorLibrary(db)
    for name in ("dave", "erin"):
        lib.ensure_user(name)
    lib.register_model(FACES)
    lib.register_model(CARS)
    yield LabelStore(db)
    db.dispose()


def make_set(store: LabelStore, name: str = "faces v1") -> SimpleNamespace:
    """alice's set with bob as a member: four samples at two truncations, three labelled (one twice), one
    unlabelled; branch v1 trained from it, v2 trained elsewhere."""
    info = store.create_set(FACES.model_id, name, "alice", CLASSES, RES)
    store.add_member(info.id, "alice", "bob")
    samples = store.add_samples(info.id, "alice", [11, 12], 0.7) + store.add_samples(info.id, "alice", [13, 14], 1.0)
    store.save_mask(samples[0].id, "alice", painted(1), 0, note="first try")
    store.save_mask(samples[0].id, "bob", painted(2), 1, note="eyes fixed\nline two")
    store.save_mask(samples[1].id, "bob", painted(3), 0)
    store.save_mask(samples[2].id, "alice", painted(4), 0, note="ok")
    store.add_branch_version(FACES.model_id, "bob", weights(4), CONFIG, {"loss": [1.0, 0.5]}, info.id, 3)
    store.add_branch_version(FACES.model_id, "carol", weights(8), {}, {"note": "other"}, None, 0)
    return SimpleNamespace(info=info, samples=samples)


@pytest.fixture
def exported(store, tmp_path) -> Path:
    src = make_set(store)
    return export_label_set(store, src.info.id, tmp_path / "export", branch_versions=[1, 2])


def test_round_trip_into_a_fresh_database(store, other, exported):
    doc = json.loads((exported / "labels.json").read_text())
    assert doc["format"] == "editgan-labels/1" and doc["model_id"] == FACES.model_id and doc["resolution"] == RES
    assert sorted(p.name for p in (exported / "masks").iterdir()) == ["0.png", "1.png", "2.png"]  # latest only
    with Image.open(exported / "masks" / "0.png") as img:  # a palette PNG in the set's colours
        assert img.mode == "P" and img.getpalette()[:9] == [c for _, rgb in CLASSES for c in rgb]

    result = import_label_set(other, exported, "dave", model_id=FACES.model_id)
    new = result.label_set
    assert (new.name, new.owner, new.model_id, new.resolution) == ("faces v1", "dave", FACES.model_id, RES)
    assert [(c.name, c.color) for c in new.classes] == CLASSES and new.locked  # branch v1 came from it
    assert (result.n_samples, result.n_masks, new.n_labelled) == (4, 3, 3)
    samples = other.samples(new.id)
    assert [(s.seed, s.truncation, s.position) for s in samples] == \
        [(11, 0.7, 0), (12, 0.7, 1), (13, 1.0, 2), (14, 1.0, 3)]
    for s, seed in zip(samples[:3], (2, 3, 4)):
        info, ids = other.mask(s.id)
        assert ids.dtype == np.uint8 and np.array_equal(ids, painted(seed)) and info.author == "dave"
        assert len(other.history(s.id)) == 1
    assert samples[3].latest_version == 0
    note = other.mask(samples[0].id)[0].note
    assert note.startswith("labelled by bob at ") and note.endswith("UTC: eyes fixed\nline two")
    assert other.mask(samples[1].id)[0].note.startswith("labelled by bob at ")

    assert result.source_branch_versions == (1, 2) and result.branch_versions == (1, 2)
    for source, here in zip((1, 2), result.branch_versions):
        b_src, w_src = store.branch_version(FACES.model_id, source)
        b_new, w_new = other.branch_version(FACES.model_id, here)
        assert w_new == w_src and b_new.config == b_src.config and b_new.n_masks == b_src.n_masks
        assert b_new.created_by == "dave" and b_new.record["imported"]["version"] == source
        assert {k: v for k, v in b_new.record.items() if k != "imported"} == b_src.record
    assert other.branch_version(FACES.model_id, 1)[0].label_set_id == new.id
    assert other.branch_version(FACES.model_id, 2)[0].label_set_id is None
    assert other.branch_version(FACES.model_id, 2)[0].record["imported"]["created_by"] == "carol"


def test_history_round_trips_into_the_database_under_test(store, other, tmp_path):
    lib = VectorLibrary(other.db)
    for name in ("alice", "bob", "carol"):
        lib.ensure_user(name)
    src = make_set(other, "with history")
    folder = export_label_set(other, src.info.id, tmp_path / "h", include_history=True)
    assert sorted(p.name for p in (folder / "masks").iterdir()) == ["0-v1.png", "0.png", "1.png", "2.png"]
    assert not list((folder / "branches").iterdir())
    result = import_label_set(store, folder, "carol")
    assert result.n_masks == 4 and result.branch_versions == () and not result.label_set.locked
    first = store.samples(result.label_set.id)[0]
    history = store.history(first.id)  # newest first
    assert [h.version for h in history] == [2, 1] and {h.author for h in history} == {"carol"}
    assert history[1].note.startswith("labelled by alice at ") and history[1].note.endswith(": first try")
    assert np.array_equal(store.mask(first.id, 1)[1], painted(1))
    assert np.array_equal(store.mask(first.id, 2)[1], painted(2))


def test_name_clashes_get_a_suffix(store, exported):
    names = [import_label_set(store, exported, "carol").label_set.name for _ in range(3)]
    assert names == ["faces v1 (imported)", "faces v1 (imported 2)", "faces v1 (imported 3)"]
    long = "n" * 80
    assert lt._names(long)[1] == "n" * 69 + " (imported)" and len(lt._names(long)[5]) == 80


def test_grayscale_masks_are_accepted(store, other, exported):
    Image.fromarray(painted(9)).save(exported / "masks" / "1.png")  # mode L, values are the ids
    result = import_label_set(other, exported, "dave")
    assert np.array_equal(other.mask(other.samples(result.label_set.id)[1].id)[1], painted(9))


def test_zip_round_trip_and_damaged_zip(store, other, tmp_path, snapshot):
    src = make_set(store)
    data = lt.export_label_zip(store, src.info.id, [1])
    result = import_label_set(other, data, "dave", model_id=FACES.model_id)
    assert result.n_masks == 3 and result.branch_versions == (1,)
    assert other.branch_version(FACES.model_id, 1)[1] == store.branch_version(FACES.model_id, 1)[1]
    (tmp_path / "labels.zip").write_bytes(data)
    assert import_label_set(other, tmp_path / "labels.zip", "erin").label_set.name == "faces v1 (imported)"

    before = snapshot()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    files["branches/v1.safetensors"] = pickle.dumps(_Pickled())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("photo.png", b"not a label set")
    for bad, message in ((buf.getvalue(), "pickle"), (b"not a zip", "not a zip"),
                         (other_zip.getvalue(), "has no labels.json: it is not a label set exported by this app")):
        with pytest.raises(InvalidInput, match=message):
            import_label_set(store, bad, "carol")
    assert snapshot() == before


# ---------------------------------------------------------------------- damaged and hostile folders
def _edit(key: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        doc = json.loads((folder / "labels.json").read_text())
        key(doc)
        (folder / "labels.json").write_text(json.dumps(doc))
    return apply


def _png(folder: Path, name: str, arr: np.ndarray, mode: str = "L") -> None:
    Image.fromarray(arr).convert(mode).save(folder / "masks" / name)


def _weights(folder: Path, data: bytes) -> None:
    """Replace branch v1's weights and update the sha256, so the format check is the one that must refuse."""
    (folder / "branches" / "v1.safetensors").write_bytes(data)
    _edit(lambda d: d["branches"][0].update(sha256=hashlib.sha256(data).hexdigest()))(folder)


def _symlink(folder: Path) -> None:
    outside = folder.parent / "outside.png"
    shutil.copy(folder / "masks" / "1.png", outside)
    (folder / "masks" / "1.png").unlink()
    (folder / "masks" / "1.png").symlink_to(outside)


class _Pickled:
    def __reduce__(self):
        return (print, ("pwned",))


def _meta(folder: Path, **changes) -> None:
    path = folder / "branches" / "v1.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


DAMAGE = {
    "bad format tag": (_edit(lambda d: d.update(format="editgan-labels/2")), "format"),
    "no format tag": (_edit(lambda d: d.pop("format")), "format"),
    "labels.json not json": (lambda f: (f / "labels.json").write_bytes(b"{\x00"), "JSON"),
    "labels.json a list": (lambda f: (f / "labels.json").write_text("[]"), "JSON object"),
    "bad model id": (_edit(lambda d: d.update(model_id="../../etc")), "model"),
    "mask of the wrong size": (lambda f: _png(f, "1.png", np.zeros((8, 8), np.uint8)), "8x8"),
    "mask not square": (lambda f: _png(f, "1.png", np.zeros((RES, RES + 1), np.uint8)), "pixels"),
    "class id out of range": (lambda f: _png(f, "1.png", np.full((RES, RES), 7, np.uint8)), "class id(s) [7]"),
    "rgb mask": (lambda f: _png(f, "1.png", np.zeros((RES, RES), np.uint8), "RGB"), "RGB"),
    "mask not a png": (lambda f: (f / "masks" / "1.png").write_bytes(b"GIF89a" + bytes(40)), "PNG"),
    "jpeg named png": (lambda f: Image.new("L", (RES, RES)).save(f / "masks" / "1.png", format="JPEG"), "PNG"),
    "missing mask file": (lambda f: (f / "masks" / "2.png").unlink(), "no masks/2.png"),
    "mask path traversal": (_edit(lambda d: d["samples"][1].update(mask="../../x.png")), "not accepted"),
    "absolute mask path": (_edit(lambda d: d["samples"][1].update(mask="/etc/passwd")), "not accepted"),
    "mask listed twice": (_edit(lambda d: d["samples"][1].update(mask="masks/0.png")), "not accepted"),
    "symlinked mask": (_symlink, "link"),
    "pickle renamed to safetensors": (lambda f: _weights(f, pickle.dumps(_Pickled())), "pickle"),
    "torch zip renamed": (lambda f: _weights(f, b"PK\x03\x04" + bytes(64)), "pickle or a zip"),
    "truncated safetensors": (lambda f: _weights(f, weights()[:-4]), "damaged entry"),
    "safetensors with a gap": (lambda f: _weights(f, weights() + bytes(8)), "tile"),
    "safetensors bad dtype": (lambda f: _weights(f, weights().replace(b'"F32"', b'"X32"')), "damaged entry"),
    "weights sha mismatch": (lambda f: (f / "branches" / "v1.safetensors").write_bytes(weights(5)), "sha256"),
    "missing branch file": (lambda f: (f / "branches" / "v2.json").unlink(), "no branches/v2.json"),
    "branch path elsewhere": (_edit(lambda d: d["branches"][0].update(weights="masks/0.png")), "branches/v<N>"),
    "branch config not an object": (lambda f: _meta(f, config=[1, 2]), "config"),
    "branch config NaN": (lambda f: (f / "branches" / "v1.json").write_text(
        '{"config": {"lr": NaN}, "record": {}, "n_masks": 1, "created_by": "bob", '
        '"created_at": "2026-01-01T00:00:00+00:00"}'), "finite"),
    "hostile class in branch config": (lambda f: _meta(f, config={**CONFIG, "classes": ["<b>x</b>", "a", "b"]}),
                                       "not accepted"),
    "hostile branch creator": (lambda f: _meta(f, created_by="<script>"), "username"),
    "negative n_masks": (lambda f: _meta(f, n_masks=-1), "n_masks"),
    "duplicate sample": (_edit(lambda d: d["samples"][3].update(seed=11, truncation=0.7)), "listed twice"),
    "duplicate position": (_edit(lambda d: d["samples"][3].update(position=0)), "position"),
    "seed out of range": (_edit(lambda d: d["samples"][3].update(seed=-1)), "seed"),
    "truncation NaN": (lambda f: (f / "labels.json").write_text(
        (f / "labels.json").read_text().replace('"truncation": 1.0', '"truncation": NaN', 1)), "truncation"),
    "resolution disagrees": (_edit(lambda d: d.update(resolution=32)), "32x32"),
    "one class": (_edit(lambda d: d.update(classes=d["classes"][:1])), "2-32 classes"),
    "fewer classes than ids": (_edit(lambda d: d.update(classes=d["classes"][:2])), "class id(s) [2]"),
    "duplicate colour": (_edit(lambda d: d["classes"][2].update(color=[0, 0, 0])), "colour"),
    "hostile class name": (_edit(lambda d: d["classes"][1].update(name="<img src=x onerror=alert(1)>")),
                           "not accepted"),
    "control chars in set name": (_edit(lambda d: d.update(name="faces\x00v1")), "name"),
    "empty set name": (_edit(lambda d: d.update(name="   ")), "name"),
    "hostile author": (_edit(lambda d: d["samples"][0].update(author="bob\n<script>")), "username"),
    "control chars in note": (_edit(lambda d: d["samples"][0].update(note="a\x1b[31mred")), "note"),
    "note too long": (_edit(lambda d: d["samples"][0].update(note="x" * 501)), "note"),
    "bad time": (_edit(lambda d: d["samples"][0].update(created_at="yesterday")), "ISO 8601"),
    "too many samples": (_edit(lambda d: d.update(samples=d["samples"] * 65)), "at most 256"),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_folders_import_nothing(store, exported, snapshot, damage):
    before = snapshot()
    spoil, message = DAMAGE[damage]
    spoil(exported)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        import_label_set(store, exported, "carol")
    assert snapshot() == before


def test_wrong_or_unregistered_model_imports_nothing(store, exported, snapshot):
    before = snapshot()
    with pytest.raises(InvalidInput, match="labels model .* not " + CARS.model_id):
        import_label_set(store, exported, "carol", model_id=CARS.model_id)
    _edit(lambda d: d.update(model_id="ab" * 16))(exported)
    with pytest.raises(NotFound, match="not registered"):
        import_label_set(store, exported, "carol")
    with pytest.raises(NotFound, match="no user"):
        import_label_set(store, exported, "nobody")
    with pytest.raises(InvalidInput, match="username"):
        import_label_set(store, exported, "<script>")
    assert snapshot() == before


def test_size_limits_apply_before_reading(store, exported, snapshot, monkeypatch):
    before = snapshot()
    monkeypatch.setattr(lt, "MAX_MASK_PNG_BYTES", 40)
    with pytest.raises(InvalidInput, match="at most 40 are accepted"):
        import_label_set(store, exported, "carol")
    monkeypatch.setattr(lt, "MAX_MASK_PNG_BYTES", 1 << 20)
    monkeypatch.setattr(lt, "MAX_DECODED_MASK_BYTES", 2 * RES * RES)
    with pytest.raises(InvalidInput, match="decode to more than"):
        import_label_set(store, exported, "carol")
    assert snapshot() == before


def test_a_failure_midway_is_undone(store, exported, snapshot, monkeypatch):
    before = snapshot()
    calls = []

    def fail(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise Conflict("the database went away")
        return LabelStore.add_branch_version(store, *args, **kwargs)

    monkeypatch.setattr(store, "add_branch_version", fail)
    with pytest.raises(Conflict, match="went away"):
        import_label_set(store, exported, "carol")
    assert len(calls) == 2 and snapshot() == before  # set, samples, masks and branch v3 all deleted again


def test_export_refuses_a_used_folder_and_bad_versions(store, tmp_path):
    src = make_set(store)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(InvalidInput, match="empty folder"):
        export_label_set(store, src.info.id, tmp_path / "used")
    with pytest.raises(InvalidInput, match="twice"):
        export_label_set(store, src.info.id, tmp_path / "a", branch_versions=[1, 1])
    with pytest.raises(NotFound, match="no branch version 9"):
        export_label_set(store, src.info.id, tmp_path / "b", branch_versions=[9])


def test_label_transfer_imports_no_torch():
    code = "import sys, vector_library.label_transfer; print('torch' in sys.modules, 'gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


# ---------------------------------------------------------------------- Hub
class LocalHub:
    """A stand-in for huggingface_hub.HfApi keeping dataset repos in a folder (as test_library_transfer's):
    the three methods the library calls, with HfApi's parameter names, each call recorded."""

    def __init__(self, root: Path) -> None:
        self.root, self.calls, self.commits = root, [], 0

    def _repo(self, repo_id: str) -> Path:
        return self.root / repo_id.replace("/", "--")

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kw):
        self.calls.append(("create_repo", (repo_id,), dict(token=token, private=private, repo_type=repo_type,
                                                           exist_ok=exist_ok, **kw)))
        assert repo_type == "dataset"
        self._repo(repo_id).mkdir(parents=True, exist_ok=exist_ok)
        return f"https://hub.local/datasets/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, revision=None, commit_message=None,
                      allow_patterns=None, delete_patterns=None, **kw):
        self.calls.append(("upload_folder", (), dict(repo_id=repo_id, folder_path=folder_path, repo_type=repo_type,
                                                     revision=revision, commit_message=commit_message,
                                                     allow_patterns=allow_patterns,
                                                     delete_patterns=delete_patterns, **kw)))
        repo = self._repo(repo_id)
        for pattern in delete_patterns or []:
            for old in repo.glob(pattern):
                old.unlink()
        shutil.copytree(folder_path, repo, dirs_exist_ok=True)
        self.commits += 1
        return SimpleNamespace(oid=f"{self.commits:040x}")

    def snapshot_download(self, repo_id, *, repo_type=None, revision=None, local_dir=None, allow_patterns=None,
                          **kw):
        self.calls.append(("snapshot_download", (repo_id,), dict(repo_type=repo_type, revision=revision,
                                                                 local_dir=local_dir,
                                                                 allow_patterns=allow_patterns, **kw)))
        shutil.copytree(self._repo(repo_id), local_dir, dirs_exist_ok=True)
        return str(local_dir)


@pytest.fixture
def hub(tmp_path) -> LocalHub:
    return LocalHub(tmp_path / "hub")


def test_push_and_pull_through_the_hub_api(store, other, hub):
    src = make_set(store)
    pushed = push_label_set(store, "alice/face-labels", src.info.id, [1], api=hub, private=True)
    assert pushed.commit == f"{1:040x}" and pushed.n_masks == 3 and pushed.branch_versions == (1,)
    pulled = pull_label_set(other, "alice/face-labels", "erin", model_id=FACES.model_id, api=hub)
    assert pulled.label_set.owner == "erin" and pulled.n_masks == 3 and pulled.branch_versions == (1,)
    assert other.latest_branch(FACES.model_id)[1] == store.branch_version(FACES.model_id, 1)[1]
    # a second push replaces the label set: branch v1 goes, v2 comes; nothing stale stays in the repo
    push_label_set(store, "alice/face-labels", src.info.id, [2], api=hub)
    repo = hub._repo("alice/face-labels")
    assert sorted(p.name for p in (repo / "branches").iterdir()) == ["v2.json", "v2.safetensors"]
    again = pull_label_set(other, "alice/face-labels", "dave", api=hub)
    assert again.label_set.name == "faces v1 (imported)" and again.source_branch_versions == (2,)

    assert [c[0] for c in hub.calls] == ["create_repo", "upload_folder", "snapshot_download"] * 2
    for name, args, kwargs in hub.calls:
        inspect.signature(getattr(HfApi, name)).bind(HfApi(), *args, **kwargs)  # raises TypeError if not
        if name != "create_repo":
            assert kwargs["repo_type"] == "dataset" and kwargs["allow_patterns"] == lt.LABEL_PATTERNS


def test_pull_of_a_damaged_repo_imports_nothing(store, other, hub, snapshot):
    src = make_set(store)
    push_label_set(store, "alice/broken", src.info.id, [1], api=hub)
    before = snapshot()
    (hub._repo("alice/broken") / "branches" / "v1.safetensors").write_bytes(b"\x80\x04 pickle")
    with pytest.raises(InvalidInput):
        pull_label_set(store, "alice/broken", "carol", api=hub)
    assert snapshot() == before


@pytest.mark.parametrize("repo_id", ["", "noslash", "a/../b", "../x/y", "a/b/c", 5])
def test_bad_repo_ids_are_refused(store, hub, repo_id):
    with pytest.raises(InvalidInput, match="repo_id"):
        push_label_set(store, repo_id, 1, api=hub)
    with pytest.raises(InvalidInput, match="repo_id"):
        pull_label_set(store, repo_id, "bob", api=hub)
    assert hub.calls == []


def test_png_is_lossless_for_every_class_count():
    for n in (2, 17, 32):
        palette = [v for i in range(n) for v in (i, 255 - i, (7 * i) % 256)]
        ids = np.random.default_rng(n).integers(0, n, (33, 33), dtype=np.uint8)
        back = lt._decode_png(lt._png(ids, palette), "m.png", n, 33)
        assert back.dtype == np.uint8 and np.array_equal(back, ids)


def test_provenance_note_fits_the_store_limit():
    m = lt._Mask(np.zeros((1, 1), np.uint8), "bob", datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc), "y" * 500)
    note = lt._provenance(m)
    assert len(note) == 500 and note.startswith("labelled by bob at 2026-01-02 03:04 UTC: yyy") and note[-1] == "…"
