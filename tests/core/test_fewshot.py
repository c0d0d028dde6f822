"""The few-shot branch trainer (core.train.fewshot) on a tiny random, non-face generator with 3 classes."""

import dataclasses
import io
import pickle

import pytest
import torch

from core.branch import SegmentationBranch
from core.generator import Generator
from core.train.fewshot import (
    FewShotConfig,
    TrainingStopped,
    branch_from_bytes,
    branch_weights_bytes,
    reader_from_bytes,
    reader_weights_bytes,
    train_branch_from_labels,
)

CLASSES = ("dark", "mid", "bright")
FAST = FewShotConfig(steps=60, ensemble=2, hidden=(32,), pixels_per_image=128, lr=3e-3)


def brightness_masks(generator: Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """3 classes by the brightness of the generated image (thresholds at its tertiles over the set): learnable."""
    with torch.no_grad():
        lum = generator(w_plus).image.mean(1)  # [N, R, R]
    lo, hi = torch.quantile(lum.flatten(), torch.tensor([1 / 3, 2 / 3]))
    return (lum > lo).long() + (lum > hi).long()


@pytest.fixture
def labels(tiny_generator):
    w = tiny_generator.sample_w_plus(3, 6, 0.7)
    return w, brightness_masks(tiny_generator, w)


def test_training_learns_the_masks(tiny_generator, labels):
    w, masks = labels
    fractions = []
    r = train_branch_from_labels(tiny_generator, w, masks, CLASSES, FAST,
                                 progress=lambda f, text: fractions.append((f, text)), model_id="abc")  # fmt: skip
    rec = r.record
    assert rec["final_loss"] < 0.7 * rec["first_loss"]
    assert rec["train_pixel_accuracy"] > 0.75 and rec["train_miou"] > 0.55  # chance: 1/3 and ~0.2
    assert rec["steps_done"] == FAST.steps and rec["n_masks"] == 6 and rec["class_names"] == list(CLASSES)
    assert rec["generator_model_id"] == "abc" and rec["peak_rss_mb"] > 0 and rec["wall_s"] >= 0
    assert r.branch_config.num_classes == 3 and r.branch_config.resolution == 16 and r.reader is None
    assert r.branch_config.layers == (2, 3, 4, 5)  # the 8 and 16 px maps: min_map_resolution capped at half of 16
    assert FewShotConfig.from_dict(rec["config"]) == FAST
    # progress: increasing fractions in [0, 1], the last exactly 1
    fr = [f for f, _ in fractions]
    assert fr == sorted(fr) and len(set(fr)) == len(fr) and 0 <= fr[0] and fr[-1] == 1.0
    assert any("branch step" in t for _, t in fractions)
    # the branch reads held-out samples of the same generator better than chance too
    w2 = tiny_generator.sample_w_plus(99, 4, 0.7)
    lum = tiny_generator(w2).image.mean(1)
    lo, hi = torch.quantile(tiny_generator(w).image.mean(1).flatten(), torch.tensor([1 / 3, 2 / 3]))
    truth = (lum > lo).long() + (lum > hi).long()
    pred = r.branch(tiny_generator.synthesis(w2).features).argmax(1)
    assert (pred == truth).float().mean() > 0.6


def test_training_is_deterministic_and_leaves_the_generator_alone(tiny_generator, labels):
    w, masks = labels
    cfg = dataclasses.replace(FAST, steps=15)
    before = {k: v.clone() for k, v in tiny_generator.state_dict().items()}
    tiny_generator.requires_grad_(True)  # as a caller might have it
    a = train_branch_from_labels(tiny_generator, w, masks, CLASSES, cfg)
    assert all(p.requires_grad and p.grad is None for p in tiny_generator.parameters())
    assert all(torch.equal(v, before[k]) for k, v in tiny_generator.state_dict().items())
    torch.manual_seed(1234)  # the global random state plays no part
    torch.rand(7)
    b = train_branch_from_labels(tiny_generator, w, masks, CLASSES, cfg)
    assert branch_weights_bytes(a) == branch_weights_bytes(b)
    c = train_branch_from_labels(tiny_generator, w, masks, CLASSES, dataclasses.replace(cfg, seed=1))
    assert branch_weights_bytes(a) != branch_weights_bytes(c)


def test_should_stop_stops_promptly(tiny_generator, labels):
    w, masks = labels
    polls = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(TrainingStopped):
        train_branch_from_labels(tiny_generator, w, masks, CLASSES, FAST, should_stop=stop)
    assert len(polls) == 4  # polled every step, stopped on the first True
    polls.clear()  # also during the U-Nets' training
    with pytest.raises(TrainingStopped):
        train_branch_from_labels(tiny_generator, w, masks, CLASSES, dataclasses.replace(FAST, train_reader=True),
                                 should_stop=stop)  # fmt: skip
    assert len(polls) == 4


@pytest.mark.parametrize(
    "case, match",
    [
        ("one mask", "at least 2"),
        ("mask shape", "masks must be"),
        ("class id high", "outside"),
        ("class id negative", "outside"),
        ("float masks", "integer"),
        ("latent shape", "w_plus must be"),
        ("nan latent", "finite"),
        ("one class", "class names"),
        ("too many classes", "class names"),
        ("duplicate classes", "distinct"),
    ],
)
def test_bad_input_raises_before_training(tiny_generator, labels, case, match):
    w, masks = labels
    names = CLASSES
    if case == "one mask":
        w, masks = w[:1], masks[:1]
    elif case == "mask shape":
        masks = masks[:, :8, :8]
    elif case == "class id high":
        masks = masks.clone()
        masks[0, 0, 0] = 3
    elif case == "class id negative":
        masks = masks.clone()
        masks[1, 2, 3] = -1
    elif case == "float masks":
        masks = masks.float()
    elif case == "latent shape":
        w = w[:, :3]
    elif case == "nan latent":
        w = w.clone()
        w[0, 0, 0] = float("nan")
    elif case == "one class":
        names, masks = ("all",), torch.zeros_like(masks)
    elif case == "too many classes":
        names = tuple(f"c{i}" for i in range(33))
    elif case == "duplicate classes":
        names = ("a", "a", "b")
    called = []
    with pytest.raises(ValueError, match=match):
        train_branch_from_labels(tiny_generator, w, masks, names, FAST, progress=lambda f, t: called.append(f))
    assert not called  # nothing trained


def test_bad_config_raises():
    with pytest.raises(ValueError, match="steps"):
        FewShotConfig(steps=0)
    with pytest.raises(ValueError, match="unknown"):
        FewShotConfig.from_dict({"stepz": 3})


def test_weights_bytes_round_trip_and_refusals(tiny_generator, labels):
    w, masks = labels
    r = train_branch_from_labels(tiny_generator, w, masks, CLASSES, dataclasses.replace(FAST, steps=5))
    data = branch_weights_bytes(r)
    cfg = r.branch_config.to_dict()
    branch = branch_from_bytes(data, cfg)
    assert isinstance(branch, SegmentationBranch) and not branch.training
    assert branch_weights_bytes(dataclasses.replace(r, branch=branch)) == data  # bit-identical
    feats = tiny_generator.synthesis(w[:2]).features
    with torch.no_grad():
        torch.testing.assert_close(branch(feats), r.branch.half().float()(feats), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="shape"):  # weights of another class count
        branch_from_bytes(data, {**cfg, "num_classes": 4})
    with pytest.raises(ValueError, match="missing keys"):  # another ensemble
        branch_from_bytes(data, {**cfg, "ensemble": 3})
    buf = io.BytesIO()
    torch.save(r.branch.state_dict(), buf)
    for evil in (buf.getvalue(), pickle.dumps({"x": 1}), b"", b"not safetensors"):
        with pytest.raises(ValueError, match="safetensors"):
            branch_from_bytes(evil, cfg)
    with pytest.raises(ValueError, match="no image reader"):
        reader_weights_bytes(r)


def test_reader_and_teachers(tiny_generator, labels):
    w, masks = labels
    cfg = dataclasses.replace(FAST, steps=10, unet_members=1, unet_steps=10, unet_width=4, teacher_samples=4,
                              train_reader=True)  # fmt: skip
    r = train_branch_from_labels(tiny_generator, w, masks, CLASSES, cfg)
    assert r.reader is not None and r.reader_config.members == 1 and r.reader_config.unet.num_classes == 3
    assert r.record["unet_steps_done"] == 10 and r.record["teacher_samples"] == 4
    data = reader_weights_bytes(r)
    reader = reader_from_bytes(data, r.reader_config.to_dict())
    assert reader_weights_bytes(dataclasses.replace(r, reader=reader)) == data
    with pytest.raises(ValueError):
        reader_from_bytes(data, {**r.reader_config.to_dict(), "members": 2})
