"""Bring your own generator (#23) through the app's API, as gradio_client users: a generator that is not a face
(random weights, no branch, no classes) is labelled with 3 classes of our own, trained and edited; two people
saving one sample; and the refusals (bad class lists, too few masks, a second training, wrong-size paint)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from app import masks
from app.testing import launch_app

CLASSES = "ground #000000\nlight #ffcc00\nmid #0080ff"
PALETTE = np.array([[0, 0, 0], [255, 204, 0], [0, 128, 255]], np.uint8)


@pytest.fixture(scope="module")
def blob_app(blob_generator, tmp_path_factory):
    """The app on a generator alone: random weights, not a face, no branch, no encoder, no classes."""
    launched = launch_app(blob_generator, tmp_path_factory.mktemp("blob-data"), branch_train_steps=80)
    yield launched
    launched.demo.close()


def _client(app, tmp_path) -> Client:
    return Client(app.url, verbose=False, download_files=str(tmp_path / "downloads"))


def _value(update):
    return update["value"] if isinstance(update, dict) else update


def _brightness_mask(app, sample) -> np.ndarray:
    """A learnable labelling: thirds of the sample's grey level."""
    img = app.runtime.render(app.runtime.sample(sample.seed, sample.truncation), with_mask=False).image
    grey = img.astype(np.float32).mean(-1)
    return np.digitize(grey, np.quantile(grey, [0.33, 0.66])).astype(np.uint8)


def _layer(mask: np.ndarray, path: Path) -> dict:
    """An editor value whose one layer paints ``mask`` in the set's colours at display size."""
    size = masks.display_size(mask.shape[0])
    rgba = np.concatenate([masks.upscale(PALETTE[mask], size), np.full((size, size, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(path)
    return {"background": None, "layers": [handle_file(str(path))], "composite": None}


def _new_set(c: Client, name: str) -> str:
    choice, msg = c.predict(name, CLASSES, api_name="/label_create")
    assert "created with 3 classes" in msg
    return _value(choice)


def test_a_generator_alone_opens_without_masks_and_says_what_is_missing(blob_app, tmp_path):
    rt = blob_app.runtime
    assert rt.base_model.branch is None and rt.base_model.class_names == ()
    c = _client(blob_app, tmp_path)
    image, mask, *_ = c.predict(3, api_name="/sample")
    assert Path(image).exists() and mask is None  # sampling works; no mask without a branch
    assert "Label" in rt.status_markdown() or rt.branch_version > 0


def test_label_train_and_edit_a_generator_that_is_not_a_face(blob_app, tmp_path):
    rt = blob_app.runtime
    c = _client(blob_app, tmp_path)
    choice = _new_set(c, "blobs three classes")
    set_id = int(choice.split(":")[0])
    gallery, progress = c.predict(choice, 4, api_name="/label_add_samples")
    assert len(gallery) == 4 and "0 of 4 labelled" in progress
    samples = rt.labels.samples(set_id)
    assert len({s.seed for s in samples}) == 4
    # one sample painted with the brush (a layer), one with the fill bucket over a painted outline
    first, second = samples[0], samples[1]
    c.predict(choice, first.id, api_name="/label_sample")
    msg, _, progress, *_ = c.predict(_layer(_brightness_mask(blob_app, first), tmp_path / "a.png"), False, "",
                                     api_name="/label_save")  # fmt: skip
    assert "Saved version 1" in msg and "1 of 4 labelled" in progress
    c.predict(choice, second.id, api_name="/label_sample")
    c.predict(None, None, "", api_name="/label_clear")
    target = _brightness_mask(blob_app, second)
    c.predict(_layer(target, tmp_path / "b.png"), api_name="/label_apply")
    # fill: the connected region of the top-left pixel's class becomes "mid"
    c.predict(0, 0, "mid", None, api_name="/label_fill")
    msg, _, progress, *_ = c.predict(None, False, "filled", api_name="/label_save")
    assert "2 of 4 labelled" in progress
    _, stored = rt.labels.mask(second.id)
    assert stored[0, 0] == 2 and stored.shape == (16, 16)
    assert rt.labels.history(second.id)[0].note == "filled"

    t0 = time.time()
    done = c.predict(choice, api_name="/label_train")
    assert "Branch version" in done, done
    assert rt.model.branch is not None and rt.model.class_names == ("ground", "light", "mid")
    assert time.time() - t0 < 120
    versions = c.predict(api_name="/label_sets")  # the set list still answers
    assert versions is not None
    # the Edit tab uses the new branch at once: masks in the set's colours, and a mask edit runs
    image, mask_png, overlay, editor, info = c.predict(5, api_name="/sample")
    mask_rgb = np.asarray(Image.open(mask_png).convert("RGB")).reshape(-1, 3)
    assert {tuple(p) for p in np.unique(mask_rgb, axis=0)} <= {tuple(p) for p in PALETTE.tolist()}
    current = rt.render(rt.sample(5)).mask
    paint = np.full((16, 16, 4), 0, np.uint8)
    new_cls = (int(current[8, 8]) + 1) % 3
    paint[4:12, 4:12, :3], paint[4:12, 4:12, 3] = PALETTE[new_cls], 255
    Image.fromarray(paint, "RGBA").save(tmp_path / "target.png")
    out = c.predict(None, handle_file(str(tmp_path / "target.png")), "optimization", 5, api_name="/edit")
    assert "branch" not in str(out[6]).lower() or "version" in str(out[6]).lower()
    # a vector saved from it says which branch version made it
    msg, vid = c.predict("blob edit", "", "", "public", False, api_name="/save_edit")
    vf = rt.library.get_vector_file(int(vid), "alice")
    assert vf.metrics["branch_version"] == rt.branch_version >= 1


def test_two_people_saving_one_sample_lose_nothing_and_hear_of_the_conflict(blob_app, tmp_path):
    rt = blob_app.runtime
    a = _client(blob_app, tmp_path)
    choice = _new_set(a, "conflict set")
    set_id = int(choice.split(":")[0])
    assert "bob" in a.predict(choice, "bob", api_name="/label_add_member")
    a.predict(choice, 2, api_name="/label_add_samples")
    sample = rt.labels.samples(set_id)[0]
    a.predict(choice, sample.id, api_name="/label_sample")  # alice opens it (version 0)
    # bob saves a mask meanwhile (his claim waits for alice's to lapse: he takes over an expired claim)
    rt.labels.release(sample.id, "alice")
    rt.labels.save_mask(sample.id, "bob", np.ones((16, 16), np.uint8), 0, "bob's")
    with pytest.raises(Exception, match="bob saved version 1"):
        a.predict(_layer(np.full((16, 16), 2, np.uint8), tmp_path / "c.png"), False, "", api_name="/label_save")
    assert [m.author for m in rt.labels.history(sample.id)] == ["bob"]
    msg, *_ = a.predict(_layer(np.full((16, 16), 2, np.uint8), tmp_path / "c.png"), True, "mine", api_name="/label_save")
    assert "Saved version 2" in msg
    assert [m.author for m in rt.labels.history(sample.id)] == ["alice", "bob"]  # both kept
    assert rt.labels.mask(sample.id, 1)[1].max() == 1 and rt.labels.mask(sample.id)[1].min() == 2


def test_concurrent_saves_of_one_sample_through_the_app(blob_app, tmp_path):
    """Two sessions save the same sample from the same version at once: one lands, the other is told."""
    rt = blob_app.runtime
    c1 = _client(blob_app, tmp_path)
    choice = _new_set(c1, "race set")
    set_id = int(choice.split(":")[0])
    c1.predict(choice, 1, api_name="/label_add_samples")
    sample = rt.labels.samples(set_id)[0]
    c2 = _client(blob_app, tmp_path)
    for c in (c1, c2):  # the same user in two tabs: both hold the claim
        c.predict(choice, sample.id, api_name="/label_sample")
    results: list = []

    def save(c, cls, name):
        try:
            results.append(c.predict(_layer(np.full((16, 16), cls, np.uint8), tmp_path / name), False, "",
                                     api_name="/label_save")[0])  # fmt: skip
        except Exception as e:  # the refusal a person sees
            results.append(e)

    threads = [threading.Thread(target=save, args=(c1, 1, "x.png")), threading.Thread(target=save, args=(c2, 2, "y.png"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = [r for r in results if isinstance(r, str)]
    assert len(saved) >= 1 and len(rt.labels.history(sample.id)) == len(saved)


def test_bad_label_input_is_refused_with_a_message(blob_app, tmp_path):
    rt = blob_app.runtime
    c = _client(blob_app, tmp_path)
    for classes, why in [("a #000000\na #ffffff", "both named"), ("a #000000\nb #000000", "colour|color"),
                         ("only #000000", "2|two|at least"), ("a 000000\nb #ffffff", "name #rrggbb")]:  # fmt: skip
        with pytest.raises(Exception, match=why):
            c.predict(f"bad {why[:4]}", classes, api_name="/label_create")
    choice = _new_set(c, "refusals set")
    set_id = int(choice.split(":")[0])
    c.predict(choice, 2, api_name="/label_add_samples")
    for count in (40, 0, None):  # named in the refusal (Gradio's own range check named no control)
        with pytest.raises(Exception, match="the number of samples"):
            c.predict(choice, count, api_name="/label_add_samples")
    with pytest.raises(Exception, match="at least 2 labelled"):
        c.predict(choice, api_name="/label_train")
    sample = rt.labels.samples(set_id)[0]
    c.predict(choice, sample.id, api_name="/label_sample")
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((40, 40, 4), [10, 200, 10, 255], np.uint8), "RGBA").save(bad)  # not a set colour
    with pytest.raises(Exception, match="legend colours|not"):
        c.predict({"background": None, "layers": [handle_file(str(bad))], "composite": None}, False, "",
                  api_name="/label_save")  # fmt: skip
    assert rt.labels.history(sample.id) == []
    with pytest.raises(Exception, match="x must be"):
        c.predict(99, 0, "mid", None, api_name="/label_fill")


def test_a_second_training_while_one_runs_is_refused(blob_app, tmp_path):
    rt = blob_app.runtime
    c = _client(blob_app, tmp_path)
    choice = _new_set(c, "busy set")
    set_id = int(choice.split(":")[0])
    c.predict(choice, 2, api_name="/label_add_samples")
    for s in rt.labels.samples(set_id):
        rt.labels.save_mask(s.id, "alice", _brightness_mask(blob_app, s), 0)
    job = c.submit(choice, api_name="/label_train")
    deadline = time.time() + 30
    while (rt.trainer.job(set_id) is None or not rt.trainer.job(set_id).running) and time.time() < deadline:
        time.sleep(0.05)
    with pytest.raises(Exception, match="already training"):
        c.predict(choice, api_name="/label_train")
    assert "Stopping" in c.predict(choice, api_name="/label_train_stop")
    outcome = job.result(timeout=120)
    state = rt.trainer.job(set_id).state
    assert (state, "stopped" in outcome) in (("stopped", True), ("done", False)), outcome  # done: it beat the stop
    # the lock is released: the set trains again
    assert "Branch version" in c.predict(choice, api_name="/label_train")


def test_signed_in_users_switch_between_the_servers_models_only(blob_generator, tiny_bundle, tmp_path):
    app = launch_app(blob_generator, tmp_path / "data", model_choices=(str(tiny_bundle),))
    try:
        c = _client(app, tmp_path)
        with pytest.raises(Exception, match="not in the list of choices"):  # Gradio's own check of the choice
            c.predict("/etc/passwd.pt", api_name="/switch_model")
        with pytest.raises(ValueError, match="not one of this server's models"):  # and the runtime's
            app.runtime.switch_model("/etc/passwd.pt")
        msg, banner = c.predict(str(tiny_bundle), api_name="/switch_model")
        assert "now runs" in msg and app.runtime.model.branch is not None
        image, mask, *_ = c.predict(2, api_name="/sample")
        assert mask is not None  # the tiny bundle has a branch
        c.predict(str(blob_generator), api_name="/switch_model")
        assert app.runtime.model.branch is None
    finally:
        app.demo.close()


def test_a_rosinality_pt_loads_as_a_generator_alone(tmp_path):
    from app.runtime import fetch_model
    from core.checkpoint import rosinality_state_dict
    from core.editgan import EditGAN
    from core.generator import Generator, GeneratorConfig

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(resolution=64, style_dim=32, n_mlp=2, channel_multiplier=1)).eval()
    pt = tmp_path / "mine.pt"
    torch.save({"g_ema": rosinality_state_dict(g)}, pt)
    model = EditGAN.load(fetch_model(str(pt)))
    assert model.branch is None and model.class_names == () and model.resolution == 64
    assert model.model_id == EditGAN.load(pt).model_id  # the id is the content's, the same every time
    with pytest.raises(ValueError, match="generator alone"):
        EditGAN.load(pt, require=("branch",))
    bad = tmp_path / "evil.pt"
    torch.save({"g_ema": {"x": object()}}, bad)  # pickled code/objects are refused, never run
    with pytest.raises(ValueError):
        EditGAN.load(bad)


def test_older_branch_versions_stay_usable_and_publishable(blob_app, tmp_path):
    rt = blob_app.runtime
    c = _client(blob_app, tmp_path)
    choice = _new_set(c, "versions set")
    set_id = int(choice.split(":")[0])
    c.predict(choice, 2, api_name="/label_add_samples")
    for s in rt.labels.samples(set_id):
        rt.labels.save_mask(s.id, "alice", _brightness_mask(blob_app, s), 0)
    c.predict(choice, api_name="/label_train")
    newest = rt.branch_version
    assert newest >= 2  # an earlier test trained version 1
    msg, rows = c.predict(1, api_name="/label_use_version")
    assert rt.branch_version == 1 and "version 1" in msg
    rt.refresh_branch(force=True)
    assert rt.branch_version == 1  # the choice holds until a newer version is trained
    with pytest.raises(Exception, match="no branch of its own"):
        c.predict(0, api_name="/label_use_version")
    msg, rows = c.predict(newest, api_name="/label_publish")
    assert "published" in msg
    info = [v for v in rt.labels.branch_versions(rt.base_model.model_id) if v.version == newest][0]
    assert info.published and rt.labels.get_set(set_id).public
    c.predict(newest, api_name="/label_use_version")
    with pytest.raises(Exception, match="not|no "):
        c.predict(99, api_name="/label_use_version")


def test_a_pt_that_is_not_a_generator_is_refused_with_a_message(tmp_path):
    from core.editgan import EditGAN

    pt = tmp_path / "weights.pt"
    torch.save({"g_ema": {"conv.weight": torch.zeros(3, 3)}}, pt)
    with pytest.raises(ValueError, match="rosinality|generator"):
        EditGAN.load(pt)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable"):
        EditGAN.load(tmp_path / "text.pt")


def test_a_label_set_file_brings_the_branch_to_another_server_of_the_same_generator(blob_app, blob_generator, tmp_path):
    """Exported from one app, imported into another (its own database) of the same generator: the branch is there
    at once, without labelling; a file for another generator is refused and changes nothing."""
    rt = blob_app.runtime
    c = _client(blob_app, tmp_path)
    choice = _new_set(c, "shared set")
    set_id = int(choice.split(":")[0])
    c.predict(choice, 2, api_name="/label_add_samples")
    for s in rt.labels.samples(set_id):
        rt.labels.save_mask(s.id, "alice", _brightness_mask(blob_app, s), 0)
    c.predict(choice, api_name="/label_train")
    zip_path = c.predict(choice, api_name="/label_export")
    other = launch_app(blob_generator, tmp_path / "other-data", user="bob")
    try:
        assert other.runtime.model.branch is None
        c2 = _client(other, tmp_path)
        msg, new_choice = c2.predict(handle_file(zip_path), api_name="/label_import")
        assert "Imported" in msg and "1 branch version" in msg
        assert other.runtime.model.branch is not None
        assert other.runtime.model.class_names == ("ground", "light", "mid")
        image, mask, *_ = c2.predict(1, api_name="/sample")
        assert mask is not None
    finally:
        other.demo.close()


def test_removing_samples_and_deleting_a_set_through_the_app(blob_app, tmp_path):
    rt = blob_app.runtime
    c = _client(blob_app, tmp_path)
    choice = _new_set(c, "set to delete")
    set_id = int(choice.split(":")[0])
    c.predict(choice, 3, api_name="/label_add_samples")
    first, second, third = rt.labels.samples(set_id)
    with pytest.raises(Exception, match="open a sample first"):
        c.predict(api_name="/label_remove_sample")
    c.predict(choice, second.id, api_name="/label_sample")
    msg, gallery, progress, *_ = c.predict(api_name="/label_remove_sample")
    assert f"#{second.id}" in msg and "0 of 2 labelled" in progress and len(gallery) == 2
    assert [s.id for s in rt.labels.samples(set_id)] == [first.id, third.id]
    with pytest.raises(Exception, match="open a sample first"):  # the painter closed with the sample
        c.predict(_layer(np.ones((16, 16), np.uint8), tmp_path / "r.png"), False, "", api_name="/label_save")
    # labelled by alice; bob, a member, may not remove it; the owner may
    c.predict(choice, first.id, api_name="/label_sample")
    c.predict(_layer(np.ones((16, 16), np.uint8), tmp_path / "r.png"), False, "", api_name="/label_save")
    c.predict(choice, "bob", api_name="/label_add_member")
    with pytest.raises(Exception, match="only the owner"):
        rt.labels.remove_sample(first.id, "bob")
    # deleting asks for the tick, and takes the samples and masks with the set
    with pytest.raises(Exception, match="tick 'yes, delete'"):
        c.predict(choice, False, api_name="/label_delete_set")
    assert rt.labels.get_set(set_id).n_samples == 2
    new_choice, msg, gallery, progress = c.predict(choice, True, api_name="/label_delete_set")
    assert "deleted with its 2 samples" in msg and gallery == [] and progress == ""
    assert _value(new_choice) != choice
    assert all(s.id != set_id for s in rt.labels.sets_for_model(rt.base_model.model_id))
    with pytest.raises(Exception, match="no label set"):
        c.predict(choice, 1, api_name="/label_add_samples")
