"""core.vector_format: the editgan-vector/1 file, its round trip and its refusals."""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from core.vector_format import FORMAT, VectorFile, VectorFormatError

MODEL = "a1" * 16


def make(**kwargs) -> VectorFile:
    rng = np.random.default_rng(0)
    fields = dict(delta=rng.standard_normal((18, 512)).astype(np.float32), model_id=MODEL,
                  edited_classes=("eye", "mouth"), default_scale=0.5, scale_min=-2.0, scale_max=2.5,
                  metrics={"loss": 0.123, "steps": 100}, name="Smile \u2713 \u7b11",
                  description="two\nlines\tand a tab",
                  preview=rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    fields.update(kwargs)
    return VectorFile(**fields)


def header_of(data: bytes) -> dict:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])


def rewrite(data: bytes, **md_changes) -> bytes:
    """The same tensors with metadata keys changed (None deletes a key), via the reference writer."""
    header = header_of(data)
    md = dict(header["__metadata__"])
    for k, v in md_changes.items():
        if v is None:
            md.pop(k, None)
        else:
            md[k] = v
    return st_save(st_load(data), metadata=md)


def test_round_trip_is_bit_exact(tmp_path):
    v = make()
    data = v.to_bytes()
    back = VectorFile.from_bytes(data)
    assert back.to_bytes() == data
    assert back.delta.dtype == np.float32 and back.delta.tobytes() == v.delta.tobytes()
    assert np.array_equal(back.preview, v.preview)
    assert (back.model_id, back.edited_classes, back.metrics, back.name, back.description) == \
        (v.model_id, v.edited_classes, v.metrics, v.name, v.description)
    assert (back.default_scale, back.scale_min, back.scale_max) == (0.5, -2.0, 2.5)
    v.save(tmp_path / "v.safetensors")
    assert VectorFile.load(tmp_path / "v.safetensors") == v


def test_round_trip_keeps_awkward_floats_exactly():
    # the largest element keeps the delta's RMS (75) under the bound on deltas (MAX_DELTA_RMS)
    delta = np.array([[np.float32(1e-45), -0.0, np.float32(150.0) + np.float32(2**-16), 0.1]], dtype=np.float32)
    v = make(delta=delta, default_scale=0.1 + 0.2, scale_min=-1e-300, scale_max=1e5 / 3, preview=None)
    back = VectorFile.from_bytes(v.to_bytes())
    assert back.delta.tobytes() == delta.tobytes()
    assert back.default_scale == 0.1 + 0.2 and back.scale_max == 1e5 / 3 and back.scale_min == -1e-300


def test_a_finite_but_huge_delta_is_refused_with_its_size_and_the_bound():
    """All 1e30 (or float32's largest value) passes a NaN/Inf check but is no edit: it renders a solid square."""
    for value in (1e30, np.finfo(np.float32).max):
        with pytest.raises(VectorFormatError, match=r"per-element RMS .* is [0-9.e+]+; at most 100 is accepted"):
            make(delta=np.full((18, 512), value, np.float32))
    make(delta=np.full((18, 512), 50.0, np.float32))  # large, under the bound: accepted


def test_file_is_standard_safetensors_readable_by_the_reference_reader():
    v = make()
    tensors = st_load(v.to_bytes())
    assert set(tensors) == {"delta", "preview"}
    md = header_of(v.to_bytes())["__metadata__"]
    assert md["format"] == FORMAT and md["latent_space"] == "w+"
    assert (md["n_latent"], md["w_dim"]) == ("18", "512")
    assert json.loads(md["edited_classes"]) == ["eye", "mouth"]


def test_reference_writer_output_is_accepted():
    v = make()
    data = st_save({"delta": np.asarray(v.delta), "preview": np.asarray(v.preview)}, metadata=v.metadata())
    assert VectorFile.from_bytes(data) == v


def test_content_hash_is_stable_across_processes():
    code = ("import numpy as np; from core.vector_format import VectorFile;"
            "v = VectorFile(delta=np.arange(24, dtype=np.float32).reshape(3, 8), model_id='ab' * 8,"
            " metrics={'b': 1, 'a': 2.5}, edited_classes=('x', 'y'), name='n', description='d');"
            "print(v.content_hash())")
    hashes = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
              for _ in range(2)}
    assert len(hashes) == 1
    v = VectorFile(delta=np.arange(24, dtype=np.float32).reshape(3, 8), model_id="ab" * 8,
                   metrics={"a": 2.5, "b": 1}, edited_classes=("x", "y"), name="n", description="d")
    assert hashes == {v.content_hash() + "\n"}
    assert make().content_hash() != make(name="other").content_hash()


def test_arrays_are_read_only_copies():
    delta = np.ones((2, 3), np.float32)
    v = VectorFile(delta=delta, model_id=MODEL)
    delta[0, 0] = 5
    assert v.delta[0, 0] == 1
    with pytest.raises(ValueError):
        v.delta[0, 0] = 2


@pytest.mark.parametrize("data, words", [
    (pickle.dumps({"delta": [1.0]}), "pickle"),
    (b"PK\x03\x04" + b"\0" * 64, "zip"),
    (b"\x93NUMPY" + b"\0" * 64, "NumPy"),
    (b"", "too short"),
    (b"\x01\x02\x03", "too short"),
    (bytes(range(256)) * 4, "not a safetensors"),
    (b"<script>alert(1)</script>" * 10, "not a safetensors"),
])
def test_non_safetensors_uploads_are_refused(data, words):
    with pytest.raises(VectorFormatError, match=words):
        VectorFile.from_bytes(data)


def test_torch_checkpoint_zip_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"x": 1}))
    with pytest.raises(VectorFormatError, match="torch.load of uploads is refused"):
        VectorFile.from_bytes(buf.getvalue())


def test_truncated_file_is_refused():
    data = make().to_bytes()
    with pytest.raises(VectorFormatError, match="truncated"):
        VectorFile.from_bytes(data[:40])
    with pytest.raises(VectorFormatError, match="malformed"):
        VectorFile.from_bytes(data[:-10])


def test_oversized_file_is_refused_before_parsing(tmp_path):
    data = make().to_bytes()
    with pytest.raises(VectorFormatError, match=f"at most {len(data) - 1} are accepted"):
        VectorFile.from_bytes(data, max_bytes=len(data) - 1)
    (tmp_path / "big.safetensors").write_bytes(data)
    with pytest.raises(VectorFormatError, match="at most 100 are accepted"):
        VectorFile.load(tmp_path / "big.safetensors", max_bytes=100)


@pytest.mark.parametrize("changes, words", [
    ({"format": None}, "format is missing"),
    ({"format": "editgan-vector/2"}, "accepted: 'editgan-vector/1'"),
    ({"model_id": None}, "missing model_id"),
    ({"model_id": "ABCDEF0123456789"}, "lowercase hex"),
    ({"model_id": "abc"}, "16-64"),
    ({"model_id": "../../etc/passwd"}, "lowercase hex"),
    ({"latent_space": "z"}, "not supported"),
    ({"n_latent": "17"}, "header says n_latent=17"),
    ({"w_dim": "0512"}, "positive decimal integer"),
    ({"n_latent": "1e3"}, "positive decimal integer"),
    ({"edited_classes": "[\"eye\""}, "not valid JSON"),
    ({"edited_classes": "{\"a\": 1}"}, "must be a JSON list"),
    ({"edited_classes": "[1, 2]"}, "must be a string"),
    ({"edited_classes": "[\"eye\", \"eye\"]"}, "twice"),
    ({"metrics": "[1]"}, "must be a JSON object"),
    ({"metrics": "{\"loss\": NaN}"}, "not valid JSON"),
    ({"metrics": "{\"loss\": \"low\"}"}, "must be a number"),
    ({"metrics": "{\"loss\": 1e999}"}, "only finite"),
    ({"default_scale": "nan"}, "finite decimal number"),
    ({"default_scale": "1_0"}, "finite decimal number"),
    ({"scale_min": "3", "scale_max": "3"}, "must be smaller than"),
    ({"default_scale": "9"}, "must lie within"),
    ({"name": "a\x00b"}, "control character U\\+0000"),
    ({"name": "x" * 1_000_000}, "1000000 characters long"),
    ({"description": "x" * 10_001}, "at most 10000"),
    ({"created_by": "me"}, "unknown metadata key"),
])
def test_bad_metadata_is_refused_with_a_reason(changes, words):
    with pytest.raises(VectorFormatError, match=words):
        VectorFile.from_bytes(rewrite(make().to_bytes(), **changes))


def test_no_metadata_is_refused():
    with pytest.raises(VectorFormatError, match="no metadata"):
        VectorFile.from_bytes(st_save({"delta": np.zeros((2, 2), np.float32)}))


@pytest.mark.parametrize("tensors, words", [
    ({"delta": np.zeros((4, 8), np.float64)}, "F32 is accepted"),
    ({"delta": np.zeros((4, 8), np.float16)}, "F32 is accepted"),
    ({"delta": np.zeros((4, 8, 1), np.float32)}, "rank 2"),
    ({"delta": np.zeros((32,), np.float32)}, "rank 2"),
    ({"preview": np.zeros((4, 4, 3), np.uint8)}, "no 'delta' tensor"),
    ({"delta": np.zeros((4, 8), np.float32), "weights": np.zeros(3, np.float32)}, "unknown tensor"),
    ({"delta": np.zeros((4, 8), np.float32), "preview": np.zeros((4, 4, 3), np.float32)}, "U8 is accepted"),
    ({"delta": np.zeros((4, 8), np.float32), "preview": np.zeros((4, 4), np.uint8)}, r"\[H, W, 3\]"),
    ({"delta": np.zeros((4, 8), np.float32), "preview": np.zeros((300, 4, 3), np.uint8)}, "1-256 pixels"),
    ({"delta": np.full((4, 8), np.nan, np.float32)}, "32 NaN or infinite"),
    ({"delta": np.array([[1, np.inf]], np.float32)}, "1 NaN or infinite"),
    ({"delta": np.zeros((4, 8), np.float32), "change": np.zeros((2, 8, 8), np.int32)}, "U8 is accepted"),
    ({"delta": np.zeros((4, 8), np.float32), "change": np.zeros((3, 8, 8), np.uint8)}, r"\[2, R, R\]"),
    ({"delta": np.zeros((4, 8), np.float32), "change": np.zeros((2, 8, 4), np.uint8)}, r"\[2, R, R\]"),
    ({"delta": np.zeros((4, 8), np.float32), "change": np.zeros((2, 8, 8), np.uint8)}, "same mask before and after"),
])
def test_bad_tensors_are_refused(tensors, words):
    md = make(delta=np.zeros((4, 8), np.float32), preview=None).metadata()
    d = tensors.get("delta")
    if d is not None and d.ndim == 2:
        md.update(n_latent=str(d.shape[0]), w_dim=str(d.shape[1]))
    with pytest.raises(VectorFormatError, match=words):
        VectorFile.from_bytes(st_save(tensors, metadata=md))


@pytest.mark.parametrize("kwargs, words", [
    ({"delta": np.zeros((4, 8), np.float64)}, "float32"),
    ({"delta": [[1.0]]}, "numpy array"),
    ({"delta": np.zeros((65, 8), np.float32)}, "out of range"),
    ({"model_id": "not-hex"}, "lowercase hex"),
    ({"scale_min": 1.0, "scale_max": 0.0}, "smaller"),
    ({"default_scale": float("nan")}, "finite"),
    ({"default_scale": True}, "must be a number"),
    ({"edited_classes": "eye"}, "list of class-name strings"),
    ({"edited_classes": ("",)}, "must not be empty"),
    ({"metrics": {"a": float("inf")}}, "finite"),
    ({"name": "bad\u202eeman"}, "U\\+202E"),
    ({"name": "two\nlines"}, "U\\+000A"),
    ({"name": "\ud800"}, "surrogate"),
    ({"latent_space": "w"}, "not supported"),
    ({"change": [[[1]]]}, "numpy array"),
    ({"change": np.ones((2, 4, 4), np.int64)}, "change \\(class ids\\) must be uint8"),
    ({"change": np.zeros((2, 2048, 2048), np.uint8)}, "1-1024 are accepted"),
])
def test_constructor_validates(kwargs, words):
    with pytest.raises(VectorFormatError, match=words):
        make(**kwargs)


def test_format_error_is_a_value_error():
    assert issubclass(VectorFormatError, ValueError)


def test_module_imports_no_sqlalchemy_or_gradio():
    code = ("import sys; import core.vector_format;"
            "print(sorted(m for m in ('sqlalchemy', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_painted_change_round_trips_and_counts_in_the_content():
    change = np.zeros((2, 16, 16), np.uint8)
    change[1, 4:8, 4:8] = 3
    v = make(change=change)
    back = VectorFile.from_bytes(v.to_bytes())
    assert back == v and np.array_equal(back.change, change) and back.change.dtype == np.uint8
    assert set(st_load(v.to_bytes())) == {"delta", "preview", "change"}
    assert v.content_hash() != make().content_hash() and make().change is None
    with pytest.raises(ValueError):
        back.change[0, 0, 0] = 1  # stored read-only, like the delta
