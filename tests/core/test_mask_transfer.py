import pytest
import torch

from core.edit import region_of_interest
from core.mask_transfer import describe_change, scale_change, transfer_change

NAMES = ("background", "skin", "hair", "left_eye", "right_eye", "lips", "teeth", "glasses")
ID = {n: i for i, n in enumerate(NAMES)}
R = 48


def _ellipse(cy, cx, hy, hx):
    y, x = torch.meshgrid(torch.arange(R).float(), torch.arange(R).float(), indexing="ij")
    return ((y - cy) / hy) ** 2 + ((x - cx) / hx) ** 2 <= 1


def _face(mouth=(34, 24, 3, 6), eyes=((18, 16), (18, 32)), eye_size=(2, 3), hair_rows=6):
    m = torch.full((R, R), ID["skin"], dtype=torch.long)
    m[:hair_rows] = ID["hair"]
    for (cy, cx), name in zip(eyes, ("left_eye", "right_eye")):
        m[_ellipse(cy, cx, *eye_size)] = ID[name]
    m[_ellipse(*mouth)] = ID["lips"]
    return m


def _change(before, after):
    roi, _ = region_of_interest(before, after, NAMES, dilation=2)
    return describe_change(before, after, roi, NAMES)


def _centroid(mask):
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.stack([ys.float().mean(), xs.float().mean()])


def test_an_opened_mouth_lands_on_the_other_faces_mouth_in_proportion():
    src = _face()
    painted = src.clone()
    painted[_ellipse(34, 24, 1.5, 4)] = ID["teeth"]
    change = _change(src, painted)
    assert change.anchor_ids == (ID["lips"],)
    other = _face(mouth=(30, 20, 4.5, 9))  # the mouth elsewhere and 1.5x larger
    target, roi, free = transfer_change(change, other)
    teeth = target == ID["teeth"]
    assert torch.allclose(_centroid(teeth), torch.tensor([30.0, 20.0]), atol=0.6)
    ratio = teeth.sum() / (painted == ID["teeth"]).sum()
    assert 1.8 < ratio < 2.7  # 1.5 ** 2 = 2.25, up to the rounding of small shapes
    assert roi.any() and roi[_ellipse(30, 20, 4.5, 9)].float().mean() > 0.9
    assert torch.equal(target[~roi], other[~roi])  # nothing outside the carried region changes
    assert free[roi].all() and free[other == ID["lips"]].all()
    assert not free[:10].any()  # the hair and the eyes are not the change's to touch


def _glasses_change():
    """Glasses painted over the eyes of the default face."""
    src = _face()
    painted = src.clone()
    for cx in (16, 32):
        painted[_ellipse(18, cx, 4, 5)] = ID["glasses"]
    return _change(src, painted)


def test_glasses_are_carried_on_the_eyes_they_cover():
    change = _glasses_change()
    assert set(change.anchor_ids) == {ID["left_eye"], ID["right_eye"]}  # glasses are new: aligned on what they cover
    other = _face(eyes=((22, 14), (22, 34)))  # eyes lower and further apart
    target, roi, _ = transfer_change(change, other)
    glasses = target == ID["glasses"]
    assert torch.allclose(_centroid(glasses), torch.tensor([22.0, 24.0]), atol=0.6)
    for cx in (14, 34):
        assert glasses[22, cx]  # a lens over each eye
    assert (target[~roi] == other[~roi]).all()


def test_each_lens_follows_its_own_eye_when_the_eyes_differ():
    change = _glasses_change()
    other = _face(eyes=((20, 12), (16, 36)))  # eyes at different heights, further apart
    other[_ellipse(16, 36, 2, 3)] = ID["skin"]
    other[_ellipse(16, 36, 4, 6)] = ID["right_eye"]  # and the right one twice the size
    glasses = transfer_change(change, other)[0] == ID["glasses"]
    left, right = glasses[:, :24], glasses[:, 24:]
    assert torch.allclose(_centroid(left), torch.tensor([20.0, 12.0]), atol=0.6)
    assert torch.allclose(_centroid(right), torch.tensor([16.0, 12.0]), atol=0.6)  # 36 - 24
    assert 3.0 < right.sum() / left.sum() < 5.0  # each lens sized to its eye: 2 ** 2 = 4
    # one frame for the whole anchor would centre both lenses on the pair and give them one size
    lone = other.clone()
    lone[lone == ID["left_eye"]] = ID["skin"]  # one piece against the source's two: the whole-anchor frame
    assert (transfer_change(change, lone)[0] == ID["glasses"]).any()


def test_only_pixels_near_the_painted_change_take_the_sources_classes():
    src = _face(hair_rows=8)
    painted = src.clone()
    painted[6:8, :20] = ID["skin"]  # trim the hair on the left
    change = _change(src, painted)
    other = _face(hair_rows=10)
    other[9, 30:] = ID["skin"]  # a hair line of its own on the right
    target, roi, _ = transfer_change(change, other)
    assert roi[9, 30:].any()  # the whole hair is in the region (hair is an edited part) ...
    assert torch.equal(target[:, 30:], other[:, 30:])  # ... but the right side, far from the cut, keeps its own line
    assert (target[:, :15] == ID["hair"]).sum() < (other[:, :15] == ID["hair"]).sum()  # the left is trimmed


def test_a_face_without_the_anchor_parts_gets_nothing_and_an_empty_change_is_refused():
    src = _face()
    painted = src.clone()
    painted[_ellipse(34, 24, 1.5, 4)] = ID["teeth"]
    change = _change(src, painted)
    no_mouth = _face()
    no_mouth[no_mouth == ID["lips"]] = ID["skin"]
    assert transfer_change(change, no_mouth) is None
    with pytest.raises(ValueError, match="empty"):
        describe_change(src, src, torch.zeros(R, R, dtype=torch.bool), NAMES)


def test_a_change_scales_from_nothing_through_half_to_more_than_painted():
    before = _face(mouth=(30, 24, 3, 8))
    after = before.clone()
    after[_ellipse(30, 24, 5, 8)] = ID["lips"]  # the mouth opened: taller lips, teeth inside
    after[_ellipse(30, 24, 3, 6)] = ID["teeth"]
    within = _ellipse(30, 24, 8, 11)
    assert torch.equal(scale_change(before, after, 0.0, within), before)
    assert torch.equal(scale_change(before, after, 1.0, within), after)
    teeth = [int((scale_change(before, after, a, within) == ID["teeth"]).sum()) for a in (0.25, 0.5, 0.75, 1.0, 1.5)]
    assert 0 < teeth[1] < teeth[3] and teeth == sorted(teeth) and teeth[4] > teeth[3]
    half = scale_change(before, after, 0.5, within)
    assert int((before != after).sum()) * 0.2 < int((half != before).sum()) < int((before != after).sum())
    assert torch.equal(scale_change(before, after, 1.5, within)[~within], before[~within])  # only inside the region
    trimmed = before.clone()
    trimmed[2:6] = ID["skin"]  # a part that shrinks: the hair's lower rows go, half of them at 0.5
    cut = (scale_change(before, trimmed, 0.5, torch.ones(R, R, dtype=torch.bool)) == ID["hair"]).sum()
    assert (trimmed == ID["hair"]).sum() < cut < (before == ID["hair"]).sum()
    with pytest.raises(ValueError, match="finite"):
        scale_change(before, after, float("nan"), within)


# -- issue #21: transfer that generalises -------------------------------------------------------------------------

from core.data.palette import CLASS_NAMES  # noqa: E402
from core.mask_edits import remove_glasses, slim_face  # noqa: E402
from core.mask_transfer import FACE_FRAME_EXCLUDED, change_clarity, fits  # noqa: E402

FID = {n: i for i, n in enumerate(CLASS_NAMES)}


def _full_face(cx=24, half=11, hair_rows=(4, 14), glasses=False, neck=5):
    """A 48 px face of the real classes: skin face with eyes and lips, hair over its top, neck under it; the
    background meets the lower cheeks."""
    m = torch.full((R, R), FID["background"], dtype=torch.long)
    m[_ellipse(24, cx, 16, half)] = FID["skin"]
    m[hair_rows[0] : hair_rows[1], cx - half - 1 : cx + half + 2] = FID["hair"]
    m[40:, cx - neck : cx + neck + 1] = FID["neck"]
    for dx, name in ((-5, "left_eye"), (5, "right_eye")):
        m[_ellipse(20, cx + dx, 1, 2)] = FID[name]
        if glasses:
            m[_ellipse(20, cx + dx, 3, 4)] = FID["glasses"]
    m[_ellipse(31, cx, 1.5, 4)] = FID["lips"]
    return m


def _real_change(before, after, face_frame=True):
    roi, _ = region_of_interest(before, after, CLASS_NAMES, dilation=2)
    return describe_change(before, after, roi, CLASS_NAMES, face_frame=face_frame)


def test_a_context_only_change_is_anchored_on_the_face_not_on_neck_and_hair():
    src = _full_face()
    painted = torch.from_numpy(slim_face(src))
    changed = src != painted
    assert set(src[changed].tolist()) == {FID["skin"]} and set(painted[changed].tolist()) == {FID["background"]}
    change = _real_change(src, painted)
    assert {CLASS_NAMES[i] for i in change.anchor_ids} == set(CLASS_NAMES) - set(FACE_FRAME_EXCLUDED)
    old = _real_change(src, painted, face_frame=False)
    assert {CLASS_NAMES[i] for i in old.anchor_ids} & {"neck", "hair"}  # what it was anchored on before


def test_a_slimmed_face_lands_on_the_other_faces_cheeks():
    """The other face sits 6 px to the right, wears its hair lower and has a thicker neck: in the face's frame the
    carried change is that face's own slimming; anchored on hair and neck it lands off the cheeks."""
    src = _full_face()
    other = _full_face(cx=30, hair_rows=(2, 20), neck=9)
    own = torch.from_numpy(slim_face(other)) != other

    def carried(face_frame):
        target, _, _ = transfer_change(_real_change(src, torch.from_numpy(slim_face(src)), face_frame), other)
        return target != other

    new, old = carried(True), carried(False)
    # the other face's skin is cut away (and its outline follows the source's within CHANGE_MARGIN of the cut)
    assert (other[new] == FID["skin"]).float().mean() >= 0.9
    iou = lambda a: float((a & own).sum() / (a | own).sum())  # noqa: E731
    assert iou(new) >= 0.5 and iou(new) > iou(old) + 0.2


def test_a_removal_fits_faces_that_show_the_part_and_an_addition_those_that_do_not():
    with_glasses, without = _full_face(glasses=True), _full_face()
    take_off = _real_change(with_glasses, torch.from_numpy(remove_glasses(with_glasses)))
    assert take_off.removed_ids == (FID["glasses"],) and take_off.added_ids == ()
    assert fits(take_off, _full_face(cx=27, glasses=True)) and not fits(take_off, without)
    speck = without.clone()
    speck[20, 19:21] = FID["glasses"]  # 2 px of glasses are not glasses to take off
    assert not fits(take_off, speck)
    put_on = _real_change(without, with_glasses)
    assert put_on.added_ids == (FID["glasses"],)
    assert fits(put_on, _full_face(cx=27)) and not fits(put_on, with_glasses)


def test_change_clarity_prefers_a_larger_and_a_clearer_part():
    big, small = _full_face(glasses=True), _full_face(glasses=True)
    small[small == FID["glasses"]] = FID["skin"]
    small[_ellipse(20, 19, 1, 2)] = FID["glasses"]
    small[_ellipse(20, 29, 1, 2)] = FID["glasses"]
    sure = torch.nn.functional.one_hot(big, len(CLASS_NAMES)).permute(2, 0, 1).float()
    sure_small = torch.nn.functional.one_hot(small, len(CLASS_NAMES)).permute(2, 0, 1).float()
    faint = 0.3 * sure + 0.7 / len(CLASS_NAMES)  # the same glasses read with little confidence
    b, s = torch.from_numpy(remove_glasses(big)), torch.from_numpy(remove_glasses(small))
    assert change_clarity(sure, big, b) > change_clarity(sure_small, small, s) > 0
    assert change_clarity(sure, big, b) > change_clarity(faint, big, b)
    assert change_clarity(sure, big, b) == float((big != b).sum())


def test_glasses_taken_off_go_entirely_though_the_other_faces_reach_beyond_the_carried_change():
    src = _full_face(glasses=True)
    change = _real_change(src, torch.from_numpy(remove_glasses(src)))
    other = _full_face(cx=26, glasses=True)
    other[27:30, 36:39] = FID["glasses"]  # a piece of the frame on the cheek, far from the source's lenses
    target, roi, _ = transfer_change(change, other)
    assert not (target == FID["glasses"]).any() and roi[other == FID["glasses"]].all()
    assert set(target[other == FID["glasses"]].tolist()) <= {FID["skin"], FID["left_eye"], FID["right_eye"]}
    partial, _, _ = transfer_change(change, other, complete_removal=False)
    assert (partial == FID["glasses"]).any()  # before issue #21: the rims outside the source's lenses stayed


def _long_hair(face, to_row, cx=24, half=11):
    """``face`` with hair falling beside the face, over the background, down to ``to_row``."""
    m = face.clone()
    rows = torch.arange(R)[:, None]
    cols = torch.arange(R)[None, :]
    sides = ((cols - cx).abs() <= half + 3) & (rows >= 4) & (rows < to_row) & (m == FID["background"])
    m[sides] = FID["hair"]
    return m


def test_a_haircut_is_placed_by_the_face_and_cuts_the_other_faces_longer_hair_past_the_cut():
    """The source's hair reaches row 30 and is cut below its eyes (row 20). The other face sits 4 px lower and
    its hair falls to row 44: its hair below its own eyes (row 24) goes, though the source had none there; its
    cheeks and neck are not painted as background; before (copying the painted classes near the change, anchored
    on the hair's own mass) the hair below the source's reach stayed."""
    from core.mask_edits import shorten_hair

    src = _long_hair(_full_face(), 30)
    change = _real_change(src, torch.from_numpy(shorten_hair(src)))
    assert {CLASS_NAMES[i] for i in change.anchor_ids} == set(CLASS_NAMES) - set(FACE_FRAME_EXCLUDED)
    assert change.painted_over_ids == (FID["hair"],)
    other = torch.full((R, R), FID["background"], dtype=torch.long)
    other[4:] = _long_hair(_full_face(), 48)[:-4]  # the same face 4 px lower, its hair down to row 44 there
    own = torch.from_numpy(shorten_hair(other)) != other  # the other face's own haircut
    target, roi, _ = transfer_change(change, other)
    cut = target != other
    assert (other[cut] == FID["hair"]).all()  # only hair is cut: no skin or neck painted over
    assert (target[cut] == FID["background"]).all()
    assert float((cut & own).sum() / own.sum()) >= 0.9 and float((cut & ~own).sum() / own.sum()) <= 0.15
    assert roi[own].all()
    assert not (target[30:] == FID["hair"]).any()  # past the source's reach too
    roi, _ = region_of_interest(src, torch.from_numpy(shorten_hair(src)), CLASS_NAMES, dilation=2)
    old_change = describe_change(src, torch.from_numpy(shorten_hair(src)), roi, CLASS_NAMES, around_face=False)
    assert old_change.anchor_ids == (FID["hair"],)
    old, _, _ = transfer_change(old_change, other, by_transition=False)
    assert float(((old != other) & own).sum() / own.sum()) < 0.7  # before: much of the hair stayed


def test_a_pixel_takes_a_carried_class_only_if_the_change_painted_over_its_class():
    """Glasses taken off paint the lenses as skin; on a face whose eye lies where the source's lens rim was, the
    eye is not painted as skin (before, any pixel of an edited or context class could take the carried class)."""
    src = _full_face(glasses=True)
    change = _real_change(src, torch.from_numpy(remove_glasses(src)))
    assert FID["glasses"] in change.painted_over_ids and FID["left_eye"] not in change.painted_over_ids
    other = _full_face(glasses=True)
    other[_ellipse(20, 19, 1, 2)] = FID["skin"]
    other[_ellipse(22, 17, 1, 1.5)] = FID["left_eye"]  # an eye peeking out below the left lens
    eye = (other == FID["left_eye"]) & (src != FID["left_eye"])
    assert eye.any()
    target, _, _ = transfer_change(change, other)
    assert (target[eye] == FID["left_eye"]).all()
    old, _, _ = transfer_change(change, other, by_transition=False)
    assert (old[eye] != FID["left_eye"]).any()


def test_a_saved_haircut_refines_towards_the_other_faces_own_cut_unless_switched_off():
    """Mode 2's target (core.edit_vector.carried_target) follows EditConfig.carry_by_transition."""
    import numpy as np

    from core.edit import EditConfig
    from core.edit_vector import carried_target
    from core.mask_edits import shorten_hair
    from core.vector_format import VectorFile

    src = _long_hair(_full_face(), 30)
    change = np.stack([src.numpy(), shorten_hair(src)]).astype(np.uint8)
    v = VectorFile(delta=np.zeros((4, 8), np.float32), model_id="0123456789abcdef", change=change)
    other = _long_hair(_full_face(), 44)
    own = torch.from_numpy(shorten_hair(other)) != other
    new, _, used = carried_target([(v, 1.0)], other, other, CLASS_NAMES)
    old, _, _ = carried_target([(v, 1.0)], other, other, CLASS_NAMES, EditConfig(carry_by_transition=False))
    assert used == 1
    assert float(((new != other) & own).sum() / own.sum()) >= 0.9
    assert float(((old != other) & own).sum() / own.sum()) < 0.7
