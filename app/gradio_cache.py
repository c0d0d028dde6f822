"""Atomic writes into Gradio's file cache.

Gradio saves every image an event returns (``gr.Image``, ``gr.Gallery``, ...) to
``<cache>/<sha256 of the encoded bytes>/image.<format>`` with ``Path.write_bytes``, which truncates the file
and writes it again in place. Two requests that return the same picture at once (two users opening the same
seed, identical library searches, two replicas sharing /tmp/gradio) write the same path: a response that is
streaming the file while the other request truncates it ends with "Too little data for declared
Content-Length" and a broken image in the browser.

The path is named by the bytes' hash, so a file already there holds exactly those bytes. ``install()``
replaces Gradio's writer with one that keeps an existing file (touching it, so that the cache cleaner ages it
from its last use) and otherwise writes under a temporary name and renames it into place: a reader sees the
whole file or no file, never a partial one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image

_installed = False


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file; keep ``path`` if it exists
    (content-addressed: it already holds ``data``)."""
    if path.exists():
        try:
            os.utime(path)
        except OSError:
            pass
        return
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def save_pil_to_cache(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's ``processing_utils.save_pil_to_cache`` (same signature, same path), written atomically."""
    from gradio import processing_utils

    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    atomic_write(path, data)
    return str(path)


def install() -> None:
    """Make Gradio's image cache writes atomic in this process (idempotent)."""
    global _installed
    if _installed:
        return
    from gradio import processing_utils

    for needed in ("save_pil_to_cache", "encode_pil_to_bytes", "hash_bytes", "save_img_array_to_cache"):
        if not hasattr(processing_utils, needed):  # a Gradio that moved them: say so rather than run unsafely
            raise RuntimeError(f"gradio.processing_utils.{needed} is gone: app/gradio_cache.py needs updating "
                               f"for this Gradio version")  # fmt: skip
    processing_utils.save_pil_to_cache = save_pil_to_cache  # save_img_array_to_cache looks it up by name too
    _installed = True
