"""The photo-transfer benchmark applies each vector to every bundle of every photo, in both modes, and merges."""

import json

import numpy as np
import pytest
import torch

import benchmarks.bench_photo_transfer as bpt
from core.edit import EditConfig, edit_by_mask
from core.edit_vector import vector_from_edit
from core.editgan import EditGAN
from core.embed import EmbedConfig
from core.testing import make_tiny_bundle
from core.vector_format import VectorFile


def _paint(model, kind, mask):  # random tiny masks rarely fit a scripted edit: paint a square of lips instead
    target = mask.clone()
    target[4:9, 4:9] = model.class_names.index("lips")
    return target


def _oracle(images: torch.Tensor) -> torch.Tensor:
    labels = torch.bucketize(images[:, 0].contiguous(), torch.tensor([-0.2, 0.0, 0.2]))
    return torch.nn.functional.one_hot(labels, 12).permute(0, 3, 1, 2).float()


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    monkeypatch.setattr(bpt, "_target", _paint)
    w = model.sample(0)
    r = edit_by_mask(model.generator, model.branch, w, _paint(model, "", model.segment(w)[0]), model.class_names,
                     EditConfig(steps=3))  # fmt: skip
    vec = vector_from_edit(r, model.model_id, name="lips")
    zero = VectorFile(delta=np.zeros_like(vec.delta), model_id=model.model_id, name="nothing")
    return model, vec, zero


def test_every_vector_is_applied_to_every_bundle_and_a_zero_vector_scores_as_the_no_op(tiny):
    model, vec, zero = tiny
    vecs = {"open_mouth": [(1, vec)], "smile": [(2, zero)]}
    out, pics = bpt.run(model, _oracle, 2, vecs, EmbedConfig(steps=2, tune_steps=2), EditConfig(steps=2), (2.0, 0.5),
                        refine_steps=2)  # fmt: skip
    assert list(out) == ["embedded", "tuned_locality2_branch0.5"]
    for row in out.values():
        for kind in vecs:
            m1, m2 = row["per_kind"][kind]["mode1"], row["per_kind"][kind]["mode2"]
            assert m1["n"] == m2["n"] == 2 and m1["mean_psnr_outside_vs_photo_db"] is not None
            assert row["per_kind"][kind]["per_source"][0]["n"] == 2
        # a vector that moves nothing leaves the render as it was: judged exactly as the no-op control
        z = row["per_kind"]["smile"]["mode1"]
        assert z["success_rate"] == z["noop_success_rate"] and z["mean_psnr_outside_db"] == 99.0
        assert row["overall_mode1"]["n"] == 4
    assert len(pics) == 2 and pics[0].shape == (16, 64, 3)  # per kind (16 px): photo | render | mode 1 | mode 2


def test_runs_over_different_kinds_merge_and_other_settings_do_not(tiny, tmp_path):
    model, vec, zero = tiny
    parts = []
    for i, kind in enumerate(("open_mouth", "smile")):
        rows, _ = bpt.run(model, _oracle, 1, {kind: [(i, vec)]}, EmbedConfig(steps=1, tune_steps=1),
                          EditConfig(steps=1), (2.0, 0.5), refine_steps=1)  # fmt: skip
        result = {"model_id": model.model_id, "images": 1, "embed_config": {}, "edit_config": {}, "tuning": {},
                  "refine_steps": 1, "sources_from": "edit.json", "kinds": [kind],
                  "vector_sources": {kind: [{"seed": i}]}, "bundles": list(rows), **rows, "wall_seconds": 1.0}  # fmt: skip
        parts.append(tmp_path / f"{kind}.json")
        parts[-1].write_text(json.dumps(result))
    merged = bpt.merge([str(p) for p in parts], tmp_path / "all.json")
    assert merged["kinds"] == ["open_mouth", "smile"] and set(merged["vector_sources"]) == {"open_mouth", "smile"}
    for name in merged["bundles"]:
        assert set(merged[name]["per_kind"]) == {"open_mouth", "smile"} and merged[name]["overall_mode1"]["n"] == 2
    other = json.loads(parts[1].read_text())
    other["refine_steps"] = 30
    parts[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="refine_steps"):
        bpt.merge([str(p) for p in parts], tmp_path / "bad.json")


def test_source_seeds_come_from_a_bench_edit_result_and_missing_kinds_are_named(tmp_path):
    path = tmp_path / "edit.json"
    path.write_text(json.dumps({"per_kind": {"smile": {"vector_sources": [{"source_edit": {"seed": 7}},
                                                                          {"source_edit": {"seed": 3}}]}}}))
    assert bpt.source_seeds(path, ["smile"]) == {"smile": [7, 3]}
    with pytest.raises(SystemExit, match="open_mouth"):
        bpt.source_seeds(path, ["smile", "open_mouth"])
