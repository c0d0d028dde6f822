"""The app's pure pieces: brush snapping, identity, per-session history and share links."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from app import masks
from app.handler_util import image_file
from app.identity import Identity, read_users_file
from app.session import EditSession, ShareStore, format_vectors, parse_vectors
from core.data.palette import PALETTE, class_index

R, SIZE = 16, 512
K = SIZE // R


def _stroke_layer(cls: str, rows: slice, cols: slice, feather: int = 3) -> np.ndarray:
    """An RGBA layer like Gradio's anti-aliased brush: solid core, alpha ramp and blended colour at the edge."""
    layer = np.zeros((SIZE, SIZE, 4), np.uint8)
    color = PALETTE[class_index(cls)]
    layer[rows, cols, :3] = color
    layer[rows, cols, 3] = 255
    r0, r1 = rows.start, rows.stop
    for d in range(1, feather + 1):  # faint halo: alpha falls off, colour drifts towards black
        a = int(255 * (1 - d / (feather + 1)))
        drift = (color.astype(np.int32) * (1 - 0.25 * d / feather)).astype(np.uint8)
        for sl in ((slice(r0 - d, r0 - d + 1), cols), (slice(r1 + d - 1, r1 + d), cols)):
            layer[sl[0], sl[1], :3] = drift
            layer[sl[0], sl[1], 3] = a
    return layer


def test_antialiased_stroke_snaps_to_its_class_cell_by_cell():
    current = np.zeros((R, R), np.int64)
    layer = _stroke_layer("glasses", slice(4 * K, 8 * K), slice(2 * K, 10 * K))
    target = masks.target_mask({"background": None, "layers": [layer], "composite": None}, current, PALETTE)
    expected = current.copy()
    expected[4:8, 2:10] = class_index("glasses")
    assert np.array_equal(target, expected)  # the halo neither grows nor blurs the painted cells


def test_faint_and_partial_cells_are_ignored():
    layer = np.zeros((SIZE, SIZE, 4), np.uint8)
    layer[: K * 2, : K * 2] = (*PALETTE[class_index("hair")], 100)  # faint alpha: not painted
    layer[5 * K: 5 * K + K // 4, 5 * K: 6 * K] = (*PALETTE[class_index("lips")], 255)  # a quarter cell
    layer[9 * K: 10 * K, 9 * K: 10 * K] = (*PALETTE[class_index("lips")], 255)  # a full cell
    painted = masks.painted_classes({"layers": [layer]}, R, PALETTE)
    assert (painted >= 0).sum() == 1 and painted[9, 9] == class_index("lips")


def test_off_palette_paint_and_empty_edits_are_refused():
    current = np.zeros((R, R), np.int64)
    photo = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    photo[..., 3] = 255
    with pytest.raises(ValueError, match="not legend colours"):
        masks.target_mask({"layers": [photo]}, current, PALETTE)
    with pytest.raises(ValueError, match="nothing is painted"):
        masks.target_mask({"layers": []}, current, PALETTE)
    with pytest.raises(ValueError, match="no value"):
        masks.target_mask(None, current, PALETTE)
    same = np.zeros((SIZE, SIZE, 4), np.uint8)
    same[..., 3] = 255  # background painted over background
    with pytest.raises(ValueError, match="do not change the mask"):
        masks.target_mask({"layers": [same]}, current, PALETTE)


def test_layer_of_another_canvas_size_is_resampled():
    current = np.zeros((R, R), np.int64)
    small = np.zeros((256, 256, 4), np.uint8)
    small[64:128, 64:128] = (*PALETTE[class_index("nose")], 255)
    target = masks.target_mask({"layers": [small]}, current, PALETTE)
    assert (target == class_index("nose")).sum() == 16 and target[4:8, 4:8].min() == class_index("nose")


def test_users_file_and_identity_modes(tmp_path):
    f = tmp_path / "users.txt"
    digest = hashlib.sha256(b"s3cret").hexdigest()
    f.write_text(f"# accounts\nalice:wonderland\n\nbob:sha256:{digest}\n")
    users = read_users_file(f)
    ident = Identity.resolve(oauth=False, users_file=f, local_user=None, host="0.0.0.0")
    check = ident.auth()
    assert set(users) == {"alice", "bob"} and ident.mode == "users"
    assert check("alice", "wonderland") and check("bob", "s3cret")
    assert not check("alice", "wrong") and not check("carol", "x") and not check("bob", digest)
    bad = tmp_path / "bad.txt"
    bad.write_text("no-colon-here\n")
    with pytest.raises(ValueError, match="line 1"):
        read_users_file(bad)
    assert Identity.resolve(oauth=False, users_file=None, local_user=None, host="127.0.0.1").username() == "local"
    assert Identity.resolve(oauth=False, users_file=None, local_user=None, host="0.0.0.0").mode == "anonymous"
    oauth = Identity.resolve(oauth=True, users_file=None, local_user=None, host="0.0.0.0")
    assert oauth.username(None, None) is None
    assert oauth.username(None, {"preferred_username": "hf-user"}) == "hf-user"


def test_history_undo_redo():
    s = EditSession()
    w0 = np.zeros((2, 3), np.float32)
    s.start(w0, {"kind": "seed", "seed": 1})
    assert s.pristine
    s.change(w0 + 1, "a")
    s.change(w0 + 2, "b")
    assert s.undo() == "b" and s.w[0, 0] == 1
    assert s.undo() == "a" and s.pristine
    with pytest.raises(ValueError, match="nothing to undo"):
        s.undo()
    assert s.redo_step() == "a" and s.w[0, 0] == 1
    s.change(w0 + 5, "c")
    with pytest.raises(ValueError, match="nothing to redo"):
        s.redo_step()


def test_share_store_round_trip_and_refusals(tmp_path):
    from db import Database
    from vector_library import VectorLibrary
    from vector_library.testing import CARS, FACES

    lib = VectorLibrary(Database.open(f"sqlite:///{tmp_path / 'lib.sqlite3'}"))
    lib.register_model(FACES)
    lib.register_model(CARS)
    store = ShareStore(lib.states)
    m, shape = FACES.model_id, (FACES.n_latent, FACES.w_dim)
    w = np.arange(32, dtype=np.float32).reshape(shape)
    token = store.save(m, w, [(3, 1.0), (7, -0.5)])
    assert token == store.save(m, w, [(3, 1.0), (7, -0.5)])  # content-named
    w2, vectors, tuning = store.load(token, m, shape)
    assert np.array_equal(w, w2) and vectors == [(3, 1.0), (7, -0.5)] and tuning is None
    tuned = store.save(m, w, [], tuning="ab" * 10)  # a photo's state names its generator tuning
    assert tuned != token and store.load(tuned, m, shape)[2] == "ab" * 10
    with pytest.raises(ValueError, match="tuning is malformed"):
        store.save(m, w, [], tuning="../../x")
    with pytest.raises(ValueError, match="another|this server runs"):
        store.load(token, CARS.model_id, (CARS.n_latent, CARS.w_dim))
    with pytest.raises(ValueError, match="malformed"):
        store.load("../../etc/passwd", m, shape)
    with pytest.raises(ValueError, match="points to nothing"):
        store.load("0" * 20, m, shape)
    with pytest.raises(ValueError, match="at most 8"):
        store.load(store.save(m, w, [(i + 1, 1.0) for i in range(9)]), m, shape)
    # a link made before the database kept them: its JSON file in <data dir>/shares/ still opens, read only
    import base64
    import json

    (tmp_path / "shares").mkdir()
    old = {"format": "editgan-share/1", "model_id": m, "shape": list(shape), "vectors": "3:1",
           "w": base64.b64encode(w.tobytes()).decode("ascii")}  # fmt: skip
    (tmp_path / "shares" / ("c" * 20 + ".json")).write_text(json.dumps(old))
    legacy = ShareStore(lib.states, tmp_path / "shares")
    w3, vectors3, tuning3 = legacy.load("c" * 20, m, shape)
    assert np.array_equal(w3, w) and vectors3 == [(3, 1.0)] and tuning3 is None
    with pytest.raises(ValueError, match="points to nothing"):
        store.load("c" * 20, m, shape)  # without the folder: unknown
    assert parse_vectors(format_vectors([(1, 0.25), (2, -1.0)])) == [(1, 0.25), (2, -1.0)]
    with pytest.raises(ValueError, match="not 'id:scale'"):
        parse_vectors("1:2,drop table")


def test_previews_are_files_written_once_under_their_content_hash():
    """Search thumbnails go to the Gallery as files that are never rewritten (issue #24: a numpy preview was
    re-encoded into Gradio's cache on every search, under a streaming response's feet)."""
    import os

    from PIL import Image

    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = image_file(a)
    before = os.stat(path)
    assert image_file(a.copy()) == path  # the same pixels: the same file, not written again
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), a)
    assert image_file(a[::-1]) != path


def test_save_message_says_how_the_transfer_faces_were_found():
    from app.handlers import _faces_drawn

    assert _faces_drawn({"transfer_samples": 16, "transfer_faces_drawn": 16, "transfer_faces_fitting": 16}) == ""
    assert _faces_drawn({"transfer_samples": 16}) == ""  # a vector made before the draw existed
    found = _faces_drawn({"transfer_samples": 16, "transfer_faces_drawn": 32, "transfer_faces_fitting": 16})
    assert "looked through 32" in found and "16 do" in found
    rare = _faces_drawn({"transfer_samples": 16, "transfer_faces_drawn": 160, "transfer_faces_fitting": 7})
    assert "only 7 do" in rare and "other 9" in rare
    # the first 16 drawn, some of which do not fit, and no more to draw (max_draws <= samples)
    assert "only 12 do" in _faces_drawn({"transfer_samples": 16, "transfer_faces_drawn": 16, "transfer_faces_fitting": 12})


def test_save_message_says_how_the_vectors_strength_was_set():
    from app.handlers import _calibration_note

    assert _calibration_note({}) == ""  # made before the calibration existed
    assert _calibration_note({"calibrated_scale": 1.0, "calibration_faces": 0.0}) == ""  # no face took the change
    same = _calibration_note({"calibrated_scale": 1.0, "calibration_faces": 8.0, "calibration_made": 0.75,
                              "calibration_made_at_1": 0.75})  # fmt: skip
    assert "as the edit left it" in same and "6 of 8" in same
    up = _calibration_note({"calibrated_scale": 1.5, "calibration_faces": 8.0, "calibration_made": 0.375,
                            "calibration_made_at_1": 0.25})  # fmt: skip
    assert "1.5x the edit's" in up and "3 of 8" in up and "2 at the edit's own strength" in up


def test_a_mask_edit_that_fell_short_says_so():
    from types import SimpleNamespace

    from app.handlers import edit_warnings

    unchanged = SimpleNamespace(best_step=0, metrics={"painted_change_reached": 0.0})
    assert "unchanged" in edit_warnings(unchanged)[0]
    short = SimpleNamespace(best_step=12, metrics={"painted_change_reached": 0.2})
    assert "Only 20%" in edit_warnings(short)[0]
    assert edit_warnings(SimpleNamespace(best_step=12, metrics={"painted_change_reached": 0.9})) == []
    assert edit_warnings(SimpleNamespace(best_step=5, metrics={})) == []  # a result without the figure


def test_a_slider_hands_its_box_to_the_handler_as_typed():
    """Gradio's own slider fails an event whose number box was emptied (None against its range, a server
    traceback); the app's slider passes None and out-of-range numbers on for the handler to answer in words."""
    from app.components import Number, Slider

    s = Slider(-2.0, 2.0, value=1.0, step=0.05)
    assert s.get_block_name() == "slider"  # drawn by Gradio's slider front end
    assert s.preprocess(None) is None and s.preprocess("") is None and s.preprocess("  ") is None
    assert s.preprocess(9) == 9.0 and s.preprocess(-0.5) == -0.5 and s.preprocess("1.5") == 1.5
    assert s.preprocess("abc") == "abc"  # refused by the handler, with the control's name
    assert np.isnan(s.preprocess(float("nan")))
    n = Number(value=4, precision=0, minimum=1, maximum=32)  # a count: beyond its range, left to the handler
    assert n.get_block_name() == "number"
    assert n.preprocess(40) == 40 and n.preprocess(-2) == -2 and n.preprocess(3.7) == 4 and n.preprocess(None) is None


def test_scales_and_step_counts_are_refused_in_words():
    from app.handler_util import scale_number, whole_number

    assert scale_number(1.5, "scale", -1.5, 2.0) == 1.5 and scale_number("-1", "scale", -1.5, 2.0) == -1.0
    for bad, words in ((None, "scale is empty: give a number from -1.5 to 2"),
                       ("", "scale is empty"),
                       ("abc", "must be a number from -1.5 to 2"),
                       (float("nan"), "must be a number"), (float("inf"), "must be a number"),
                       (2.5, "scale is 2.5, outside this vector's range [-1.5, 2]")):  # fmt: skip
        with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
            scale_number(bad, "scale", -1.5, 2.0)
    # a live slider's box brought to the range's nearer end, as the browser shows it; NaN is still refused
    assert scale_number(9, "scale", -1.5, 2.0, clamp=True) == 2.0
    assert scale_number(-7, "scale", -1.5, 2.0, clamp=True) == -1.5
    with pytest.raises(ValueError, match="must be a number"):
        scale_number(float("nan"), "scale", -1.5, 2.0, clamp=True)
    with pytest.raises(ValueError, match="steps is empty: give a whole number from 1 to 60"):
        whole_number(None, "steps", 1, 60)
    with pytest.raises(ValueError, match=r"steps must be a whole number in \[1, 60\]"):
        whole_number(61, "steps", 1, 60)
