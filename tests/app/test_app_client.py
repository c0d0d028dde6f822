"""The editor through gradio_client against a launched app: sample, edit by mask, save, search,
apply with a scale, compose, share, undo/redo, export."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from app.testing import kept_tokens, write_target_mask
from core.vector_format import VectorFile

GLASSES = (0, 200, 60)  # palette colour of "glasses"


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _table_rows(table) -> list:
    return table["data"] if isinstance(table, dict) else table


def _edit(client, tmp_path, steps=4):
    mask = write_target_mask(tmp_path / "target.png", 16, (3, 3, 12, 9), GLASSES)
    return client.predict(None, handle_file(str(mask)), "optimization", steps, api_name="/edit")


def test_sample_is_deterministic_and_has_mask(client):
    a = client.predict(3, api_name="/sample")
    b = client.predict(3, api_name="/sample")
    c = client.predict(4, api_name="/sample")
    image, mask, overlay, editor, info = a
    assert _img(image).shape == (16, 16, 3)
    assert _img(mask).shape == (16, 16, 3) and _img(overlay).shape == (16, 16, 3)
    assert Image.open(editor["background"]).size == (512, 512)  # the canvas: mask upscaled
    assert "seed 3" in info
    assert np.array_equal(_img(image), _img(b[0]))
    assert not np.array_equal(_img(image), _img(c[0]))


def test_edit_by_mask_save_search_apply(client, app_server, tmp_path):
    client.predict(5, api_name="/sample")
    before, after, image, mask, overlay, editor, metrics, info = _edit(client, tmp_path)
    assert not np.array_equal(_img(before), _img(after))
    assert np.array_equal(_img(after), _img(image))
    assert "target IoU" in metrics and "outside the region" in metrics
    assert "1 change(s)" in info

    msg, vid = client.predict("Client glasses", "painted lenses", "glasses, test, round lenses", "public", True,
                              api_name="/save_edit")  # fmt: skip
    assert "Saved as vector" in msg and vid >= 1
    assert "Made transferable: on 16 random faces" in msg  # the saved vector was optimised on other faces too

    gallery, table = client.predict("client glass", "", "", "relevance", api_name="/search")
    rows = _table_rows(table)
    assert [r[0] for r in rows] == [vid]
    assert rows[0][2] == "alice" and "glasses" in rows[0][4]
    assert rows[0][3].split(", ")[0] == "glasses"  # the class the paint is about leads what it edits
    _, by_class = client.predict("", "", "glasses", "recent", api_name="/search")
    assert vid in [r[0] for r in _table_rows(by_class)]
    assert len(gallery) == 1 and "Client glasses" in gallery[0]["caption"]
    _, tagged = client.predict("", "test", "", "recent", api_name="/search")
    assert vid in [r[0] for r in _table_rows(tagged)]
    _, tagged = client.predict("", " Round  Lenses ", "", "recent", api_name="/search")  # as saving wrote it
    assert [r[0] for r in _table_rows(tagged)] == [vid]

    # a fresh image; scale 0 leaves it unchanged, other scales change it
    base = _img(client.predict(6, api_name="/sample")[0])
    zero = client.predict(vid, 0.0, api_name="/apply")
    assert np.array_equal(_img(zero), base)
    one = _img(client.predict(vid, 1.0, api_name="/apply"))
    assert not np.array_equal(one, base)
    with pytest.raises(Exception, match="outside this vector's range"):
        client.predict(vid, 4.0, api_name="/apply")
    with pytest.raises(Exception, match="scale is empty: give a number from -1.5 to 2"):
        client.predict(vid, None, api_name="/apply")  # an API caller's missing scale: refused, not taken as 0

    # the vector page, a like, the downloaded file
    page, versions, slider, preview, shown = client.predict(vid, api_name="/vector")
    assert "Client glasses" in page and "alice" in page and shown == str(vid)  # the id field is text
    assert "edits: glasses" in page and "also touches" in page  # the painted box covered other classes too
    assert _table_rows(versions)[0][0] == 1
    assert slider["minimum"] == -1.5 and slider["maximum"] == 2.0
    assert client.predict(vid, api_name="/like") == "Liked · 1 like(s)"  # the state the toggle produced
    assert client.predict(vid, api_name="/like") == "Not liked · 0 like(s)"  # a toggle
    path = client.predict(vid, api_name="/download_vector")
    vf = VectorFile.load(path)
    assert vf.name == "Client glasses" and vf.model_id == app_server.runtime.model_id


def test_keep_undo_redo_and_export(client, tmp_path):
    client.predict(7, api_name="/sample")
    _edit(client, tmp_path)
    msg, vid = client.predict("Undo source", "", "", "private", False, api_name="/save_edit")
    assert "Saved as vector" in msg and "transferable" not in msg  # the edit's own delta, as asked
    base = _img(client.predict(8, api_name="/sample")[0])
    applied = _img(client.predict(vid, 1.5, api_name="/apply"))
    kept = client.predict(api_name="/keep")
    assert np.array_equal(_img(kept[0]), applied) and "1 change(s)" in kept[4]
    undone = client.predict(api_name="/undo")
    assert np.array_equal(_img(undone[0]), base)
    redone = client.predict(api_name="/redo")
    assert np.array_equal(_img(redone[0]), applied)
    files, pasted = client.predict(api_name="/export")
    names = sorted(p.rsplit("/", 1)[-1] for p in files)
    assert names == ["edit.safetensors", "image.png", "mask.png"] and pasted is None
    assert VectorFile.load([p for p in files if p.endswith(".safetensors")][0]).delta.shape == (6, 32)


def test_compose_save_and_share(client, app_server, tmp_path):
    ids = []
    for seed, name in ((9, "Compose A"), (10, "Compose B")):
        client.predict(seed, api_name="/sample")
        _edit(client, tmp_path)
        ids.append(client.predict(name, "", "compose", "public", api_name="/save_edit")[1])
    base = _img(client.predict(11, api_name="/sample")[0])
    slots = client.predict(api_name="/vector_choices")  # every slot offers the same vectors
    assert len(slots) == 4 and all(s == slots[0] and {str(i) for i in ids} <= {c[1] for c in s["choices"]}
                                   for s in slots), slots  # fmt: skip
    preview, warnings = client.predict(str(ids[0]), str(ids[1]), None, None, 1.0, -0.5, 1.0, 1.0, api_name="/compose")
    assert not np.array_equal(_img(preview), base)
    assert "glasses" in warnings  # both vectors edit the same class: an interference warning
    for scales, words in (((1.0, None, 1.0, 1.0), f"the scale of #{ids[1]} is empty"),
                          ((1.0, 3.0, 1.0, 1.0), f"the scale of #{ids[1]} is 3, outside")):  # fmt: skip
        with pytest.raises(Exception, match=words):
            client.predict(str(ids[0]), str(ids[1]), None, None, *scales, api_name="/compose")
    msg = client.predict("My pair", "public", str(ids[0]), str(ids[1]), None, None, 1.0, -0.5, 1.0, 1.0,
                         api_name="/save_composition")  # fmt: skip
    assert "Saved composition" in msg
    comp_id = msg.split("#", 1)[1].split(" ", 1)[0]
    # anyone can open the public composition again: the slots come back with their ids and scales
    *slot_values, opened_msg = client.predict(f"#{comp_id} My pair", api_name="/load_composition")
    values = [v["value"] if isinstance(v, dict) else v for v in slot_values]  # scales come as updates
    assert values == [str(ids[0]), str(ids[1]), None, None, 1.0, -0.5, 1.0, 1.0]
    assert slot_values[4]["minimum"] <= 1.0 <= slot_values[4]["maximum"]  # the slider gets its vector's range
    assert "My pair" in opened_msg
    with pytest.raises(Exception, match="no composition 999999"):
        client.predict("999999", api_name="/load_composition")

    link = client.predict(api_name="/share")
    assert link.endswith(f"?seed=11&v={ids[0]}:1,{ids[1]}:-0.5")
    # another user opens the link and sees the same image
    from gradio_client import Client

    other = Client(app_server.url, verbose=False, download_files=str(tmp_path / "other"))
    opened = other.predict(link, api_name="/open_share")
    assert np.array_equal(_img(opened[0]), _img(preview)) and "#%d ×1" % ids[0] in opened[4]

    # an edited (non-seed) state travels as a token
    client.predict(api_name="/keep")
    token_link = client.predict(api_name="/share")
    assert "?s=" in token_link
    reopened = other.predict(token_link, api_name="/open_share")
    assert np.array_equal(_img(reopened[0]), _img(preview))


def test_photo_upload_edit_and_paste_back(client, tmp_path):
    rng = np.random.default_rng(1)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(photo)
    image, mask, overlay, editor, info = client.predict(handle_file(str(photo)), 2, api_name="/upload")
    assert "uploaded photo" in info and "PSNR" in info and _img(image).shape == (16, 16, 3)
    assert "image reader" in info  # the tiny bundle has one: the embedding held the photo's parts to it
    _edit(client, tmp_path, steps=2)
    files, pasted = client.predict(api_name="/export")
    assert any(f.endswith("photo_edited.png") for f in files)
    out = Image.open(pasted)
    assert out.size == (40, 30)
    orig = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    new = np.asarray(out.convert("RGB")).astype(int)
    assert np.abs(new[:, :5] - orig[:, :5]).max() <= 1  # outside the centred 30x30 crop: untouched
    assert np.abs(new[:, 5:35] - orig[:, 5:35]).mean() > 1  # the crop itself: the edited render


def test_an_uploaded_photo_is_tuned_and_its_share_link_carries_the_tuning(client, app_server, tmp_path):
    from gradio_client import Client

    photo = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photo)
    plain = client.predict(handle_file(str(photo)), 2, False, api_name="/upload")
    assert "tuned" not in plain[4]
    tuned = client.predict(handle_file(str(photo)), 2, True, api_name="/upload")
    assert "Generator tuned to the photo" in tuned[4] and "generator tuned to it" in tuned[4]
    assert not np.array_equal(_img(plain[0]), _img(tuned[0]))  # the same latent, drawn by the tuned generator
    assert len(kept_tokens(app_server.runtime, "tuning")) >= 1  # in the library database, for every replica
    edited = _edit(client, tmp_path, steps=2)[2]  # edits run on the tuned generator
    link = client.predict(api_name="/share")
    assert "?s=" in link
    other = Client(app_server.url, verbose=False, download_files=str(tmp_path / "other"))
    opened = other.predict(link, api_name="/open_share")
    assert np.array_equal(_img(opened[0]), _img(edited))  # drawn by the photo's tuned generator there too
    assert "generator tuned to a photo" in opened[4]


def test_a_photo_uploaded_untuned_is_tuned_later_at_its_embedded_latent(client, app_server, tmp_path):
    from gradio_client import Client

    client.predict(4, api_name="/sample")
    with pytest.raises(Exception, match="only a photo uploaded in this session"):
        client.predict(api_name="/tune")
    photo = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(photo)
    plain = client.predict(handle_file(str(photo)), 2, False, api_name="/upload")
    assert "tuned" not in plain[4]
    assert kept_tokens(app_server.runtime, "photo")  # the photo as the embedding saw it, with its latent
    edited = _edit(client, tmp_path, steps=2)[2]  # a change made before the tuning
    image, mask, overlay, editor, info = client.predict(api_name="/tune")
    assert "Generator tuned to the photo" in info and "generator tuned to it" in info and "1 change(s)" in info
    before, after = (float(x) for x in info.split("PSNR ")[-1].split(" dB")[0].split(" -> "))
    assert after > before  # the embedded latent now draws closer to the photo
    assert not np.array_equal(_img(image), _img(edited))  # the edited latent, drawn by the tuned generator
    with pytest.raises(Exception, match="already tuned"):
        client.predict(api_name="/tune")
    link = client.predict(api_name="/share")
    opened = Client(app_server.url, verbose=False, download_files=str(tmp_path / "o")).predict(link, api_name="/open_share")
    assert np.array_equal(_img(opened[0]), _img(image)) and "generator tuned to a photo" in opened[4]


def test_stop_keeps_the_best_result_so_far(client, tmp_path):
    import time

    client.predict(12, api_name="/sample")
    mask = write_target_mask(tmp_path / "target.png", 16, (3, 3, 12, 9), GLASSES)
    job = client.submit(None, handle_file(str(mask)), "optimization", 200, api_name="/edit")
    deadline = time.time() + 60
    while len(job.outputs()) == 0 and not job.done() and time.time() < deadline:
        time.sleep(0.05)
    assert client.predict(api_name="/stop") == "Stopping…"
    result = job.result(timeout=60)
    text = result[6]
    assert "stopped early" in text
    steps_run = int(text.split("| steps run | ")[1].split(" ")[0])
    assert steps_run < 200
    assert client.predict(api_name="/stop") == "No edit is running."


def test_edit_with_an_editor_value_of_painted_layers(client, tmp_path):
    """The mask editor's own value format over the API: a 512 px RGBA layer painted in a class colour."""
    client.predict(13, api_name="/sample")
    layer = np.zeros((512, 512, 4), np.uint8)
    layer[100:300, 64:448] = (*GLASSES, 255)
    path = tmp_path / "layer.png"
    Image.fromarray(layer, "RGBA").save(path)
    value = {"background": None, "layers": [handle_file(str(path))], "composite": None}
    before, after, image, mask, overlay, editor, metrics, info = client.predict(value, None, "optimization", 3,
                                                                                api_name="/edit")  # fmt: skip
    assert "mask edit" in metrics and "steps run | 3" in metrics
    assert "1 change(s)" in info


def test_the_author_changes_and_deletes_a_saved_vector(client, tmp_path):
    """A vector saved private can be made public, renamed and retagged from the app, and deleted (before, only the
    Python API could)."""
    client.predict(9, api_name="/sample")
    _edit(client, tmp_path)
    _, vid = client.predict("Quiet glasses", "", "", "private", False, api_name="/save_edit")
    vid = int(vid)
    msg = client.predict(vid, "Loud glasses", "now for everyone", "glasses, Round Lenses", "public",
                         api_name="/update_vector")  # fmt: skip
    assert f"#{vid} Loud glasses" in msg and "public" in msg
    page = client.predict(vid, api_name="/vector")[0]
    assert "Loud glasses" in page and "now for everyone" in page and "round\\-lenses" in page  # markdown-escaped
    _, table = client.predict("loud", "", "", "relevance", api_name="/search")
    assert [r[0] for r in _table_rows(table)] == [vid]
    with pytest.raises(Exception, match="must not be empty|name"):
        client.predict(vid, "", "", "", "public", api_name="/update_vector")
    with pytest.raises(Exception, match="tick 'yes, delete it' first"):
        client.predict(vid, False, api_name="/delete_vector")
    assert client.predict(vid, True, api_name="/delete_vector")[0] == f"Deleted vector #{vid}."
    with pytest.raises(Exception, match=f"{vid}"):
        client.predict(vid, api_name="/vector")
    _, table = client.predict("loud", "", "", "relevance", api_name="/search")
    assert _table_rows(table) == []
