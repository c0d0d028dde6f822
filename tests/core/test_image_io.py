import io

import numpy as np
import pytest
from PIL import Image

from core.image_io import CropBox, load_image, paste_back, square, to_model_input, to_pil


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_grayscale_rgba_16bit_and_palette_become_rgb():
    gray = Image.fromarray(np.full((20, 30), 100, np.uint8), "L")
    rgba = Image.fromarray(np.zeros((20, 20, 4), np.uint8), "RGBA")  # fully transparent -> white
    deep = Image.fromarray(np.full((20, 20), 65535, np.uint16))
    pal = gray.convert("P")
    assert load_image(_png(gray)).mode == "RGB"
    assert np.asarray(load_image(rgba))[0, 0].tolist() == [255, 255, 255]
    assert np.asarray(load_image(_png(deep)))[0, 0].tolist() == [255, 255, 255]
    assert load_image(pal).mode == "RGB"
    assert load_image(np.full((20, 20), 1.0, np.float32)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.full((20, 20, 3), 257 * 10, np.uint16)).getpixel((0, 0)) == (10, 10, 10)


@pytest.mark.parametrize(
    "data,msg",
    [
        (b"definitely not an image", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image"),
        (np.zeros((10, 40, 3), np.uint8), "at least 16"),
        (np.full((20, 20), np.nan, np.float32), "NaN"),
        (np.zeros((20, 20, 2), np.uint8), r"\[H, W\]"),
        (np.zeros((20, 20), np.int64), "dtype"),
    ],
)
def test_bad_inputs_are_clear_errors(data, msg):
    with pytest.raises(ValueError, match=msg):
        load_image(data)


def test_truncated_png_is_refused():
    data = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(data[: len(data) // 2])


def test_huge_image_is_refused_before_decoding():
    big = Image.new("1", (8000, 7000))  # 56 MP, tiny as a PNG
    with pytest.raises(ValueError, match="50 MP"):
        load_image(_png(big))


def test_crop_and_pad_policies_and_paste_back():
    a = np.zeros((40, 100, 3), np.uint8)
    a[:, 30:70] = 200
    img = Image.fromarray(a)
    sq, box = square(img, "crop")
    assert sq.size == (40, 40) and box == CropBox(30, 0, 40, 100, 40)
    sq2, box2 = square(img, "pad")
    assert sq2.size == (100, 100) and (box2.left, box2.top) == (0, -30)
    x, box3 = to_model_input(img, 16)
    assert x.shape == (1, 3, 16, 16) and box3 == box
    assert x.min() >= -1 and x.max() <= 1
    edited = Image.new("RGB", (16, 16), (255, 0, 0))
    out = paste_back(img, edited, box)
    o = np.asarray(out)
    assert out.size == (100, 40)
    assert o[20, 50].tolist() == [255, 0, 0] and o[20, 5].tolist() == [0, 0, 0]
    out_pad = paste_back(img, edited, box2)
    assert np.asarray(out_pad)[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(ValueError, match="policy"):
        square(img, "stretch")


def test_to_pil_round_trip():
    x, _ = to_model_input(np.full((16, 16, 3), 128, np.uint8), 16)
    assert np.asarray(to_pil(x))[0, 0].tolist() == [128, 128, 128]


def test_a_file_in_no_image_format_is_named_so_without_python_internals():
    with pytest.raises(ValueError) as e:
        load_image(b"plain text, saved as photo.png")
    assert "no image format" in str(e.value) and "0x" not in str(e.value) and "BytesIO" not in str(e.value)
