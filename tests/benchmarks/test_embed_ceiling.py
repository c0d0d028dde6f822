"""The embedding-ceiling benchmark scores encoder-only and optimised reconstructions against the given truth."""

import torch

from benchmarks.embed_ceiling import embed_and_score
from core.editgan import EditGAN
from core.embed import EmbedConfig
from core.testing import make_tiny_bundle


def _oracle(images: torch.Tensor) -> torch.Tensor:
    """One-hot logits of a deterministic labelling: bins of the red channel."""
    labels = torch.bucketize(images[:, 0].contiguous(), torch.tensor([-0.2, 0.0, 0.2]))
    return torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()


def test_scores_reconstructions_against_the_truth(tmp_path):
    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    images = [torch.rand(1, 3, 16, 16) * 2 - 1 for _ in range(3)]
    with torch.no_grad():
        recon = [model.generator(model.encoder(x)).image.clamp(-1, 1) for x in images]
    truth = torch.stack([_oracle(r).argmax(1)[0] for r in recon])  # exactly what the encoder's guesses read as
    row = embed_and_score(model, _oracle, images, truth, EmbedConfig(steps=0))
    assert row["encoder_only_oracle_miou"] == 1.0 and row["oracle_miou"] == 1.0 and row["steps"] == 0
    wrong = (truth + 1) % 4  # every pixel of every image mislabelled
    row = embed_and_score(model, _oracle, images, wrong, EmbedConfig(steps=0))
    assert row["encoder_only_oracle_miou"] == 0.0 and row["oracle_miou"] == 0.0
    row = embed_and_score(model, _oracle, images, truth, EmbedConfig(steps=0), encoder_only=False)
    assert row["oracle_miou"] == 1.0 and "encoder_only_oracle_miou" not in row  # the sweep's rows: optimised only
