"""Two app replicas on one PostgreSQL database (issue #24): two `python app.py` processes, each with its own
data directory, as behind a load balancer with sticky sessions.

A vector published and a photo tuned on one replica are applied, liked, shared and composed on the other; a
share link made on one opens on the other (with the photo's generator tuning, which the other never saw, read
from the database as after a restart); like toggles by the same user on both at once end in the state the
clicks imply; identical searches at once all succeed, thumbnails included. Skipped, with the reason, when
PostgreSQL is not there ($EDITGAN_TEST_PG_URL, which .ci/run sets).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app.testing import start_app_process, write_target_mask
from db import Database, DatabaseConfig
from vector_library import VectorLibrary

GLASSES = (0, 200, 60)  # palette colour of "glasses"
TOGGLES_PER_CLIENT = 3  # 2 replicas x 2 tabs x 3 = 12 clicks at once


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def replicas(tiny_bundle, pg_schema_url, tmp_path_factory):
    apps = [start_app_process(tiny_bundle, tmp_path_factory.mktemp(f"replica{i}"), pg_schema_url) for i in (1, 2)]
    try:
        for a in apps:  # both start (and migrate the empty schema) at once
            a.wait_ready()
        yield apps
    finally:
        for a in apps:
            a.stop()
        for a in apps:
            assert "Traceback" not in a.output(), a.output()[-3000:]


def _client(app, folder) -> Client:
    return Client(app.url, verbose=False, download_files=str(folder))


def test_two_replicas_share_one_library(replicas, pg_schema_url, tmp_path):
    one, two = (_client(r, tmp_path / f"c{i}") for i, r in enumerate(replicas))

    # publish on replica 1: a mask edit saved as a vector (with its preview)
    one.predict(5, api_name="/sample")
    mask = write_target_mask(tmp_path / "target.png", 16, (3, 3, 12, 9), GLASSES)
    one.predict(None, handle_file(str(mask)), "optimization", 2, api_name="/edit")
    msg, vid = one.predict("Replica glasses", "", "replicas", "public", False, api_name="/save_edit")
    assert "Saved as vector" in msg
    vid = int(vid)

    # replica 2 finds it, applies it (same pixels as replica 1 draws), likes it
    gallery, table = two.predict("replica glasses", "", "", "relevance", api_name="/search")
    assert [row[0] for row in (table["data"] if isinstance(table, dict) else table)] == [vid] and len(gallery) == 1
    two.predict(5, api_name="/sample")
    one.predict(5, api_name="/sample")
    applied = _img(two.predict(vid, 0.5, api_name="/apply"))
    assert np.array_equal(applied, _img(one.predict(vid, 0.5, api_name="/apply")))
    assert two.predict(vid, api_name="/like") == "Liked · 1 like(s)"

    # a share link made on replica 1 (an edited state, so a token) opens on replica 2
    one.predict(api_name="/keep")
    link = one.predict(api_name="/share")
    assert "?s=" in link
    assert np.array_equal(_img(two.predict(link, api_name="/open_share")[0]), applied)

    # a photo tuned on replica 1: its link opens on replica 2, drawn by the tuning read from the database
    photo = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photo)
    tuned = one.predict(handle_file(str(photo)), 2, True, api_name="/upload")
    assert "Generator tuned to the photo" in tuned[4]
    opened = two.predict(one.predict(api_name="/share"), api_name="/open_share")
    assert np.array_equal(_img(opened[0]), _img(tuned[0])) and "tuned to a photo" in opened[4]

    # a composition saved on replica 1 loads on replica 2
    msg = one.predict("Replica pair", "public", str(vid), None, None, None, 0.5, 1.0, 1.0, 1.0,
                      api_name="/save_composition")  # fmt: skip
    comp_id = msg.split("#", 1)[1].split(" ", 1)[0]
    *slots, opened_msg = two.predict(comp_id, api_name="/load_composition")
    assert slots[0] == str(vid) and "Replica pair" in opened_msg

    # the same user clicks Like on both replicas at once, from two tabs each
    clients = [_client(r, tmp_path / f"t{i}{j}") for i, r in enumerate(replicas) for j in range(2)]
    barrier = threading.Barrier(len(clients))

    def toggles(c: Client) -> list[str]:
        barrier.wait()
        return [c.predict(vid, api_name="/like") for _ in range(TOGGLES_PER_CLIENT)]

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = [a for got in pool.map(toggles, clients) for a in got]
    clicks = 1 + len(answers)  # replica 2's like above, then these
    liked = clicks % 2 == 1
    lib = VectorLibrary(Database(DatabaseConfig(url=pg_schema_url)))
    try:
        assert lib.has_liked("alice", vid) == liked and lib.get(vid).like_count == int(liked)
    finally:
        lib.db.dispose()
    # every click changed the state, starting from liked: half the answers say liked, each with its count
    assert sorted(answers) == sorted(["Liked · 1 like(s)"] * (len(answers) // 2)
                                     + ["Not liked · 0 like(s)"] * ((len(answers) + 1) // 2))  # fmt: skip

    # identical searches at once on both replicas: every response complete, every thumbnail the same bytes
    def search(c: Client):
        return c.predict("replica glasses", "", "", "relevance", api_name="/search")

    with ThreadPoolExecutor(len(clients)) as pool:
        for _ in range(3):
            results = list(pool.map(search, clients + clients))
            thumbs = {open(g[0]["image"], "rb").read() for g, _ in results}
            assert len(thumbs) == 1 and all(len(g) == 1 for g, _ in results)
