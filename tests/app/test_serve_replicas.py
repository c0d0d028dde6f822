"""scripts/serve_replicas.sh: one app process per core behind nginx, each browser kept on its replica by a cookie.

Two replicas of the tiny bundle on one PostgreSQL schema: a browser without the cookie is sent to either and
given a key; with it, every request reaches the same replica; fresh browsers reach both; a gradio_client session
through the proxy samples and applies (the queue's event stream passes nginx). Refused settings exit before
anything starts. Skipped, with the reason, without nginx or PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from app.testing import free_ports

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs nginx-light)")


def _get(url: str, cookie: str | None = None) -> tuple[str | None, str | None]:
    """(the replica that answered, the cookie key set) for one request."""
    req = urllib.request.Request(url, headers={"Cookie": f"editgan_replica={cookie}"} if cookie else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        set_cookie = r.headers.get("Set-Cookie", "")
        key = set_cookie.split("editgan_replica=", 1)[1].split(";", 1)[0] if "editgan_replica=" in set_cookie else None
        return r.headers.get("X-EditGAN-Replica"), key


@pytest.fixture(scope="module")
def served(tiny_bundle, pg_schema_url, tmp_path_factory):
    port = free_ports(3)  # nginx, then the two replicas: FIRST_PORT+1 must be free too
    first = port + 1
    run = tmp_path_factory.mktemp("run")
    env = dict(os.environ, REPLICAS="2", PORT=str(port), FIRST_PORT=str(first), RUN_DIR=str(run), NGINX=NGINX,
               EDITGAN_MODEL=str(tiny_bundle), EDITGAN_DATABASE_URL=pg_schema_url, EDITGAN_LOCAL_USER="alice",
               EDITGAN_DATA_DIR=str(tmp_path_factory.mktemp("data")), GRADIO_ANALYTICS_ENABLED="False")  # fmt: skip
    log = open(run / "serve.log", "w")
    proc = subprocess.Popen(["bash", "scripts/serve_replicas.sh"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    try:
        while True:
            try:
                _get(url)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"serve_replicas did not come up: {(run / 'serve.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, first
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:  # the script exited already (the failure above says why)
            pass
        proc.wait(timeout=60)
        log.close()
    for p in (port, first, first + 1):  # nginx and both replicas are gone
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=5)


def test_a_browser_stays_on_its_replica_and_new_browsers_reach_both(served):
    url, first = served
    replica, key = _get(url)
    assert key and replica in (f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}")
    for _ in range(6):
        again, same_key = _get(url + "config", key)
        assert again == replica and same_key == key
    seen = {_get(url)[0] for _ in range(20)}
    assert seen == {f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"}


def test_a_client_session_through_the_proxy_samples_and_applies(served):
    from gradio_client import Client

    url, _ = served
    _, key = _get(url)
    c = Client(url, verbose=False, headers={"Cookie": f"editgan_replica={key}"})
    image = c.predict(3, api_name="/sample")[0]
    assert Path(image).exists()


@pytest.mark.parametrize("env, says", [
    ({"REPLICAS": "2"}, "share the library through PostgreSQL"),
    ({"REPLICAS": "two"}, "REPLICAS must be a whole number"),
    ({"REPLICAS": "1", "NGINX": "/nonexistent/nginx"}, "nginx not found"),
])  # fmt: skip
def test_refused_settings_exit_before_starting_anything(env, says, tmp_path):
    full = {k: v for k, v in os.environ.items() if k != "EDITGAN_DATABASE_URL"}
    full.update(env, RUN_DIR=str(tmp_path / "run"), EDITGAN_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run(["bash", "scripts/serve_replicas.sh"], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert not (tmp_path / "data").exists()
