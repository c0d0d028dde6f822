"""Bad input through the API of a launched app: each gets a readable message and the session keeps
working (its image, history and applied vectors are unchanged)."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load, save
from safetensors.torch import load as torch_load
from safetensors.torch import save as torch_save
from sqlalchemy import delete, update

from app.testing import kept_tokens, write_target_mask
from core.vector_format import VectorFile
from db.models import KeptFile
from vector_library import ModelSpec, VectorMetadata

OTHER = ModelSpec("ab" * 8, "other model", 16, 6, 32, ("background", "skin"))


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _still_works(client, image_before):
    """The session's image is unchanged and the next action succeeds."""
    files, _ = client.predict(api_name="/export")
    assert np.array_equal(_img([f for f in files if f.endswith("image.png")][0]), _img(image_before))
    assert _img(client.predict(1, api_name="/sample")[0]).shape == (16, 16, 3)


@pytest.fixture
def started(client):
    return client.predict(2, api_name="/sample")[0]


def test_non_image_uploads_are_refused(client, started, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(Exception, match="Invalid file type"):
        client.predict(handle_file(str(text)), 0, api_name="/upload")
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG but not really" * 10)
    with pytest.raises(Exception, match="not a readable image"):
        client.predict(handle_file(str(fake)), 0, api_name="/upload")
    _still_works(client, started)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # raised by our own Image.new
def test_a_50_megapixel_image_is_refused_before_decoding(client, started, tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (8000, 6300)).save(big, optimize=False)  # 50.4 MP, a few hundred KB on disk
    with pytest.raises(Exception, match="50 MP"):
        client.predict(handle_file(str(big)), 0, api_name="/upload")
    _still_works(client, started)


def test_empty_and_bad_mask_edits(client, started, tmp_path):
    with pytest.raises(Exception, match="nothing is painted"):
        client.predict({"background": None, "layers": [], "composite": None}, None, "optimization", 5,
                       api_name="/edit")  # fmt: skip
    empty = write_target_mask(tmp_path / "empty.png", 16, (0, 0, 0, 0), (0, 0, 0))
    with pytest.raises(Exception, match="paints nothing"):
        client.predict(None, handle_file(str(empty)), "optimization", 5, api_name="/edit")
    current = np.asarray(Image.open(client.predict(api_name="/export")[0][1]).convert("RGB"))  # mask.png
    same = tmp_path / "same.png"
    Image.fromarray(current).save(same)  # every pixel opaque, every class as it is
    with pytest.raises(Exception, match="equals the current mask"):
        client.predict(None, handle_file(str(same)), "optimization", 5, api_name="/edit")
    off = write_target_mask(tmp_path / "off.png", 16, (2, 2, 9, 9), (90, 90, 200))  # no class has this colour
    with pytest.raises(Exception, match="not in the class palette"):
        client.predict(None, handle_file(str(off)), "optimization", 5, api_name="/edit")
    with pytest.raises(Exception, match="no vectors are applied"):
        client.predict(None, None, "vector", 5, api_name="/edit")
    _still_works(client, started)


def test_vectors_of_another_model_are_refused(client, app_server, started, tmp_path):
    lib = app_server.runtime.library
    lib.register_model(OTHER)
    rng = np.random.default_rng(0)
    foreign = VectorFile(delta=rng.standard_normal((6, 32)).astype(np.float32), model_id=OTHER.model_id,
                         edited_classes=("skin",), name="foreign")  # fmt: skip
    info = lib.publish("alice", foreign, VectorMetadata(name="Foreign smile"))
    with pytest.raises(Exception, match=f"belongs to model {OTHER.model_id}"):
        client.predict(info.id, 1.0, api_name="/apply")
    path = tmp_path / "foreign.safetensors"
    foreign.save(path)
    with pytest.raises(Exception, match="not to the loaded model"):
        client.predict(handle_file(str(path)), "", "", "public", api_name="/upload_vector")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04not a vector")
    with pytest.raises(Exception, match="pickle"):
        client.predict(handle_file(str(junk)), "", "", "public", api_name="/upload_vector")
    _still_works(client, started)


def test_bad_values_for_seed_scale_and_links(client, started):
    with pytest.raises(Exception, match=r"seed must be a whole number in \[0, 2147483647\], got -3"):
        client.predict(-3, api_name="/sample")  # named by the handler (Gradio's own check named no control)
    with pytest.raises(Exception, match="seed is empty"):
        client.predict(None, api_name="/sample")
    with pytest.raises(Exception, match="no vector 999999|not visible|does not exist"):
        client.predict(999999, 1.0, api_name="/apply")
    with pytest.raises(Exception, match="share link"):
        client.predict("?s=../../etc/passwd", api_name="/open_share")
    with pytest.raises(Exception, match="nothing to undo"):
        client.predict(api_name="/undo")
    _still_works(client, started)


def test_tuning_a_photo_whose_kept_file_is_damaged_or_gone_is_refused(client, app_server, tmp_path):
    photo = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(11).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(photo)
    shown = client.predict(handle_file(str(photo)), 1, False, api_name="/upload")[0]
    token = kept_tokens(app_server.runtime, "photo")[0]
    db = app_server.runtime.library.db

    def put(data):  # the kept photo's bytes in the library database, as damage or another model would leave them
        with db.writer.begin() as s:
            if data is None:
                s.execute(delete(KeptFile).where(KeptFile.kind == "photo", KeptFile.token == token))
            else:
                s.execute(update(KeptFile).where(KeptFile.kind == "photo", KeptFile.token == token).values(data=data))

    good = app_server.runtime.library.states.kept_file("photo", token).data
    put(good[:40])
    with pytest.raises(Exception, match="damaged"):
        client.predict(api_name="/tune")
    put(torch_save(torch_load(good), metadata={"format": "editgan-photo/1", "model_id": "ab" * 8}))
    with pytest.raises(Exception, match="another model"):
        client.predict(api_name="/tune")
    put(None)
    with pytest.raises(Exception, match="no longer kept"):
        client.predict(api_name="/tune")
    files, _ = client.predict(api_name="/export")
    assert np.array_equal(_img([f for f in files if f.endswith("image.png")][0]), _img(shown))  # session unchanged


def _png_claiming(path, width: int, height: int):
    """A valid small PNG whose header then claims ``width`` x ``height`` (a decompression bomb's header)."""
    import struct
    import zlib

    Image.new("L", (16, 16)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_unreadable_and_oversized_target_masks_get_the_upload_messages(client, started, tmp_path):
    """Each file /upload refuses readably, /edit's target mask refuses with the same message, not a traceback."""
    cases = {"empty.png": b"", "text.png": b"just some text, not a picture\n",
             "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect/></svg>'}  # fmt: skip
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    good = tmp_path / "good.png"
    write_target_mask(good, 64, (0, 0, 32, 32), (0, 200, 60))
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    _png_claiming(tmp_path / "bomb.png", 30_000, 30_000)  # 900 MP
    big = tmp_path / "big.png"
    Image.new("RGBA", (9000, 6000)).save(big)  # 54 MP: under PIL's own 2x guard, over our 50 MP limit
    expected = {"empty.png": "empty", "text.png": "not a readable image", "drawing.svg": "not a readable image",
                "truncated.png": "not a readable image", "bomb.png": "50 MP", "big.png": "50 MP"}  # fmt: skip
    for name, message in expected.items():
        with pytest.raises(Exception, match=message):
            client.predict(None, handle_file(str(tmp_path / name)), "optimization", 2, api_name="/edit")
    wide = tmp_path / "wide.png"
    Image.new("RGBA", (64, 32)).save(wide)
    with pytest.raises(Exception, match="must be square"):
        client.predict(None, handle_file(str(wide)), "optimization", 2, api_name="/edit")
    _still_works(client, started)


def test_a_512_px_target_mask_is_read_at_the_model_resolution(client, started, tmp_path):
    """The app's own editor paints at 512 px; an uploaded mask of that size is resized like the editor's layers."""
    mask = write_target_mask(tmp_path / "m512.png", 512, (64, 64, 320, 320), (0, 200, 60))
    out = client.predict(None, handle_file(str(mask)), "optimization", 2, api_name="/edit")
    assert "mask edit" in out[6]


def test_a_huge_finite_vector_is_refused(client, app_server, started, tmp_path):
    """All 1e30: finite, so a NaN check passes it, but it is no edit (it renders a solid square)."""
    delta = np.full((6, 32), 1e30, np.float32)
    with pytest.raises(ValueError, match="per-element RMS .* is 1e\\+30; at most"):
        VectorFile(delta=delta, model_id=app_server.runtime.model_id, edited_classes=("skin",), name="huge")
    # a file written by someone else's tool: the same check on reading
    good = VectorFile(delta=np.zeros((6, 32), np.float32), model_id=app_server.runtime.model_id,
                      edited_classes=("skin",), name="zero")  # fmt: skip
    path = tmp_path / "huge.safetensors"
    good.save(path)
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    tensors = load(good.to_bytes())
    tensors["delta"] = delta
    path.write_bytes(save(tensors, metadata=metadata))
    with pytest.raises(Exception, match="far larger than any edit"):
        client.predict(handle_file(str(path)), "huge", "", "public", api_name="/upload_vector")
    _still_works(client, started)


def test_apply_before_choosing_a_vector_says_so(client, started):
    for api in ("/apply", "/vector", "/like", "/download_vector"):
        args = ("", 1.0) if api == "/apply" else ("",)
        with pytest.raises(Exception, match="choose a vector first"):
            client.predict(*args, api_name=api)
    _still_works(client, started)
