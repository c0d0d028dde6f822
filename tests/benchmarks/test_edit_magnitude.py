"""edit_magnitude compares target eyes with the training domain's eyes by pixel area."""

import torch

from benchmarks.edit_magnitude import eye_areas
from core.data.palette import CLASS_NAMES


def test_eye_areas_counts_each_present_eye_and_skips_missing_ones():
    left, right = CLASS_NAMES.index("left_eye"), CLASS_NAMES.index("right_eye")
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, 1:3, 1:4] = left  # 6 px
    masks[0, 5, 5] = right  # 1 px
    masks[1, 0:4, 0:4] = right  # 16 px; image 1 has no left eye
    assert sorted(eye_areas(masks, list(CLASS_NAMES)).tolist()) == [1, 6, 16]
