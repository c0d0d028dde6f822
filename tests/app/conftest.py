"""Fixtures of the app suite: a tiny complete bundle, a generator-only copy, and one launched app.

The launched app (session scope: the suite pays for one start) is the real build_demo on the tiny
16 px bundle with a real SQLite library in a temporary folder, single-user identity "alice", on a
free port, closed at the end. Each test makes its own gradio_client Client (= its own browser
session), so per-session state never leaks between tests; library rows are shared, so tests use
distinct names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.testing import launch_app
from core.testing import make_tiny_bundle


@pytest.fixture(scope="module")
def pg_schema_url():
    """A private schema on the test PostgreSQL server, as a URL app processes use (dropped afterwards); skipped,
    with the reason, when there is no server ($EDITGAN_TEST_PG_URL, which .ci/run sets)."""
    from db.testing import postgres_url, private_schema

    url, why = postgres_url()
    if url is None:
        pytest.skip(why)
    with private_schema(url, "replicas") as schema_url:
        yield schema_url


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="session")
def generator_only_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """The tiny bundle without branch and encoder: what checkpoints/faces64 is while its branch trains."""
    folder = tmp_path_factory.mktemp("bundle") / "generator-only"
    folder.mkdir()
    for name in ("generator.safetensors", "config.json"):
        shutil.copy(tiny_bundle / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def blob_generator(tmp_path_factory) -> Path:
    """A generator alone that is not a face: random weights, no branch, no encoder, no classes (#23)."""
    import torch

    from core.checkpoint import save_generator
    from core.generator import Generator
    from core.testing import TINY_GENERATOR

    folder = tmp_path_factory.mktemp("blobs") / "blobs"
    torch.manual_seed(7)
    g = Generator(TINY_GENERATOR).eval()
    g.compute_w_avg(256)
    save_generator(g, folder, extra={"name": "blobs"})
    return folder


@pytest.fixture(scope="session")
def app_server(tiny_bundle, tmp_path_factory):
    launched = launch_app(tiny_bundle, tmp_path_factory.mktemp("app-data"))
    yield launched
    launched.demo.close()


@pytest.fixture
def client(app_server, tmp_path):
    from gradio_client import Client

    return Client(app_server.url, verbose=False, download_files=str(tmp_path / "downloads"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Record each phase's report on the test item, so the browser fixture can screenshot failures."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
