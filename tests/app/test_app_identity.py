"""Who may do what: a users file puts a login in front of the app and publishes as that user;
anonymous visitors apply library vectors but cannot publish or like."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file

from app.config import AppConfig
from app.handlers import Handlers
from app.identity import Identity
from app.runtime import Runtime
from app.session import EditSession
from app.testing import launch_app, write_target_mask
from core.vector_format import VectorFile
from vector_library import VectorMetadata


def test_users_file_login_and_publishing_as_that_user(tiny_bundle, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("carol:pa55word\n")
    ident = Identity.resolve(oauth=False, users_file=users, local_user=None, host="0.0.0.0")
    app = launch_app(tiny_bundle, tmp_path / "data", identity=ident)
    try:
        with pytest.raises(Exception):
            Client(app.url, verbose=False, auth=("carol", "wrong"))
        c = Client(app.url, verbose=False, auth=("carol", "pa55word"), download_files=str(tmp_path / "dl"))
        c.predict(1, api_name="/sample")
        target = write_target_mask(tmp_path / "t.png", 16, (2, 2, 10, 10), (0, 200, 60))
        c.predict(None, handle_file(str(target)), "optimization", 2, api_name="/edit")
        msg, vid = c.predict("Carol's edit", "", "", "public", api_name="/save_edit")
        _, table = c.predict("carol", "", "", "relevance", api_name="/search")
        assert [row[2] for row in table["data"]] == ["carol"]
    finally:
        app.demo.close()


def test_anonymous_may_apply_but_not_publish(tiny_bundle, tmp_path):
    cfg = AppConfig(model=str(tiny_bundle), database_url=f"sqlite:///{tmp_path / 'lib.sqlite3'}", data_dir=tmp_path,
                    example_seeds=())  # fmt: skip
    rt = Runtime.create(cfg, Identity("anonymous"))
    rt.library.ensure_user("dave")
    vf = VectorFile(delta=np.full(rt.model.latent_shape, 0.2, np.float32), model_id=rt.model_id,
                    edited_classes=("hair",), name="shared")  # fmt: skip
    vid = rt.library.publish("dave", vf, VectorMetadata()).id
    h = Handlers(rt)
    state = h.sample(2, EditSession(), None)[-1]
    image, state = h.apply(vid, 1.0, state, None)
    assert image.shape == (16, 16, 3)
    state.last_edit = {"delta": np.zeros(rt.model.latent_shape, np.float32), "classes": ("hair",), "metrics": {},
                       "preview": None, "label": "x"}  # fmt: skip
    with pytest.raises(gr.Error, match="signed-in user"):
        h.save_edit("mine", "", "", "public", True, state, None)
    with pytest.raises(gr.Error, match="signed-in user"):
        h.like(vid, None)
    assert "Anonymous mode" in h.on_load(EditSession(), None)[0]


def test_oauth_mode_publishes_as_the_signed_in_hugging_face_user(tiny_bundle, tmp_path):
    """Our side of Space sign-in: Gradio hands the handlers a gr.OAuthProfile (or None when signed out)."""
    cfg = AppConfig(model=str(tiny_bundle), database_url=f"sqlite:///{tmp_path / 'lib.sqlite3'}", data_dir=tmp_path,
                    example_seeds=())  # fmt: skip
    ident = Identity.resolve(oauth=True, users_file=None, local_user=None, host="0.0.0.0")
    rt = Runtime.create(cfg, ident)
    h = Handlers(rt)
    state = h.sample(2, EditSession(), None)[-1]
    state.last_edit = {"delta": np.full(rt.model.latent_shape, 0.1, np.float32), "classes": ("hair",),
                       "metrics": {}, "preview": None, "label": "x"}  # fmt: skip
    with pytest.raises(gr.Error, match="signed-in user"):
        h.save_edit("signed out", "", "", "public", True, state, None, None)
    profile = gr.OAuthProfile({"preferred_username": "erin", "name": "Erin", "profile": "https://huggingface.co/erin",
                               "picture": ""})  # fmt: skip
    msg, vid = h.save_edit("Erin's edit", "", "", "public", True, state, None, profile)
    assert rt.library.get(vid).author == "erin"
    assert "Sign in with Hugging Face" in h.on_load(EditSession(), None)[0]
