"""The README's examples run, so the front door cannot go stale.

The README's fenced ``python`` blocks and every ``python -m core.cli`` line of its ``bash`` blocks run
here, in the order they appear, on the tiny 16 px bundle of :mod:`core.testing` instead of the shipped
model. The only substitution: in the Python blocks the model name ``"faces64"`` and the folder
``checkpoints/faces64`` become the tiny bundle's folder; each CLI line gets ``--model <that folder>``
ahead of its command (or has its ``--model`` value replaced). Everything else runs as written, so an
example whose API has drifted fails here. They run in a temporary folder that holds the files the
examples name as the user's own (``photo.jpg``, ``photos/``).

Relative links in the README and docs/ must name files that exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.testing import make_tiny_bundle

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
MODEL_NAMES = ('"faces64"', "'faces64'", "checkpoints/faces64")


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(README.read_text()) if kind == lang]


def _cli_lines() -> list[str]:
    return [line.strip() for body in _blocks("bash") for line in body.splitlines()
            if line.strip().startswith("python -m core.cli ")]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("readme") / "tiny")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A folder with the user's files the examples name; one torch thread (steady on a shared machine)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    (tmp_path / "photos").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / "a.png")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def test_python_examples_run(tiny, workdir):
    blocks = _blocks("python")
    assert blocks, "the README has no ```python block"
    for body in blocks:
        code = body
        for name in MODEL_NAMES:
            quote = name[0] if name[0] in "'\"" else ""
            code = code.replace(name, f"{quote}{tiny}{quote}")
        assert code != body, f"this README block names no model ({' or '.join(MODEL_NAMES)}):\n{body}"
        exec(compile(code, f"{README}:python block", "exec"), {"__name__": "readme_example"})
    assert (workdir / "open_mouth.safetensors").exists() and (workdir / "seed7_open_mouth.png").exists()


def test_cli_examples_run(tiny, workdir, capsys):
    from core.cli import main

    lines = _cli_lines()
    assert len(lines) >= 3, "the README shows fewer than three core.cli lines"
    for line in lines:
        args = shlex.split(line, comments=True)[3:]
        if "--model" in args:
            args[args.index("--model") + 1] = str(tiny)
        else:
            args = ["--model", str(tiny), *args]
        rc = main(args)
        assert rc == 0, f"{line!r} exited {rc}: {capsys.readouterr().err[-2000:]}"
    assert (workdir / "out" / "applied.png").exists()


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))])
def test_relative_links_name_files_that_exist(doc):
    path = ROOT / doc
    text = FENCE.sub("", path.read_text())
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    missing = [t for t in targets if not re.match(r"[a-z]+:|#", t) and not (path.parent / t.split("#")[0]).exists()]
    assert not missing, f"{doc} links to files that do not exist: {missing}"
