"""make_transferable draws faces the painted change can be made on (issue #21: taking glasses off)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from core.data.palette import CLASS_NAMES
from core.edit import region_of_interest
from core.edit_vector import TransferConfig, draw_faces
from core.mask_edits import remove_glasses
from core.mask_transfer import describe_change, fits

ROOT = Path(__file__).resolve().parents[2]
GLASSES = 11


class _Faces:
    """A stand-in generator and branch: face i of a seed's draw (its W+ holds i) wears glasses when i % 7 == 3."""

    def sample_w_plus(self, seed, batch=1, truncation=1.0):
        return torch.arange(batch, dtype=torch.float32).view(batch, 1, 1).expand(batch, 2, 4).clone()

    def synthesis(self, w):
        return SimpleNamespace(features=w[:, 0, 0].long())

    def branch(self, index):
        masks = torch.ones(len(index), 16, 16, dtype=torch.long)  # skin
        masks[:, 6:8, 4:7] = 4  # left eye
        masks[:, 6:8, 9:12] = 5  # right eye
        wears = index % 7 == 3
        masks[wears, 5:9, 3:8] = GLASSES
        masks[wears, 5:9, 8:13] = GLASSES
        return torch.nn.functional.one_hot(masks, 12).permute(0, 3, 1, 2).float()


def _take_off(faces):
    src = faces.branch(torch.tensor([3])).argmax(1)[0]
    after = torch.from_numpy(remove_glasses(src))
    roi, _ = region_of_interest(src, after, CLASS_NAMES)
    return describe_change(src, after, roi, CLASS_NAMES)


def test_faces_are_drawn_that_wear_the_glasses_a_removal_takes_off():
    faces = _Faces()
    change = _take_off(faces)
    ws, drawn = draw_faces(faces, faces.branch, change, TransferConfig(samples=4, max_draws=40), torch.device("cpu"))
    picked = ws[:, 0, 0].long().tolist()
    assert picked == [3, 10, 17, 24] and drawn == 28  # four that wear glasses, found in 7 batches of 4
    few, drawn = draw_faces(faces, faces.branch, change, TransferConfig(samples=4, max_draws=12), torch.device("cpu"))
    assert few[:, 0, 0].long().tolist() == [0, 1, 3, 10] and drawn == 12  # two found: misfits fill in draw order
    old, drawn = draw_faces(faces, faces.branch, change, TransferConfig(samples=4, max_draws=0), torch.device("cpu"))
    assert old[:, 0, 0].long().tolist() == [0, 1, 2, 3] and drawn == 4  # the draw before issue #21
    src = faces.branch(torch.tensor([0])).argmax(1)[0]  # putting glasses on: faces that wear none
    put_on = describe_change(src, faces.branch(torch.tensor([3])).argmax(1)[0], torch.ones(16, 16, dtype=torch.bool),
                             CLASS_NAMES)  # fmt: skip
    ws, drawn = draw_faces(faces, faces.branch, put_on, TransferConfig(samples=4), torch.device("cpu"))
    assert ws[:, 0, 0].long().tolist() == [0, 1, 2, 4] and drawn == 8
    ws, drawn = draw_faces(faces, faces.branch, put_on, TransferConfig(samples=3), torch.device("cpu"))
    assert ws[:, 0, 0].long().tolist() == [0, 1, 2] and drawn == 3  # the first faces all fit: no more drawn
    with pytest.raises(ValueError, match="max_draws"):
        TransferConfig(max_draws=-1)


def test_on_faces64_a_glasses_removal_draws_faces_with_glasses():
    """The default model: of seed 0's first 2 faces only the second wears glasses; 48 draws find another pair at
    least a quarter the size of the source's (its 42nd face; a few seconds on one thread)."""
    from core.editgan import EditGAN

    torch.set_num_threads(1)
    model = EditGAN.load(ROOT / "checkpoints" / "faces64", require=("branch",))
    w = model.sample(0, 0.7, batch=2)[1:]  # seed 0's second face: large glasses
    src = model.segment(w)[0]
    after = torch.from_numpy(remove_glasses(src))
    roi, _ = region_of_interest(src, after, CLASS_NAMES)
    change = describe_change(src, after, roi, CLASS_NAMES)
    assert change.removed_ids == (GLASSES,)

    def wearing(max_draws):
        ws, _ = draw_faces(model.generator, model.branch, change, TransferConfig(samples=2, max_draws=max_draws),
                           torch.device("cpu"))  # fmt: skip
        return sum(fits(change, m) for m in model.segment(ws))

    assert wearing(0) == 1
    assert wearing(48) == 2
