import numpy as np
import pytest

from core.data.faces import ProceduralFaces, render_face
from core.data.palette import CLASS_NAMES, NUM_CLASSES, PALETTE, class_index, colorize


@pytest.fixture(scope="module")
def faces():
    return ProceduralFaces(resolution=48, seed=3)


def test_items_are_deterministic_and_seeded(faces):
    a_img, a_mask = faces[5]
    b_img, b_mask = faces[5]
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    other, _ = ProceduralFaces(48, seed=4)[5]
    assert not np.array_equal(a_img, other)


def test_shapes_dtypes_and_class_range(faces):
    img, mask = faces[0]
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    assert mask.shape == (48, 48) and mask.dtype == np.uint8
    assert mask.max() < NUM_CLASSES


def test_every_class_appears_in_a_small_sample():
    ds = ProceduralFaces(64, seed=0)
    seen = set()
    for i in range(120):
        seen |= set(np.unique(ds[i][1]).tolist())
    assert seen == set(range(NUM_CLASSES)), [CLASS_NAMES[c] for c in set(range(NUM_CLASSES)) - seen]


def test_images_are_shaded_not_flat(faces):
    img, mask = faces[1]
    skin = img[mask == class_index("skin")]
    assert len(np.unique(skin.reshape(-1, 3), axis=0)) > 50  # shading + texture + grain


def test_edges_are_antialiased():
    p = ProceduralFaces(64, seed=0).params(0).replace(glasses=False)
    img, mask = render_face(p, 64)
    # pixels on a class boundary carry colours between the two sides
    edge = np.zeros_like(mask, bool)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    assert edge.sum() > 50


@pytest.mark.parametrize(
    "change,part",
    [
        ({"glasses": True}, {"glasses"}),
        ({"mouth_open": 0.06}, {"lips", "teeth"}),
        ({"eye_w": 0.14}, {"left_eye", "right_eye"}),
        ({"eye_open": 0.3}, {"left_eye", "right_eye"}),
        ({"brow_angle": 0.35}, {"left_brow", "right_brow"}),
        ({"nose_w": 0.12}, {"nose"}),
        ({"hair_style": "none"}, {"hair"}),
    ],
)
def test_parts_change_independently(change, part):
    """Every pixel whose label changes carries one of the edited part's labels before or after."""
    p = ProceduralFaces(64, seed=0).params(2).replace(glasses=False, mouth_open=0.0, hair_style="short", brow_angle=-0.3)
    _, before = render_face(p, 64)
    _, after = render_face(p.replace(**change), 64)
    ids = [class_index(n) for n in part]
    diff = before != after
    assert diff.sum() > 0
    in_part = np.isin(before, ids) | np.isin(after, ids)
    assert in_part[diff].all(), {CLASS_NAMES[c] for c in np.unique(before[diff & ~in_part])}


def test_glasses_change_nothing_outside_glasses():
    p = ProceduralFaces(64, seed=0).params(7).replace(glasses=False)
    _, before = render_face(p, 64)
    _, after = render_face(p.replace(glasses=True), 64)
    keep = after != class_index("glasses")
    assert np.array_equal(before[keep], after[keep])


def test_palette_and_colorize():
    assert PALETTE.shape == (NUM_CLASSES, 3)
    mask = np.array([[0, 1], [NUM_CLASSES - 1, 3]])
    rgb = colorize(mask)
    assert rgb.shape == (2, 2, 3) and (rgb[1, 1] == PALETTE[3]).all()
    with pytest.raises(ValueError, match="class ids"):
        colorize(np.array([[NUM_CLASSES]]))
    with pytest.raises(ValueError, match="unknown class 'beard'"):
        class_index("beard")


def test_tiny_resolution_is_refused():
    with pytest.raises(ValueError, match=">= 16"):
        render_face(ProceduralFaces(64).params(0), 8)


def test_batches_are_tensors_in_range():
    x, m = ProceduralFaces(32, seed=1).batch(0, 3)
    assert x.shape == (3, 3, 32, 32) and m.shape == (3, 32, 32)
    assert x.min() >= -1 and x.max() <= 1


def test_mask_from_colors_snaps_antialiased_paint_and_rejects_unknown_colours():
    from core.data.palette import mask_from_colors

    mask = np.array([[0, 1], [4, 9]])
    rgb = colorize(mask).astype(np.int32)
    rgb[0, 1] = (rgb[0, 1] * 0.9 + PALETTE[0] * 0.1).astype(np.int32)  # a blended brush edge
    assert np.array_equal(mask_from_colors(rgb.astype(np.uint8)), mask)
    rgba = np.concatenate([colorize(mask), np.array([[[255], [0]], [[255], [255]]], np.uint8)], -1)
    assert mask_from_colors(rgba)[0, 1] == -1
    bad = colorize(mask)
    bad[1, 1] = (128, 128, 0)
    with pytest.raises(ValueError, match="not in the class palette"):
        mask_from_colors(bad)
