"""Launching the real app on a tiny bundle, for tests and benchmarks (no mocks).

    from app.testing import launch_app
    launched = launch_app(bundle_folder, data_dir)      # real build_demo, SQLite library, free port
    ...                                                  # gradio_client.Client(launched.url) / a browser
    launched.demo.close()

    replica = start_app_process(bundle_folder, data_dir, database_url)   # `python app.py` in a subprocess
    replica.wait_ready(); ...; replica.stop()                            # (several of them: app replicas)
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def free_port() -> int:
    return free_ports(1)


def free_ports(n: int, low: int = 20000, high: int = 32000, tries: int = 200) -> int:
    """The first of ``n`` consecutive ports on 127.0.0.1 that are free now, below Linux's ephemeral range
    (32768-60999), where outgoing connections of other tests cannot take one of them after the check."""
    rnd = random.Random()
    for _ in range(tries):
        base = rnd.randrange(low, high - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no {n} consecutive free ports in {low}-{high}")


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


ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AppProcess:
    """``python app.py`` running in a subprocess (its output goes to ``log``)."""

    url: str
    proc: subprocess.Popen
    log: Path

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Until the API answers; a RuntimeError with the end of the log when the process exits or times out."""
        deadline = time.time() + timeout_s
        while time.time() < deadline and self.proc.poll() is None:
            try:
                urllib.request.urlopen(self.url + "gradio_api/info", timeout=5).read()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{self.url} did not start (exit code {self.proc.poll()}):\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_app_process(bundle: Path | str, data_dir: Path, database_url: str | None = None, user: str = "alice",
                      **env: str) -> AppProcess:  # fmt: skip
    """Start ``python app.py`` on ``bundle`` with its own ``data_dir`` and the library at ``database_url``
    (default: SQLite in ``data_dir``), single user ``user``, on a free loopback port; returns at once."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = dict(os.environ, EDITGAN_MODEL=str(bundle), EDITGAN_DATA_DIR=str(data_dir), EDITGAN_LOCAL_USER=user,
                    GRADIO_ANALYTICS_ENABLED="False", **env)  # fmt: skip
    full_env.pop("EDITGAN_DATABASE_URL", None)
    if database_url is not None:
        full_env["EDITGAN_DATABASE_URL"] = database_url
    log = data_dir / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    return AppProcess(f"http://127.0.0.1:{port}/", proc, log)


def kept_tokens(runtime, kind: str) -> list[str]:
    """Tokens of the files of ``kind`` ("photo" or "tuning") the app keeps in its library database, newest first."""
    from sqlalchemy import select

    from db.models import KeptFile

    with runtime.library.db.reader() as s:
        return list(s.scalars(select(KeptFile.token).where(KeptFile.kind == kind)
                              .order_by(KeptFile.created_at.desc(), KeptFile.token)))  # fmt: skip


def write_target_mask(path: Path, resolution: int, box: tuple[int, int, int, int], rgb) -> Path:
    """A target-mask PNG: transparent everywhere, one opaque box (x0, y0, x1, y1) painted ``rgb``."""
    a = np.zeros((resolution, resolution, 4), np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1, :3] = rgb
    a[y0:y1, x0:x1, 3] = 255
    Image.fromarray(a, "RGBA").save(path)
    return Path(path)
