"""A partial or missing model bundle: the app still builds and does what it can, says what is
missing, and never fakes a mask (the default model ships its generator before its branch/encoder)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from app.config import AppConfig
from app.handlers import Handlers
from app.identity import Identity
from app.runtime import Runtime
from app.session import EditSession
from app.testing import kept_tokens
from app.ui import build_demo
from core.editgan import CHECKPOINTS
from core.vector_format import VectorFile
from vector_library import VectorMetadata


def _runtime(model: str, tmp_path) -> Runtime:
    cfg = AppConfig(model=model, database_url=f"sqlite:///{tmp_path / 'lib.sqlite3'}", data_dir=tmp_path,
                    example_seeds=(0, 1))  # fmt: skip
    return Runtime.create(cfg, Identity("single", local_user="bob"))


def test_generator_only_bundle(generator_only_bundle, tmp_path):
    rt = _runtime(str(generator_only_bundle), tmp_path)
    caps = rt.capabilities
    assert (caps.sample, caps.segment, caps.embed) == (True, False, False)
    status = rt.status_markdown()
    assert "segmentation branch" in status and "encoder" in status and "not trained yet" in status
    build_demo(rt)  # the layout builds with the mask editor and upload disabled

    h = Handlers(rt)
    image, mask, overlay, editor, info, state = h.sample(4, EditSession(), None)
    assert image.shape == (16, 16, 3) and mask is None and overlay is None  # no fake mask
    with pytest.raises(gr.Error, match="segmentation branch"):
        next(h.edit(None, None, "optimization", 5, state, None))
    with pytest.raises(gr.Error, match="encoder"):
        h.upload("photo.png", 0, state, None)
    with pytest.raises(gr.Error, match="encoder"):
        h.tune(state, None)

    # library vectors work on a generator alone: apply (mode 1) and keep; refinement needs the branch
    vf = VectorFile(delta=np.full(rt.model.latent_shape, 0.5, np.float32), model_id=rt.model_id,
                    edited_classes=("hair",), name="brighter")  # fmt: skip
    vid = rt.library.publish("bob", vf, VectorMetadata()).id
    applied, state = h.apply(vid, 1.0, state, None)
    assert not np.array_equal(applied, image)
    with pytest.raises(gr.Error, match="segmentation branch"):
        next(h.edit(None, None, "vector + refinement", 3, state, None))
    outputs = list(h.edit(None, None, "vector", 3, state, None))
    before, after, image2, mask2, *_ = outputs[-1]
    assert np.array_equal(after, applied) and mask2 is None
    banner = h.on_load(EditSession(), None)[0]
    assert "segmentation branch" in banner


def test_no_model_still_serves_the_library(tmp_path):
    rt = _runtime(str(tmp_path / "no-such-bundle"), tmp_path)
    assert rt.model is None and not rt.capabilities.sample
    assert "No model loaded" in rt.status_markdown() and "no-such-bundle" in rt.status_markdown()
    build_demo(rt)
    h = Handlers(rt)
    gallery, rows = h.search("", "", "", "recent", None)
    assert gallery == [] and rows == []
    with pytest.raises(gr.Error, match="none is loaded"):
        h.sample(1, EditSession(), None)
    assert "No model loaded" in h.on_load(EditSession(), None)[0]


def test_shipped_default_model_loads_and_names_its_missing_parts(tmp_path):
    import json

    rt = _runtime("faces64", tmp_path)
    assert rt.model is not None and rt.capabilities.sample
    assert rt.model.model_id == json.loads((CHECKPOINTS / "faces64" / "config.json").read_text())["model_id"]
    assert rt.model.resolution == 64
    for part, present in (("segmentation branch", rt.model.branch), ("encoder", rt.model.encoder)):
        assert (part in rt.status_markdown()) == (present is None), part


def test_offline_hub_model_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rt = _runtime("hf://someone/no-such-repo/faces64", tmp_path)
    assert rt.model is None
    assert "could not fetch hf://someone/no-such-repo/faces64" in rt.status_markdown()


def test_generator_and_encoder_without_branch(tiny_bundle, tmp_path):
    """The recipe trains the encoder before the branch: photos can be uploaded and vectors applied to
    them, but there is still no mask."""
    import shutil

    from PIL import Image

    folder = tmp_path / "no-branch"
    folder.mkdir()
    for name in ("generator.safetensors", "encoder.safetensors", "config.json"):
        shutil.copy(tiny_bundle / name, folder / name)
    rt = _runtime(str(folder), tmp_path)
    assert (rt.capabilities.embed, rt.capabilities.segment) == (True, False)
    assert "segmentation branch" in rt.status_markdown() and "encoder" not in rt.status_markdown()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(photo)
    h = Handlers(rt)
    image, mask, overlay, editor, info, state = h.upload(str(photo), 1, EditSession(), None)
    assert image.shape == (16, 16, 3) and mask is None and "uploaded photo" in info
    files, pasted = h.export(state, None)
    assert Image.open(pasted).size == (24, 20)
    with pytest.raises(gr.Error, match="already tuned"):  # tuned at upload (the default)
        h.tune(state, None)
    untuned = Handlers(Runtime.create(AppConfig(model=str(folder), database_url=f"sqlite:///{tmp_path / 'l2.sqlite3'}",
                                                data_dir=tmp_path / "d2", tune_steps=0), Identity("anonymous")))  # fmt: skip
    state2 = untuned.upload(str(photo), 1, EditSession(), None)[-1]
    assert state2.tuning is None and "photo" not in state2.source and not kept_tokens(untuned.rt, "photo")
    with pytest.raises(gr.Error, match="does not tune photos"):
        untuned.tune(state2, None)
    with pytest.raises(gr.Error, match="segmentation branch"):
        next(h.edit(None, None, "optimization", 2, state, None))


def test_bundle_without_reader_says_edits_use_the_branch_alone(tmp_path):
    from core.testing import make_tiny_bundle

    rt = _runtime(str(make_tiny_bundle(tmp_path / "m", reader=False)), tmp_path)
    assert rt.model.reader is None and rt.capabilities.segment
    assert "image reader" in rt.status_markdown() and "branch alone" in rt.status_markdown()
    assert "All parts present" in _runtime(str(make_tiny_bundle(tmp_path / "m2")), tmp_path).status_markdown()


def test_a_missing_or_foreign_tuning_is_refused_readably(tiny_bundle, tmp_path, monkeypatch):
    import torch

    import app.runtime as runtime_module
    from core.tuning import tunable_names

    rt = _runtime(str(tiny_bundle), tmp_path)
    g = rt.model.generator
    tuning = {n: torch.full_like(p, 0.01) for n, p in g.named_parameters() if n in tunable_names(g, 16)}
    token = rt.store_tuning(tuning)
    assert token == rt.store_tuning(tuning)  # content-named: stored once
    monkeypatch.setattr(runtime_module, "TUNING_FILES", 2)
    extra = [rt.store_tuning({n: t * (2 + i) for n, t in tuning.items()}) for i in range(2)]
    assert sorted(kept_tokens(rt, "tuning")) == sorted(extra)  # the oldest went
    monkeypatch.setattr(runtime_module, "TUNING_FILES", 256)
    token = rt.store_tuning(tuning)
    tuned = rt.bundle(token)
    assert tuned.tuned and rt.bundle(token) is tuned and rt.bundle(None) is rt.model
    w = rt.sample(1)
    assert not np.array_equal(rt.render(w).image, rt.render(w, tuning=token).image)
    with pytest.raises(ValueError, match="no longer kept"):
        rt.bundle("0" * 20)
    with pytest.raises(ValueError, match="malformed"):
        rt.bundle("../../etc/passwd")
    other = _runtime(str(tiny_bundle), tmp_path / "elsewhere")  # a server with another library database
    with pytest.raises(ValueError, match="upload the photo again"):
        other.bundle(token)
    h = Handlers(other)
    with pytest.raises(ValueError, match="another library database"):
        h._open_params({"s": _share(other, token, w)}, None)


def _share(rt: Runtime, tuning: str, w: np.ndarray) -> str:
    from app.session import ShareStore

    return ShareStore(rt.library.states).save(rt.model_id, w, [], tuning)
