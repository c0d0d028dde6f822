"""The joint-model benchmark must compare the branch and the oracle on the same images."""

import torch

from benchmarks.bench_joint import branch_and_oracle_masks, miou
from core.generator import Generator, GeneratorConfig

TINY = GeneratorConfig(resolution=16, style_dim=32, n_mlp=2, channel_base=256, channel_max=32, channel_multiplier=1)


def _labels(images: torch.Tensor) -> torch.Tensor:
    """A deterministic 'segmentation' of an image: bins of its red channel."""
    return torch.bucketize(images[:, 0].contiguous(), torch.tensor([-0.2, 0.0, 0.2]))


class _Model:
    """Stands in for EditGAN: its 'branch' is exactly the oracle applied to its own render."""

    def __init__(self, g: Generator):
        self.generator = g

    def render(self, w: torch.Tensor) -> torch.Tensor:
        return self.generator(w).image.clamp(-1, 1)

    def segment(self, w: torch.Tensor) -> torch.Tensor:
        return _labels(self.render(w))


def test_branch_and_oracle_read_the_same_samples():
    torch.manual_seed(0)
    g = Generator(TINY).eval()
    g.compute_w_avg(64)

    def oracle(images: torch.Tensor) -> torch.Tensor:  # one-hot logits of the same labelling
        return torch.nn.functional.one_hot(_labels(images), 4).permute(0, 3, 1, 2).float()

    with torch.no_grad():
        imgs, branch, oracle_masks = branch_and_oracle_masks(_Model(g), oracle, n=60, truncation=1.0, batch=25)
    assert imgs.shape == (60, 3, 16, 16) and branch.shape == oracle_masks.shape == (60, 16, 16)
    # a branch identical to the oracle scores 1 only if every pair is the same image
    assert miou(branch, oracle_masks)[0] == 1.0
    assert not torch.equal(branch[:25], branch[25:50])  # and the samples differ from batch to batch


def test_a_retrain_repeats_the_recorded_recipe():
    from benchmarks.bench_joint import recipe_args
    from core.train.branch import BranchTrainConfig

    args = recipe_args(BranchTrainConfig(min_map_resolution=32, hidden=(8, 4)).to_dict())
    assert args[args.index("--min-map-resolution") + 1] == "32"
    assert args[args.index("--hidden") + 1] == "8,4"
    assert "--layers" not in args  # None is left to the trainer's default


def test_embedding_rows_share_one_latent_and_tuning_adds_a_row(tmp_path):
    from benchmarks.bench_joint import embedding_quality
    from core.editgan import EditGAN
    from core.testing import make_tiny_bundle

    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))

    def oracle(images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(_labels(images), 12).permute(0, 3, 1, 2).float()

    out, pics = embedding_quality(model, oracle, n=2, steps=3, tune_steps=4)
    assert {"encoder", "optimised", "pivotal_tuning"} <= set(out) and out["tuning"]["tune_steps"] == 4
    assert out["pivotal_tuning"]["seconds_per_image"] > out["optimised"]["seconds_per_image"]
    assert len(pics) == 2 and pics[0].shape == (3, 16, 4 * 16)  # photo | encoder | optimised | tuned
    plain, plain_pics = embedding_quality(model, oracle, n=2, steps=3, tune_steps=0)
    assert "pivotal_tuning" not in plain and plain_pics[0].shape == (3, 16, 3 * 16)
    assert plain["optimised"]["psnr_mean_db"] == out["optimised"]["psnr_mean_db"]  # the tuning does not move the latent
