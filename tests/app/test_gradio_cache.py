"""app/gradio_cache.py: Gradio's image cache written atomically, so identical pictures returned at once (two
users on one seed, identical searches on two replicas) never truncate each other while one is being sent."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gradio import processing_utils
from PIL import Image

from app import gradio_cache


def _picture(seed: int = 0, size: int = 256) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_install_routes_gradios_image_writes_through_the_atomic_writer(tmp_path):
    gradio_cache.install()
    gradio_cache.install()  # idempotent
    assert processing_utils.save_pil_to_cache is gradio_cache.save_pil_to_cache
    # arrays (gr.Image / gr.Gallery of numpy) go through it as well
    arr = np.asarray(_picture(1, 32))
    path = Path(processing_utils.save_img_array_to_cache(arr, str(tmp_path), format="png"))
    assert path.parent.parent == tmp_path.resolve()
    assert np.array_equal(np.asarray(Image.open(path)), arr)


def test_same_path_and_bytes_as_gradios_own_writer(tmp_path):
    img = _picture(2, 48)
    data = processing_utils.encode_pil_to_bytes(img, "webp")
    ours = Path(gradio_cache.save_pil_to_cache(img, str(tmp_path / "a")))
    expected = (tmp_path / "a" / processing_utils.hash_bytes(data) / "image.webp").resolve()
    assert ours == expected and ours.read_bytes() == data
    assert not [p for p in ours.parent.iterdir() if p.name.startswith(".")]  # no staging file left
    assert oct(ours.stat().st_mode & 0o777) == oct(0o644)


def test_an_existing_file_is_kept_not_rewritten(tmp_path):
    img = _picture(3, 64)
    first = Path(gradio_cache.save_pil_to_cache(img, str(tmp_path), format="png"))
    before = first.stat()
    os.utime(first, (before.st_atime - 100, before.st_mtime - 100))  # aged, as by an old first use
    with open(first, "rb") as reader:  # a response streaming it
        head = reader.read(100)
        again = Path(gradio_cache.save_pil_to_cache(img, str(tmp_path), format="png"))
        rest = reader.read()
    assert again == first and first.stat().st_ino == before.st_ino
    assert head + rest == first.read_bytes()
    assert first.stat().st_mtime > before.st_mtime - 50  # touched: the cache cleaner ages it from this use


def test_a_failed_write_leaves_no_file_behind(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(gradio_cache.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        gradio_cache.save_pil_to_cache(_picture(4, 32), str(tmp_path))
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_concurrent_identical_writes_never_show_a_reader_a_partial_file(tmp_path):
    img = _picture(5, 384)  # ~440 KB as PNG: a write takes long enough for an in-place rewrite to be caught
    data = processing_utils.encode_pil_to_bytes(img, "png")
    path = (tmp_path / processing_utils.hash_bytes(data) / "image.png").resolve()
    stop = threading.Event()
    seen: list[int] = []

    def writer():
        while not stop.is_set():
            gradio_cache.save_pil_to_cache(img, str(tmp_path), format="png")

    def cleaner():  # as Gradio's cache cleaner would, often: the writers keep writing afresh
        while not stop.is_set():
            time.sleep(0.05)
            path.unlink(missing_ok=True)

    def reader():
        while not stop.is_set():
            try:
                with open(path, "rb") as f:
                    seen.append(len(f.read()))
            except FileNotFoundError:
                pass

    threads = [threading.Thread(target=f) for f in (writer, writer, writer, reader, cleaner)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert seen, "the reader never found the file"
    assert set(seen) == {len(data)}, f"partial reads: {sorted(set(seen))[:5]}"
