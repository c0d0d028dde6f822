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
