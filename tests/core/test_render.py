"""The torch renderer against the numpy renderer it replaced (core/data/faces_numpy.py, the reference)."""

import numpy as np
import pytest
import torch

from core.data import faces_numpy
from core.data.faces import ProceduralFaces
from core.data.palette import CLASS_NAMES, NUM_CLASSES
from core.data.render import render_batch


def _varied_params(n: int, res: int = 64):
    """Faces covering every hair style, glasses shape and mouth state (forced in turn on sampled faces)."""
    ds = ProceduralFaces(res, seed=21)
    styles, shapes = ("none", "short", "long", "bangs", "side"), ("round", "rect", "cat")
    return [ds.params(i).replace(hair_style=styles[i % 5], glasses=i % 2 == 0, glasses_shape=shapes[i % 3],
                                 mouth_open=0.05 if i % 4 < 2 else 0.0, hair_len=0.2 + 0.8 * (i % 7) / 6)
            for i in range(n)]  # fmt: skip


def test_same_parameters_give_the_numpy_renderers_pixels():
    """Same parameters and texture seed: identical masks and images within one grey level.

    The numpy code composites in float64 where a colour came from a Python tuple; the torch code works in float32.
    A pixel can differ by one level where the value sits within ~1e-6 of a rounding boundary, and a mask pixel can
    flip only where a coverage sits that close to 0.5: over 30 faces at 64 px neither exceeds these bounds.
    """
    params = _varied_params(30)
    r = render_batch(params, 64)
    img_diff, mask_diff = 0, 0
    for i, p in enumerate(params):
        ref_img, ref_mask = faces_numpy.render_face(p, 64)
        img = r.image[i].permute(1, 2, 0).numpy().astype(np.int16)
        assert np.abs(img - ref_img).max() <= 1
        img_diff += int((img != ref_img).sum())
        mask_diff += int((r.mask[i].numpy() != ref_mask).sum())
    n_pix = len(params) * 64 * 64
    assert mask_diff <= 1e-4 * n_pix, mask_diff
    assert img_diff <= 1e-3 * 3 * n_pix, img_diff


def test_a_batch_is_its_items_and_chunks_do_not_matter(monkeypatch):
    ds = ProceduralFaces(32, seed=4)
    r = ds.render(10, 6)
    for k in range(6):
        img, mask = ds[10 + k]
        assert np.array_equal(r.image[k].permute(1, 2, 0).numpy(), img) and np.array_equal(r.mask[k].numpy(), mask)
    import core.data.render as render

    monkeypatch.setattr(render, "CPU_CHUNK_PIXELS", 2 * 32 * 32)  # three chunks of two
    r2 = ds.render(10, 6)
    assert torch.equal(r.image, r2.image) and torch.equal(r.mask, r2.mask)
    x, m = ds.batch(10, 6)
    assert x.dtype == torch.float32 and m.dtype == torch.int64 and x.min() >= -1 and x.max() <= 1
    assert torch.equal(m, r.mask.long())


def test_a_host_batch_prepared_ahead_renders_as_its_parameters_do_however_often():
    ds = ProceduralFaces(32, seed=4)
    direct = render_batch([ds.params(i) for i in range(3, 8)], 32)
    hb = ds.host_batch(3, 5)
    for _ in range(2):  # the film grain's generator states are kept, not consumed
        r = render_batch(hb, 32)
        assert torch.equal(r.image, direct.image) and torch.equal(r.mask, direct.mask)
    with pytest.raises(ValueError, match="prepared at 32 px"):
        render_batch(hb, 64)


def test_device_grain_is_seeded_and_leaves_masks_unchanged():
    ds = ProceduralFaces(32, seed=2)
    exact = ds.render(0, 4)
    a = ds.render(0, 4, grain=torch.Generator().manual_seed(5))
    b = ds.render(0, 4, grain=torch.Generator().manual_seed(5))
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, exact.mask)
    diff = (a.image.float() - exact.image.float()).abs()
    assert 0 < diff.mean() < 8  # two draws of grain with std 0.015 * 255 = 3.8 levels


def _class_stats(masks: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics [N, C]: presence (0/1), area fraction, and the mean grey level of the class's pixels."""
    n = masks.shape[0]
    flat = masks.reshape(n, -1).astype(np.int64)
    grey = images.reshape(n, -1, 3).mean(-1)
    counts = np.stack([np.bincount(m, minlength=NUM_CLASSES) for m in flat])
    sums = np.stack([np.bincount(m, weights=g, minlength=NUM_CLASSES) for m, g in zip(flat, grey)])
    return {"presence": (counts > 0).astype(np.float64), "area": counts / flat.shape[1],
            "grey": np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)}  # fmt: skip


def test_class_statistics_match_the_numpy_renderer_over_2000_faces():
    """Two independent samples of 2,000 faces (different data seeds) at 32 px: the torch renderer as training uses it
    (film grain drawn by torch) and the numpy reference. For each class, the presence rate, the mean area fraction
    and the mean grey level of its pixels agree within 4 standard errors of the difference,
    sqrt(var_a / n_a + var_b / n_b) with each variance measured on its own sample: for 36 statistics a 4-sigma
    bound fails by chance with probability about 36 * 6e-5 = 0.2%, and a real change of distribution, such as a
    feature drawn 10% smaller, moves the areas by many sigmas (eyes: about 0.1 of 0.7% against a standard error
    near 0.01%)."""
    n, res = 2000, 32
    t = ProceduralFaces(res, seed=101).render(0, n, grain=torch.Generator().manual_seed(0))
    ta = _class_stats(t.mask.numpy(), t.image.permute(0, 2, 3, 1).numpy())
    ref = ProceduralFaces(res, seed=202)
    pairs = [faces_numpy.render_face(ref.params(i), res) for i in range(n)]
    na = _class_stats(np.stack([m for _, m in pairs]), np.stack([im for im, _ in pairs]))
    failures = []
    for stat in ("presence", "area", "grey"):
        for c in range(NUM_CLASSES):
            a, b = ta[stat][:, c], na[stat][:, c]
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) if min(len(a), len(b)) > 1 else 0.0
            if abs(a.mean() - b.mean()) > 4 * se + 1e-12:
                failures.append(f"{stat} {CLASS_NAMES[c]}: torch {a.mean():.5f} numpy {b.mean():.5f} se {se:.5f}")
    assert not failures, failures


@pytest.mark.gpu  # run with -m gpu on a machine with CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_what_the_cpu_draws():
    params = _varied_params(24)
    cpu = render_batch(params, 64)
    gpu = render_batch(params, 64, device="cuda")
    assert (gpu.image.cpu().short() - cpu.image.short()).abs().max() <= 1
    assert (gpu.mask.cpu() != cpu.mask).float().mean() <= 1e-4


def test_bad_input_is_refused():
    p = ProceduralFaces(64).params(0)
    with pytest.raises(ValueError, match=">= 16"):
        render_batch([p], 8)
    with pytest.raises(ValueError, match="at least one"):
        render_batch([], 64)
