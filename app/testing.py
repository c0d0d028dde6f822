"""Launching the real app on a tiny bundle, for tests and benchmarks (no mocks).

    from app.testing import launch_app
    launched = launch_app(bundle_folder, data_dir)      # real build_demo, SQLite library, free port
    ...                                                  # gradio_client.Client(launched.url) / a browser
    launched.demo.close()
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LaunchedApp:
    url: str
    runtime: object  # app.runtime.Runtime
    demo: object  # gr.Blocks
    data_dir: Path


def launch_app(bundle: Path | str, data_dir: Path, user: str | None = "alice", identity=None,
               **config) -> LaunchedApp:  # fmt: skip
    """build_demo on ``bundle`` with a SQLite library in ``data_dir``, launched on a free loopback port.
    ``user``: single-user identity (None: anonymous), unless an ``identity`` is given."""
    from app.config import AppConfig
    from app.identity import Identity
    from app.runtime import Runtime
    from app.ui import build_demo, launch_options, queue_options

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config.setdefault("example_seeds", (0, 1, 2, 3))
    cfg = AppConfig(model=str(bundle), database_url=f"sqlite:///{data_dir / 'library.sqlite3'}", data_dir=data_dir,
                    **config)  # fmt: skip
    if identity is None:
        identity = Identity("single", local_user=user) if user else Identity("anonymous")
    runtime = Runtime.create(cfg, identity)
    demo = build_demo(runtime)
    demo.queue(**queue_options(runtime))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(runtime))  # fmt: skip
    return LaunchedApp(f"http://127.0.0.1:{port}/", runtime, demo, data_dir)


def write_target_mask(path: Path, resolution: int, box: tuple[int, int, int, int], rgb) -> Path:
    """A target-mask PNG: transparent everywhere, one opaque box (x0, y0, x1, y1) painted ``rgb``."""
    a = np.zeros((resolution, resolution, 4), np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1, :3] = rgb
    a[y0:y1, x0:x1, 3] = 255
    Image.fromarray(a, "RGBA").save(path)
    return Path(path)
