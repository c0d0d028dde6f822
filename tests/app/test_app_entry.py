"""The README's first command: ``python app.py`` starts a working editor (here on the tiny bundle via
EDITGAN_MODEL, a SQLite library in the temporary --data-dir), and importing app.py launches nothing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_importing_app_py_does_not_launch():
    spec = importlib.util.spec_from_file_location("app_entry", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # would block or start a server if launch ran at import
    args = module.build_parser().parse_args(["--port", "8001", "--model", "x"])
    assert args.port == 8001 and args.model == "x"


def test_python_app_py_serves_the_editor(tiny_bundle, tmp_path):
    port = free_port()
    env = dict(os.environ, EDITGAN_MODEL=str(tiny_bundle), EDITGAN_DATA_DIR=str(tmp_path / "env-data"),
               GRADIO_ANALYTICS_ENABLED="False")  # fmt: skip
    env.pop("EDITGAN_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", str(tmp_path / "data")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline, page = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None, f"no page (exit code {proc.poll()})"
        assert "EditGAN editor" in page  # the tab title
        info = urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=10).read().decode()
        for name in ("/sample", "/edit", "/save_edit", "/search", "/apply", "/compose", "/share"):
            assert f'"{name}"' in info
        assert (tmp_path / "data" / "library.sqlite3").exists()  # --data-dir wins over EDITGAN_DATA_DIR
        assert not (tmp_path / "env-data" / "library.sqlite3").exists()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Traceback" not in out, out[-3000:]
