import numpy as np
import pytest

from core.data.faces import ProceduralFaces
from core.data.palette import CLASS_NAMES, class_index
from core.mask_edits import SCRIPTED_EDITS, add_glasses, apply_scripted, open_mouth, shorten_hair


def _face(**over):
    ds = ProceduralFaces(64, seed=0)
    p = ds.params(3).replace(**{"glasses": False, "mouth_open": 0.0, "hair_style": "long", "hair_len": 0.9, **over})
    from core.data.faces import render_face

    return render_face(p, 64)[1]


EXPECTED = {
    "enlarge_eyes": {"left_eye", "right_eye"},
    "open_mouth": {"teeth", "lips"},
    "smile": {"lips"},
    "add_glasses": {"glasses"},
    "shorten_hair": {"hair"},
    "shrink_nose": {"nose"},
}


@pytest.mark.parametrize("name", sorted(SCRIPTED_EDITS))
def test_each_edit_changes_its_part(name):
    m = _face()
    out = apply_scripted(name, m)
    diff = out != m
    assert diff.sum() >= 3, name
    touched = {CLASS_NAMES[c] for c in np.unique(np.concatenate([m[diff], out[diff]]))}
    assert EXPECTED[name] <= touched | EXPECTED[name] and touched & EXPECTED[name], touched
    assert out.min() >= 0 and out.max() < len(CLASS_NAMES)


def test_open_mouth_makes_teeth_and_keeps_far_pixels():
    m = _face()
    out = open_mouth(m)
    assert (out == class_index("teeth")).sum() > (m == class_index("teeth")).sum()
    assert np.array_equal(out[:20], m[:20])  # the top of the head is untouched


def test_errors_name_the_missing_part():
    m = _face()
    with pytest.raises(ValueError, match="already shows glasses"):
        add_glasses(add_glasses(m))
    bald = _face(hair_style="none")
    with pytest.raises(ValueError, match="no hair"):
        shorten_hair(bald)
    with pytest.raises(ValueError, match="unknown edit 'beard'"):
        apply_scripted("beard", m)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        apply_scripted("smile", np.zeros(5))


def test_held_out_kinds_apply_through_apply_scripted_and_refuse_what_they_cannot_do():
    from core.mask_edits import HELD_OUT_EDITS

    assert not set(HELD_OUT_EDITS) & set(SCRIPTED_EDITS)  # the six known kinds stay as they are
    m = _face()
    with pytest.raises(ValueError, match="no glasses"):
        apply_scripted("remove_glasses", m)
    worn = add_glasses(m)
    off = apply_scripted("remove_glasses", worn)
    assert not (off == class_index("glasses")).any()
    for eye in ("left_eye", "right_eye"):  # an eye redrawn under each lens
        assert (off == class_index(eye)).sum() >= 3
    assert set(np.unique(off[worn != off])) <= {class_index(n) for n in ("skin", "left_eye", "right_eye")}
    with pytest.raises(ValueError, match="no cheek meets the background"):
        apply_scripted("slim_face", m)  # long hair all round the face
    m = _face(hair_style="none")
    slim = apply_scripted("slim_face", m)
    diff = slim != m
    assert diff.sum() >= 6 and (m[diff] == class_index("skin")).all() and (slim[diff] == 0).all()  # skin -> background
