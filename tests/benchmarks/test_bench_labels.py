"""The few-shot labels benchmark runs end to end on a tiny random bundle (16 px; the 64 px oracle reads it
resampled)."""

import json

import torch

from benchmarks.bench_labels import labels_from_oracle, main
from benchmarks.oracle import load_oracle
from core.editgan import EditGAN
from core.testing import make_tiny_bundle


def test_labels_from_oracle_are_one_sample_per_seed(tmp_path):
    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    w, masks = labels_from_oracle(model, [5, 6, 7], 0.7, load_oracle(64))
    assert w.shape == (3, *model.latent_shape) and masks.shape == (3, 16, 16) and masks.dtype == torch.int64
    assert torch.equal(w[1:2], model.sample(6, 0.7))
    assert 0 <= masks.min() and masks.max() < len(model.class_names)


def test_quick_run_writes_every_n_and_the_shipped_branch(tmp_path):
    folder = make_tiny_bundle(tmp_path / "m")
    out = tmp_path / "labels.json"
    main(["--model", str(folder), "--quick", "--n", "2", "3", "--eval-truncation", "1.0", "--out", str(out)])
    result = json.loads(out.read_text())
    assert "oracle" in result["label_source"] and result["quick"] and result["eval_samples"] == 8
    assert set(result["per_n"]) == {"2", "3"}
    for row in [*result["per_n"].values(), result["shipped_branch"]]:
        assert 0.0 <= row["truncation_1.0"]["miou_vs_oracle"] <= 1.0
    row = result["per_n"]["3"]
    assert row["n_masks"] == 3 and row["peak_rss_during_training_mb"] >= row["rss_before_mb"] > 0
    assert row["train_wall_s"] >= 0 and result["config"]["steps"] == 20


def test_labels_go_through_the_label_store_unchanged(tmp_path):
    """The benchmark's labels are saved and read back as a user's saves are (LabelStore), bit for bit."""
    from benchmarks.bench_labels import through_label_store

    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    w, masks = labels_from_oracle(model, [9, 4, 7], 0.7, load_oracle(64))
    back = through_label_store(model, [9, 4, 7], 0.7, masks, model.class_names)
    assert back.dtype == torch.int64 and torch.equal(back, masks)
