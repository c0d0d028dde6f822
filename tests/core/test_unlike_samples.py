"""An uploaded image that holds far less of a face than the model's samples is flagged before anyone edits it."""

import numpy as np
import pytest
import torch
from PIL import Image

from core.data.faces import ProceduralFaces
from core.editgan import EditGAN
from core.image_io import to_model_input


@pytest.fixture(scope="module")
def faces64():
    return EditGAN.load("faces64")


def _input(array: np.ndarray) -> torch.Tensor:
    return to_model_input(Image.fromarray(array), 64)[0]


def test_faces_pass_and_non_faces_are_flagged(faces64):
    photos = ProceduralFaces(64, 424242)  # faces of the training distribution, not the model's own samples
    for i in range(8):
        assert faces64.unlike_its_samples(photos.batch(i, 1)[0]) == ""
    rng = np.random.default_rng(0)
    others = {"flat": np.full((200, 200, 3), (120, 160, 90), np.uint8),
              "noise": rng.integers(0, 256, (200, 200, 3), dtype=np.uint8),
              "empty png": np.zeros((128, 128, 4), np.uint8)}  # fmt: skip
    for name, array in others.items():
        warning = faces64.unlike_its_samples(_input(array))
        assert "does not look like the faces this model draws" in warning and "face parts" in warning, name
    share = faces64.subject_share(_input(others["flat"]))
    assert share.shape == (1,) and float(share[0]) == 0.0


def test_without_an_image_reader_nothing_is_claimed(faces64):
    bare = EditGAN(faces64.generator, faces64.branch, faces64.encoder, faces64.class_names, faces64.palette,
                   faces64.model_id, faces64.path, None)  # fmt: skip
    assert bare.subject_share(torch.zeros(1, 3, 64, 64)) is None
    assert bare.unlike_its_samples(torch.zeros(1, 3, 64, 64)) == ""
