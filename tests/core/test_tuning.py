from dataclasses import replace

import numpy as np
import pytest
import torch

from core.editgan import EditGAN
from core.embed import EmbedConfig, embed_tensor
from core.encoder import Encoder, EncoderConfig
from core.testing import make_tiny_bundle
from core.tuning import check_tuning, layer_resolution, load_tuning, save_tuning, tunable_names, tuned_generator


@pytest.fixture
def tiny_encoder(tiny_generator):
    torch.manual_seed(0)
    e = Encoder(EncoderConfig(resolution=16, n_latent=tiny_generator.n_latent, w_dim=32, base_channels=8,
                              max_channels=16, pyramid_channels=16))  # fmt: skip
    e.w_avg.copy_(tiny_generator.w_avg)
    return e.eval()


def _photo(seed: int = 0) -> torch.Tensor:
    """A smooth image no random 16 px generator draws exactly."""
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g) * 2 - 1, size=16, mode="bilinear")


def test_layer_resolutions_follow_the_synthesis_network(tiny_generator):
    assert layer_resolution("conv1.conv.weight") == 4 and layer_resolution("to_rgb1.bias") == 4
    assert layer_resolution("convs.0.conv.weight") == 8 and layer_resolution("convs.3.activate.bias") == 16
    assert layer_resolution("to_rgbs.1.conv.weight") == 16
    assert layer_resolution("style.1.weight") is None
    names = tunable_names(tiny_generator, 16)
    assert names and all(layer_resolution(n) == 16 for n in names)
    assert not any(n.endswith("noise.weight") for n in names)
    assert set(tunable_names(tiny_generator, 8)) > set(names)
    assert tunable_names(tiny_generator, 32) == names  # a 16 px generator tunes its last layers


def test_pivotal_tuning_brings_the_reconstruction_closer_and_leaves_the_generator_alone(tiny_generator, tiny_encoder):
    g = tiny_generator
    before = {k: v.clone() for k, v in g.state_dict().items()}
    photo = _photo()
    cfg = EmbedConfig(steps=10, lr=0.05, tune_steps=30, tune_lr=5e-3, tune_min_resolution=8)
    r = embed_tensor(g, tiny_encoder, photo, cfg)
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # tuned in a functional call
    assert r.tuning is not None and set(r.tuning) == set(tunable_names(g, 8))
    assert len(r.tune_losses) == 30 and min(r.tune_losses) < r.tune_losses[0]
    assert r.psnr > r.psnr_untuned + 0.5
    with torch.no_grad():
        again = tuned_generator(g, r.tuning)(r.w_plus).image
    assert torch.allclose(again, r.image, atol=1e-5)
    untuned = embed_tensor(g, tiny_encoder, photo, EmbedConfig(steps=10, lr=0.05))
    assert untuned.tuning is None and untuned.psnr == untuned.psnr_untuned
    assert torch.equal(untuned.w_plus, r.w_plus)  # the tuning comes after the latent and does not move it


def _response_error(g, tuned, w, seeds, reach=0.25) -> float:
    """How differently the tuned generator's image moves than the original's, at neighbours of ``w``."""
    with torch.no_grad():
        errs = []
        for s in seeds:
            near = w + reach * (g.sample_w_plus(s, truncation=0.7) - w)
            errs.append(torch.nn.functional.mse_loss(tuned(near).image - tuned(w).image, g(near).image - g(w).image))
    return float(torch.stack(errs).mean())


def test_locality_keeps_the_tuned_generator_responding_like_the_original(tiny_generator, tiny_encoder):
    g, photo = tiny_generator, _photo(2)
    cfg = EmbedConfig(steps=5, lr=0.05, tune_steps=40, tune_lr=1e-2, tune_min_resolution=8, tune_locality=0.0)
    free = embed_tensor(g, tiny_encoder, photo, cfg)
    local = embed_tensor(g, tiny_encoder, photo, replace(cfg, tune_locality=100.0))
    assert torch.equal(free.w_plus, local.w_plus)
    assert local.psnr > local.psnr_untuned  # still tuned towards the photo
    held_out = range(500, 508)  # not the neighbours the tuning saw
    e_free = _response_error(g, tuned_generator(g, free.tuning), free.w_plus, held_out)
    e_local = _response_error(g, tuned_generator(g, local.tuning), local.w_plus, held_out)
    assert e_local < 0.5 * e_free
    assert len(local.tune_losses) == 40 and local.tune_losses[0] == pytest.approx(free.tune_losses[0], rel=1e-5)  # photo only


def test_the_branch_term_brings_the_branch_to_the_readers_reading_of_the_photo(tmp_path):
    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    photo = _photo(3)
    cfg = EmbedConfig(steps=2, tune_steps=30, tune_lr=1e-2, tune_min_resolution=8, tune_locality=0.0)
    with torch.no_grad():
        reading = model.reader(photo)[0].argmax(0)

    def disagreement(r) -> float:  # the branch's cross-entropy against the reader's reading, on the tuned generator
        with torch.no_grad():
            feats = model.with_tuning(r.tuning).generator.synthesis(r.w_plus).features
            return float(torch.nn.functional.cross_entropy(model.branch(feats), reading[None]))

    plain = model.embed_tensor(photo, replace(cfg, tune_w_branch=0.0))
    guided = model.embed_tensor(photo, replace(cfg, tune_w_branch=5.0))
    assert guided.tune_branch_guided and not plain.tune_branch_guided
    assert disagreement(guided) < disagreement(plain) - 0.3
    no_reader = EditGAN.load(make_tiny_bundle(tmp_path / "b", reader=False))
    assert not no_reader.embed_tensor(photo, replace(cfg, tune_w_branch=5.0)).tune_branch_guided  # nothing to follow


def test_tuning_from_the_encoder_alone_and_progress_counts_both_stages(tiny_generator, tiny_encoder):
    seen = []
    r = embed_tensor(tiny_generator, tiny_encoder, _photo(1), EmbedConfig(steps=0, tune_steps=5, tune_min_resolution=16),
                     callback=lambda step, loss: seen.append(step))  # fmt: skip
    assert r.tuning is not None and seen == list(range(5)) and r.psnr_untuned == r.psnr_encoder
    seen.clear()
    embed_tensor(tiny_generator, tiny_encoder, _photo(1), EmbedConfig(steps=3, tune_steps=4, tune_min_resolution=16),
                 callback=lambda step, loss: seen.append(step))  # fmt: skip
    assert seen == list(range(7))


def test_tune_at_a_given_latent_equals_the_tuning_inside_embed(tmp_path):
    """EditGAN.tune re-tunes a photo at an earlier embedding's latent, without the encoder or latent steps."""
    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    photo = (np.random.default_rng(3).random((20, 20, 3)) * 255).astype(np.uint8)
    cfg = EmbedConfig(steps=3, tune_steps=4, tune_min_resolution=8)
    full = model.embed(photo, cfg)
    again = model.tune(photo, full.w_plus, cfg)
    assert torch.equal(again.w_plus, full.w_plus) and again.losses == [] and len(again.tune_losses) == 4
    assert again.psnr_untuned == full.psnr_untuned and again.tune_losses == full.tune_losses
    for name, delta in full.tuning.items():
        torch.testing.assert_close(again.tuning[name], delta)
    as_tensor = model.tune(full.target, full.w_plus, cfg)
    assert as_tensor.tune_losses == full.tune_losses and as_tensor.crop is None
    model.encoder = None  # tuning alone needs no encoder (the L2 term then weighs the parts of the latent given)
    alone = model.tune(photo, full.w_plus, cfg)
    assert alone.part_weighted and alone.tune_losses[-1] < alone.tune_losses[0]
    with pytest.raises(ValueError, match="encoder"):
        model.embed(photo, cfg)
    assert again.part_weighted and full.part_weighted  # both weigh the L2 term by the encoder's guess's parts
    with pytest.raises(ValueError, match="tune_steps"):
        model.tune(photo, full.w_plus, EmbedConfig(tune_steps=0))
    with pytest.raises(ValueError, match="start must be a finite"):
        model.tune(photo, full.w_plus[:, :2], cfg)
    with pytest.raises(ValueError, match="start must be a finite"):
        model.tune(photo, torch.full_like(full.w_plus, float("nan")), cfg)
    with pytest.raises(ValueError, match="already tuned"):
        model.with_tuning(full.tuning).tune(photo, full.w_plus, cfg)


def test_a_tuned_bundle_edits_and_applies_vectors_like_the_model(tmp_path):
    from core.edit_vector import apply_vectors
    from core.vector_format import VectorFile

    model = EditGAN.load(make_tiny_bundle(tmp_path / "m"))
    photo = (np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)
    r = model.embed(photo, EmbedConfig(steps=2, tune_steps=5, tune_min_resolution=8))
    tuned = model.with_tuning(r.tuning)
    assert tuned.tuned and not model.tuned and tuned.model_id == model.model_id
    assert tuned.branch is model.branch and tuned.generator is not model.generator
    assert torch.allclose(tuned.render(r.w_plus), r.image.clamp(-1, 1), atol=1e-5)
    assert not torch.allclose(model.render(r.w_plus), tuned.render(r.w_plus))
    assert tuned.segment(r.w_plus).shape == (1, 16, 16)
    delta = np.random.default_rng(1).normal(0, 0.1, model.latent_shape).astype(np.float32)
    vec = VectorFile(delta=delta, model_id=model.model_id, edited_classes=("lips",))
    out = apply_vectors(tuned.generator, r.w_plus, [(vec, 1.0)], tuned.model_id, tuned.branch)
    assert torch.allclose(out.w_plus, r.w_plus + torch.from_numpy(delta)[None])
    with pytest.raises(ValueError, match="already tuned"):
        tuned.with_tuning(r.tuning)


def test_tuning_files_round_trip_and_refuse_what_does_not_fit(tmp_path, tiny_generator):
    tuning = {n: torch.randn_like(p) * 1e-2 for n, p in tiny_generator.named_parameters() if n in
              tunable_names(tiny_generator, 16)}  # fmt: skip
    path = save_tuning(tmp_path / "t.safetensors", tuning, "abc123", {"steps": 5})
    back = load_tuning(path, tiny_generator, "abc123")
    assert set(back) == set(tuning)
    assert all(torch.allclose(back[n], tuning[n], atol=1e-5, rtol=1e-3) for n in tuning)  # float16 on disk
    with pytest.raises(ValueError, match="tunes model abc123, not the loaded model other"):
        load_tuning(path, tiny_generator, "other")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a readable tuning file"):
        load_tuning(tmp_path / "junk.safetensors", tiny_generator, "abc123")
    name = next(iter(tuning))
    bad_cases = [
        ({**tuning, name: tuning[name].flatten()}, "has shape"),
        ({**tuning, name: tuning[name] * float("nan")}, "NaN or Inf"),
        ({"style.1.weight": torch.zeros(32, 32)}, "not a synthesis parameter"),
        ({"../../etc/passwd": torch.zeros(1)}, "not a synthesis parameter"),
        ({}, "non-empty"),
    ]
    for bad, match in bad_cases:
        with pytest.raises(ValueError, match=match):
            check_tuning(tiny_generator, bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        tuned_generator(tiny_generator, bad_cases[1][0])


@pytest.mark.parametrize("bad", [{"tune_steps": -1}, {"tune_lr": 0.0}, {"tune_w_reader": -1.0}, {"tune_locality": -1.0},
                                 {"tune_locality_reach": float("nan")}, {"tune_locality_reach": 1.5}])
def test_a_nonsensical_tuning_config_is_refused(bad):
    with pytest.raises(ValueError):
        EmbedConfig(**bad)
