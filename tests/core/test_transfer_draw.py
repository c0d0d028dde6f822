"""make_transferable draws faces the painted change can be made on (issue #21: taking glasses off)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.data.palette import CLASS_NAMES
from core.edit import region_of_interest
from core.edit_vector import ScaleCalibration, TransferConfig, draw_faces, pick_scale
from core.mask_edits import remove_glasses
from core.mask_transfer import describe_change, fits
from core.vector_format import VectorFile

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


class _Amounts(_Faces):
    """Faces as above; the W+ row 1 holds how far a glasses-removal vector has moved them: the glasses read gone
    from 1.4 on, and from 1.8 on the whole image changes (the vector overshoots)."""

    def parameters(self):
        yield torch.zeros(1)

    def sample_w_plus(self, seed, batch=1, truncation=1.0):
        w = torch.zeros(batch, 2, 4)
        w[:, 0] = torch.arange(batch, dtype=torch.float32)[:, None]
        return w

    def synthesis(self, w, return_features=True):
        amount = w[:, 1, 0]
        image = torch.zeros(len(w), 3, 16, 16)
        image[amount >= 1.8] = 0.5
        return SimpleNamespace(features=w, image=image)

    def branch(self, w):
        index, amount = w[:, 0, 0].long(), w[:, 1, 0]
        logits = super().branch(index)
        gone = (amount >= 1.4) & (logits.argmax(1) == GLASSES).flatten(1).any(1)
        logits[gone, 1] += 0.5  # skin wins where the glasses were
        logits[gone, GLASSES] = -1.0
        return logits


def test_pick_scale_finds_the_scale_that_makes_the_change_on_held_out_faces_without_spilling():
    faces = _Amounts()
    src = faces.branch(torch.tensor([[[3.0, 0, 0, 0], [0, 0, 0, 0]]])).argmax(1)[0]
    after = torch.from_numpy(remove_glasses(src))
    delta = np.zeros((2, 4), np.float32)
    delta[1, 0] = 1.0
    v = VectorFile(delta=delta, model_id="0" * 16, change=np.stack([src.numpy(), after.numpy()]).astype(np.uint8))
    cal = ScaleCalibration(faces=3, max_draws=40)
    scale, table = pick_scale(faces, faces.branch, v.delta, v.change, CLASS_NAMES, cal)
    assert table["faces"] == 3  # three faces with glasses drawn
    assert {k: r["made"] for k, r in table["per_scale"].items()} == {"0.75": 0, "1": 0, "1.25": 0, "1.5": 1, "2": 0}
    assert scale == 1.5  # 2 also takes the glasses off, but changes the whole image
    assert table["per_scale"]["2"]["changed_accuracy"] == table["per_scale"]["1.5"]["changed_accuracy"] >= 0.5
    assert pick_scale(faces, faces.branch, v.delta, None, CLASS_NAMES, cal) == (None, {"faces": 0, "per_scale": {}})
    with pytest.raises(ValueError, match="positive"):
        ScaleCalibration(scales=(1.0, -1.0))
