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
