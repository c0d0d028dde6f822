"""The photo-editing benchmark edits every bundle from one latent and scores them the same way."""

import torch

import benchmarks.bench_photo_edit as bpe
from core.edit import EditConfig
from core.editgan import EditGAN
from core.embed import EmbedConfig
from core.testing import make_tiny_bundle


def test_every_bundle_is_edited_and_scored(tmp_path, monkeypatch):
    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))

    def paint(model, kind, mask):  # random tiny masks rarely fit a scripted edit: paint a square of lips instead
        target = mask.clone()
        target[4:9, 4:9] = model.class_names.index("lips")
        return target

    monkeypatch.setattr(bpe, "_target", paint)

    def oracle(images: torch.Tensor) -> torch.Tensor:
        labels = torch.bucketize(images[:, 0].contiguous(), torch.tensor([-0.2, 0.0, 0.2]))
        return torch.nn.functional.one_hot(labels, 12).permute(0, 3, 1, 2).float()

    out, pics = bpe.run(model, oracle, 2, ["open_mouth"], EmbedConfig(steps=2, tune_steps=3),
                        EditConfig(steps=2), tunings=((0.0, 0.0), (2.0, 0.5)))  # fmt: skip
    for name in ("embedded", "tuned_locality0_branch0", "tuned_locality2_branch0.5"):
        row = out[name]
        assert row["mode3"]["n"] == 2 and row["per_kind"]["open_mouth"]["n"] == 2
        assert 0 <= row["branch_mask_miou_vs_true_mask"] <= 1 and row["reconstruction_psnr_db"] > 0
        assert row["mode3"]["mean_psnr_outside_vs_photo_db"] is not None
    assert out["seconds_per_photo"]["pivotal_tuning_tuned_locality2_branch0.5"] > 0
    assert len(pics) == 2 and pics[0].shape == (32, 64, 3)  # embedded and last tuned x (photo | render | target | edit)


def test_tunings_parse_as_locality_and_branch_pairs():
    import argparse

    import pytest

    assert bpe.parse_tuning("10,0.3") == (10.0, 0.3)
    for bad in ("10", "a,b", "1,-1", "nan,1", "1,2,3"):
        with pytest.raises(argparse.ArgumentTypeError):
            bpe.parse_tuning(bad)
