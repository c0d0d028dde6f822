"""The edit judge fails a no-op and a random latent step, and passes an edit the oracle sees made."""

from pathlib import Path

import pytest
import torch

from benchmarks.bench_edit import _cases, random_step
from benchmarks.edit_judge import CHANGED_OK, KEPT_OK, PSNR_OK, judge, judge_masks, removed_classes
from core.edit import EditConfig, edit_by_mask
from core.mask_edits import SCRIPTED_EDITS

ROOT = Path(__file__).resolve().parents[2]
SKIN, HAIR, EYE, NOSE, GLASSES = 1, 3, 4, 8, 11


def _face():
    """A 16 px mask: skin with a 6 x 4 nose; the painted target shrinks the nose to 2 x 2; region around it."""
    before = torch.full((16, 16), SKIN)
    before[5:11, 6:10] = NOSE
    target = before.clone()
    target[before == NOSE] = SKIN
    target[7:9, 7:9] = NOSE
    roi = torch.zeros(16, 16, dtype=torch.bool)
    roi[3:13, 4:12] = True
    return before, target, roi


def test_a_no_op_fails_with_no_changed_pixel_right():
    before, target, roi = _face()
    v = judge_masks(before, before, before, target, roi, psnr_outside=float("inf"))
    assert v.changed_accuracy == 0.0 and v.kept_agreement == 1.0 and not v.success
    small = before.clone()
    small[10, 6:10] = SKIN  # a one-row change in a large region: the old judge (region mIoU >= 0.7) passed its no-op
    v = judge_masks(before, before, before, small, torch.ones(16, 16, dtype=torch.bool), float("inf"))
    assert v.oracle_iou >= 0.7 and v.changed_accuracy == 0.0 and not v.success


def test_an_edit_read_as_painted_passes_and_each_bar_can_fail_it():
    before, target, roi = _face()
    assert judge_masks(target, before, before, target, roi, PSNR_OK).success
    half = target.clone()
    half[5:9, 6:10] = NOSE  # the top rows of the changed pixels still read as nose (12 of 20)
    v = judge_masks(half, before, before, target, roi, float("inf"))
    assert v.changed_accuracy < CHANGED_OK and not v.success
    repainted = target.clone()
    repainted[3:5, 4:12] = HAIR  # the change made, and the region's unchanged rows above it repainted
    v = judge_masks(repainted, before, before, target, roi, float("inf"))
    assert v.changed_accuracy == 1.0 and v.kept_agreement < KEPT_OK and not v.success
    assert not judge_masks(target, before, before, target, roi, PSNR_OK - 0.1).success


def test_pixels_the_oracle_already_read_as_painted_are_not_counted_as_changed():
    before, target, roi = _face()
    read_before = target.clone()  # the oracle saw the small nose already: nothing left to change
    v = judge_masks(read_before, read_before, before, target, roi, float("inf"))
    assert v.changed_pixels == 0 and not v.success
    read_before[5, 6:10] = NOSE  # one row it did not: only that row counts
    v = judge_masks(target, read_before, before, target, roi, float("inf"))
    assert v.changed_pixels == 4 and v.changed_accuracy == 1.0 and v.success
    with pytest.raises(ValueError):
        judge_masks(before, before, before, before, roi, float("inf"))


def _glasses():
    """Skin with a glasses bar the branch drew (rows 7-8, cols 4-11); the oracle reads the bar a row thicker
    (row 9 too); the paint takes the glasses off the mask entirely (skin where they were)."""
    before = torch.full((16, 16), SKIN)
    before[7:9, 4:12] = GLASSES
    read_before = before.clone()
    read_before[9, 4:12] = GLASSES  # glasses the branch missed
    target = before.clone()
    target[before == GLASSES] = SKIN
    roi = torch.zeros(16, 16, dtype=torch.bool)
    roi[6:11, 3:13] = True
    return before, read_before, target, roi


def test_a_class_painted_off_the_mask_entirely_must_be_gone_where_the_oracle_saw_it():
    before, read_before, target, roi = _glasses()
    removed = read_before.clone()
    removed[read_before == GLASSES] = SKIN  # the edit took off all the glasses, the missed row too
    v = judge_masks(removed, read_before, before, target, roi, float("inf"))
    assert v.success and v.changed_pixels == 24 and v.removed_pixels == 8 and v.changed_accuracy == 1.0
    # counting only the painted pixels, the missed row turning to skin broke the kept bar (its old verdict)
    assert v.success_painted_only is False
    literal = removed.clone()
    literal[9, 4:12] = GLASSES  # only the painted glasses went: the missed row still reads as glasses
    v = judge_masks(literal, read_before, before, target, roi, float("inf"))
    assert v.changed_accuracy == pytest.approx(16 / 24, abs=1e-4) and v.success  # two thirds gone: above the changed bar
    literal[8, 4:12] = GLASSES  # half of the glasses left
    assert not judge_masks(literal, read_before, before, target, roi, float("inf")).success
    noop = judge_masks(read_before, read_before, before, target, roi, float("inf"))
    assert noop.changed_accuracy == 0.0 and not noop.success and noop.success_painted_only is False
    outside = read_before.clone()
    outside[12:14, 0:2] = GLASSES  # the oracle's glasses outside the region are the PSNR bar's business
    assert judge_masks(removed, outside, before, target, roi, float("inf")).removed_pixels == 8


def test_a_class_covered_by_one_the_paint_brings_in_is_occluded_not_removed():
    eyes = torch.full((16, 16), SKIN)
    eyes[7:9, 4:7] = EYE
    glasses_on = eyes.clone()
    glasses_on[6:10, 3:8] = GLASSES  # the frames cover the whole eye: it leaves the mask
    assert removed_classes(eyes, glasses_on) == []
    read_before = eyes.clone()
    read_before[9, 4:7] = EYE  # the oracle's eye is a row taller, below the frames
    read_after = glasses_on.clone()
    read_after[10, 4:7] = EYE  # the glasses on and the eye's lower edge kept
    roi = torch.zeros(16, 16, dtype=torch.bool)
    roi[5:12, 2:9] = True
    v = judge_masks(read_after, read_before, eyes, glasses_on, roi, float("inf"))
    assert v.removed_pixels == 0 and v.success == v.success_painted_only
    off = glasses_on.clone()
    off[off == GLASSES] = SKIN  # taking glasses off: skin, which the mask had, where they were
    assert removed_classes(glasses_on, off) == [GLASSES]


def test_a_paint_that_keeps_every_class_is_judged_on_its_painted_pixels_only():
    before, target, roi = _face()  # the nose shrinks but stays
    read_before = before.clone()
    read_before[4, 6:10] = NOSE  # the oracle's nose is a row longer: it is not asked to change
    v = judge_masks(target, read_before, before, target, roi, float("inf"))
    assert v.removed_pixels == 0 and v.success_painted_only == v.success


def test_the_kept_pixels_colour_is_reported_not_judged():
    """psnr_kept: inside the region, away from the change, the colour of what the paint kept (a recoloured hair the
    oracle still reads as hair); it does not decide success."""
    before, target, roi = _face()
    roi[1:15, 1:15] = True  # room beyond the band around the changed ring
    img = torch.rand(1, 3, 16, 16) * 2 - 1

    def oracle(x):  # reads every image as the painted target
        return torch.nn.functional.one_hot(target, 12).permute(2, 0, 1)[None].float().repeat(len(x), 1, 1, 1)

    same = judge(oracle, img, img, before, target, roi)
    assert same["psnr_kept"] == float("inf")
    recoloured = img.clone()
    recoloured[:, :, 1:3, 1:15] += 0.5  # two rows far from the nose, inside the region
    v = judge(oracle, recoloured, img, before, target, roi)
    assert v["psnr_kept"] < 30 and v["psnr_outside"] == float("inf")
    assert v["success"] == same["success"]  # reported only
    tight = torch.zeros(16, 16, dtype=torch.bool)
    tight[5:11, 6:10] = True  # the region is the change and its band: no kept pixel
    assert judge(oracle, img, img, before, target, tight)["psnr_kept"] is None


@pytest.fixture(scope="module")
def faces64():
    from benchmarks.oracle import load_oracle
    from core.editgan import EditGAN

    torch.set_num_threads(2)
    return EditGAN.load(ROOT / "checkpoints" / "faces64", require=("branch",)), load_oracle(64)


@pytest.mark.parametrize("kind", sorted(SCRIPTED_EDITS))
def test_no_op_and_a_random_step_of_the_edits_norm_fail_on_faces64(faces64, kind):
    """On the default model and the real oracle: a benchmark face of each kind, left alone and moved by random
    latent steps as long as a (20-step) mask edit's step, fails the judge. (A short edit whose loss never fell
    below its start keeps the latent; the next face is taken then.)"""
    model, oracle = faces64
    for seed, w, mask, target in _cases(model, kind, 3, 1000, 0.7):
        r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, EditConfig(steps=20),
                         model.perceptual, model.encoder, reader=model.reader)  # fmt: skip
        if r.delta.norm() > 0:
            break
    assert r.delta.norm() > 0
    orig = model.render(w)
    noop = judge(oracle, orig, orig, mask, target, r.roi)
    assert noop["changed_accuracy"] == 0.0 and not noop["success"]
    for k in range(3):
        moved = model.render(random_step(w, r.delta, seed + k))
        assert not judge(oracle, moved, orig, mask, target, r.roi)["success"]
