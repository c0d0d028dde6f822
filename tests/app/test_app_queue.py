"""Many users: heavy edits share one pool and the queue has a size limit; a full queue says "busy"
(gradio_client raises QueueError; the page shows "This application is currently busy")."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

from app.testing import launch_app, write_target_mask


def test_full_queue_answers_busy_and_recovers(tiny_bundle, tmp_path):
    app = launch_app(tiny_bundle, tmp_path / "data", queue_size=1, heavy_workers=1)
    try:
        mask = handle_file(str(write_target_mask(tmp_path / "t.png", 16, (2, 2, 10, 10), (0, 200, 60))))
        a, b, c = (Client(app.url, verbose=False, download_files=str(tmp_path / n)) for n in "abc")
        for client in (a, b, c):
            client.predict(3, api_name="/sample")
        long_job = a.submit(None, mask, "optimization", 200, api_name="/edit")
        deadline = time.time() + 60
        while not long_job.outputs() and time.time() < deadline:  # A holds the heavy pool
            time.sleep(0.05)
        waiting = b.submit(None, mask, "optimization", 2, api_name="/edit")  # B waits: the queue is full
        time.sleep(1.0)
        with pytest.raises((QueueError, AppError), match="(?i)queue is full"):
            c.predict(None, mask, "optimization", 2, api_name="/edit")
        # Stop is wired with queue=False: a direct POST answers even while the queue is full
        # (gradio_client itself always joins the queue, so it is called over plain HTTP here)
        body = json.dumps({"data": [], "session_hash": a.session_hash}).encode()
        req = urllib.request.Request(app.url + "gradio_api/run/stop", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        assert json.load(urllib.request.urlopen(req, timeout=30))["data"] == ["Stopping…"]
        assert "stopped early" in long_job.result(timeout=60)[6]
        assert "mask edit" in waiting.result(timeout=60)[6]
        assert "mask edit" in c.predict(None, mask, "optimization", 2, api_name="/edit")[6]  # C gets in now
    finally:
        app.demo.close()


def test_slider_updates_do_not_wait_behind_an_edit(app_server, tmp_path):
    """Sliders run in the light pool: while an edit holds the heavy pool, /apply keeps answering."""
    import numpy as np

    from core.vector_format import VectorFile
    from vector_library import VectorMetadata

    rt = app_server.runtime
    rt.library.ensure_user("alice")
    vf = VectorFile(delta=np.full(rt.model.latent_shape, 0.05, np.float32), model_id=rt.model_id,
                    edited_classes=("hair",), name="queue probe")  # fmt: skip
    vid = rt.library.publish("alice", vf, VectorMetadata(name="queue probe")).id
    mask = handle_file(str(write_target_mask(tmp_path / "t.png", 16, (2, 2, 10, 10), (0, 200, 60))))
    editor, slider = (Client(app_server.url, verbose=False, download_files=str(tmp_path / n)) for n in "es")
    editor.predict(3, api_name="/sample")
    slider.predict(4, api_name="/sample")
    long_job = editor.submit(None, mask, "optimization", 200, api_name="/edit")
    deadline = time.time() + 60
    while not long_job.outputs() and time.time() < deadline:  # the edit is running
        time.sleep(0.05)
    answered = 0
    for s in (0.2, 0.6, 1.0):
        slider.predict(vid, s, api_name="/apply")
        answered += 1
    assert answered == 3 and not long_job.done(), "the slider answered only after the edit"
    long_job.cancel()
    editor.predict(api_name="/stop")
