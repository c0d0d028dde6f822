"""Hostile input: every case is refused with a clear message or stored verbatim and safely, and
a refusal changes nothing in the library."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from core.vector_format import VectorFile
from vector_library import (
    InvalidInput,
    MetadataUpdate,
    SearchQuery,
    VectorLibrary,
    VectorMetadata,
)
from vector_library.testing import CARS, FACES

HOSTILE_BUT_VALID = [
    "'; DROP TABLE edit_vectors; --",
    "Robert'); DELETE FROM users WHERE ('1'='1",
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "../../etc/passwd",
    "C:\\Windows\\system32",
    "%s %n %x {0} ${jndi:ldap://x}",
    "Ünïcödé 笑顔 😀 עברית",
    "\u200bzero width",
    "NEAR(a b) OR \"x\"* name:y",
]


@pytest.mark.parametrize("text", HOSTILE_BUT_VALID)
def test_hostile_but_printable_text_is_stored_verbatim(library, make_vector, text):
    v = library.publish("alice", make_vector(), VectorMetadata(name=text[:120], description=text))
    got = library.get(v.id)
    assert (got.name, got.description) == (text[:120], text)
    assert library.get_vector_file(v.id).name == text[:120]
    assert library.count_vectors() == 1
    assert {t.name for t in library.list_models()} == {"tiny faces", "tiny cars"}


REFUSED_METADATA = [
    (VectorMetadata(name="x" * 1_000_000), "1000000 characters long; at most 120"),
    (VectorMetadata(name=""), "must not be empty"),
    (VectorMetadata(name="   "), "must not be empty"),
    (VectorMetadata(name="a\x00b"), "U\\+0000"),
    (VectorMetadata(name="bell\x07"), "U\\+0007"),
    (VectorMetadata(name="line\nbreak"), "U\\+000A"),
    (VectorMetadata(name="\u202egnp.exe"), "U\\+202E"),
    (VectorMetadata(name="esc\x1b[31m"), "U\\+001B"),
    (VectorMetadata(name="\ud83d"), "surrogate"),
    (VectorMetadata(name=None, description="x" * 10_001), "at most 10000"),
    (VectorMetadata(description="nul\x00"), "U\\+0000"),
    (VectorMetadata(tags=("Smile",)), "lowercase"),
    (VectorMetadata(tags=("a b",)), "tag 'a b'"),
    (VectorMetadata(tags=("<b>",)), "tag '<b>'"),
    (VectorMetadata(tags=("x" * 33,)), "1-32"),
    (VectorMetadata(tags=tuple(f"t{i}" for i in range(17))), "at most 16"),
    (VectorMetadata(tags=("a", "a")), "twice"),
    (VectorMetadata(tags="smile"), "list of strings"),
    (VectorMetadata(licence="GPL; DROP"), "licence"),
    (VectorMetadata(visibility="unlisted"), "visibility"),
    (VectorMetadata(name=123), "must be a string"),
]


@pytest.mark.parametrize("meta, words", REFUSED_METADATA)
def test_bad_metadata_is_refused_and_changes_nothing(library, publish, make_vector, snapshot, meta, words):
    publish("alice", "existing")
    before = snapshot()
    with pytest.raises(InvalidInput, match=words):
        library.publish("alice", make_vector(name="file name"), meta)
    assert snapshot() == before


def _upload_cases() -> list:
    good = VectorFile(delta=np.ones((FACES.n_latent, FACES.w_dim), np.float32), model_id=FACES.model_id,
                      edited_classes=("mouth",), name="x")
    md = good.metadata()
    nan = np.ones((FACES.n_latent, FACES.w_dim), np.float32)
    nan[1, 2] = np.nan
    return [
        (pickle.dumps({"delta": np.ones(3)}), "pickle"),
        (b"PK\x03\x04" + b"\0" * 100, "zip archive"),
        (b"\0" * 7, "too short"),
        (good.to_bytes()[:-1], "malformed"),
        (good.to_bytes()[: len(good.to_bytes()) // 2], "truncated|malformed"),
        (st_save({"delta": nan}, metadata=md), "NaN"),
        (st_save({"delta": np.ones((FACES.n_latent, FACES.w_dim), np.float64)}, metadata=md), "F32"),
        (st_save({"delta": np.ones((FACES.n_latent + 1, FACES.w_dim), np.float32)}, metadata=md), "header says"),
        (st_save({"delta": np.ones((FACES.n_latent, FACES.w_dim), np.float32)}), "no metadata"),
        ("not bytes", "expected a VectorFile or the bytes"),
    ]


@pytest.mark.parametrize("data, words", _upload_cases())
def test_bad_uploads_are_refused_and_change_nothing(library, publish, snapshot, data, words):
    publish("alice", "existing")
    before = snapshot()
    with pytest.raises(InvalidInput, match=words):
        library.publish("alice", data)
    assert snapshot() == before


def test_oversized_upload_is_refused(database, library, make_vector, snapshot):
    data = make_vector().to_bytes()
    before = snapshot()
    with pytest.raises(InvalidInput, match=f"the file is {len(data)} bytes; at most 64"):
        VectorLibrary(database, max_upload_bytes=64).publish("alice", data)
    assert snapshot() == before


def test_vector_claiming_another_model_is_refused(library, publish, make_vector, snapshot):
    v = publish("alice")
    before = snapshot()
    foreign = make_vector(spec=CARS, edited_classes=("car",))
    with pytest.raises(InvalidInput, match="belongs to model"):
        library.publish_version("alice", v.id, foreign)
    with pytest.raises(InvalidInput, match="model of its parent"):
        library.remix("bob", v.id, foreign)
    lying = make_vector(model_id=CARS.model_id)  # FACES-shaped delta claiming the cars model
    with pytest.raises(InvalidInput, match=r"shape \[4, 8\] but model 'tiny cars' takes \[6, 8\]"):
        library.publish("alice", lying)
    assert snapshot() == before


@pytest.mark.parametrize("changes, words", [
    (MetadataUpdate(name="x" * 121), "at most 120"),
    (MetadataUpdate(tags=("UPPER",)), "lowercase"),
    (MetadataUpdate(scale_min=5.0), "smaller than scale_max|must lie within"),
    (MetadataUpdate(scale_max=float("inf")), "finite"),
    (MetadataUpdate(default_scale=float("nan")), "finite"),
    (MetadataUpdate(visibility="everyone"), "visibility"),
])
def test_bad_metadata_edits_are_refused_and_change_nothing(library, publish, snapshot, changes, words):
    v = publish("alice", tags=("keep",))
    before = snapshot()
    with pytest.raises(InvalidInput, match=words):
        library.update_metadata("alice", v.id, changes)
    assert snapshot() == before
    assert library.get(v.id).tags == ("keep",)


def test_usernames_cannot_smuggle_sql_or_paths(library):
    for name in ("alice'--", "../alice", "al ice", "", "x" * 65, "<b>", "a\x00"):
        with pytest.raises(InvalidInput, match="username"):
            library.ensure_user(name)
        with pytest.raises(InvalidInput, match="username"):
            library.search(SearchQuery(), viewer=name)
