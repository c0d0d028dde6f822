"""A user's text never becomes markup: every field a person writes (vector names, descriptions, tags, user names,
composition names, version notes, metric names in an uploaded file) is rendered with hostile strings, and the
rendered HTML must hold exactly the tags of the same page with plain strings. Rendered here with markdown-it
(CommonMark + tables); tests/app/test_app_browser.py checks Gradio's own renderer in a real browser."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from markdown_it import MarkdownIt

from app.handler_util import fmt_metrics, md_text
from app.handlers import Handlers
from app.session import EditSession
from core.vector_format import VectorFile
from vector_library import VectorMetadata

TRACKER = "http://127.0.0.1:7871/track-probe.png"
HOSTILE_LINES = [
    f'<img src="{TRACKER}"> Nice',
    f"![pixel]({TRACKER})",
    "[click me](javascript:alert(1))",
    "<script>alert(1)</script><style>*{}</style>",
    "**bold** _em_ `code` ~~gone~~ <b>b</b>",
    f"{TRACKER} www.example.com someone@example.com",
    "&lt;img src=x&gt; &amp;",
    '<a href="http://example.com">link</a> <iframe src="x"></iframe>',
    "| a | b |",
    "# heading",
    "- item",
    "1. item",
    "> quote",
    "\\<img src=x\\>",
]
HOSTILE_TEXT = "\n".join(HOSTILE_LINES) + "\n\n| x | y |\n|---|---|\n| 1 | 2 |\n    indented code\n---"
RENDER = MarkdownIt("commonmark").enable("table")


def _tags(markdown: str) -> list[str]:
    return sorted(re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", RENDER.render(markdown)))


def _text(markdown: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", RENDER.render(markdown))).split())


@pytest.mark.parametrize("value", HOSTILE_LINES + [HOSTILE_TEXT])
def test_md_text_shows_the_text_as_typed_and_adds_no_tag(value):
    shown = md_text(value)
    assert _tags(shown) == (["p"] if value.strip() else [])
    assert _text(shown) == " ".join(value.split())
    assert _tags(f"| metric | value |\n|---|---|\n| {shown} | 1 |") == _tags("| metric | value |\n|---|---|\n| x | 1 |")


def _publish(runtime, name: str, description: str, tags: tuple[str, ...], metric: str):
    runtime.library.ensure_user("alice")
    delta = np.random.default_rng(3).standard_normal(runtime.model.latent_shape).astype(np.float32) * 0.05
    vf = VectorFile(delta=delta, model_id=runtime.model_id, edited_classes=("lips",), name=name,
                    description=description, metrics={metric: 0.5})  # fmt: skip
    return runtime.library.publish("alice", vf, VectorMetadata(name=name, description=description, tags=tags))


def test_every_user_field_on_the_vector_page_and_in_messages_is_inert(app_server):
    rt = app_server.runtime
    h = Handlers(rt)
    plain = _publish(rt, "plain name", "plain text", ("plain",), "plain")
    hostile_name = f'<img src="{TRACKER}"> Nice ![p]({TRACKER}) **b**'
    bad = _publish(rt, hostile_name, HOSTILE_TEXT, ("x_y", "a-b"), "<img src=x>")
    rt.library.publish_version("alice", bad.id, rt.library.get_vector_file(bad.id, "alice"), note=HOSTILE_TEXT)
    rt.library.publish_version("alice", plain.id, rt.library.get_vector_file(plain.id, "alice"), note="plain")
    rt.library.remix("alice", bad.id, rt.library.get_vector_file(bad.id, "alice"), VectorMetadata(name=hostile_name))
    rt.library.remix("alice", plain.id, rt.library.get_vector_file(plain.id, "alice"), VectorMetadata(name="plain"))

    page_plain, *_ = h.vector_page(plain.id, None)
    page_bad, versions, *_ = h.vector_page(bad.id, None)
    assert _tags(page_bad) == _tags(page_plain)
    assert hostile_name in _text(page_bad) and " ".join(HOSTILE_TEXT.split()) in _text(page_bad)
    assert TRACKER not in RENDER.render(page_bad).replace("&#58;", ":").split('"')[1::2]  # in no attribute

    messages = {}
    for key, name, vid in (("plain", "plain pair", plain.id), ("bad", hostile_name, bad.id)):
        saved = h.save_composition(name, "public", str(vid), None, None, None, 1.0, 1.0, 1.0, 1.0, None)
        comp_id = saved.split("#", 1)[1].split(" ", 1)[0]
        opened = h.load_composition(comp_id, None)[-1]
        messages[key] = (saved, opened, fmt_metrics({"plain" if key == "plain" else "<img src=x> **b**": 1.0}))
    assert "(public, 1 vector)." in messages["plain"][0]  # not "1 vectors"
    for plain_md, bad_md in zip(messages["plain"], messages["bad"]):
        assert _tags(bad_md) == _tags(plain_md), bad_md


def test_warnings_naming_vectors_are_inert(app_server):
    rt = app_server.runtime
    h = Handlers(rt)
    a = _publish(rt, "<img src=x> A", "", (), "m")
    b = _publish(rt, "[l](http://x) B", "", (), "m")
    state = EditSession()
    state.start(rt.sample(4), {"kind": "seed", "seed": 4})
    _, warnings, _ = h.compose(str(a.id), str(b.id), None, None, 1.0, 1.0, 1.0, 1.0, state, None)
    assert "both edit lips" in warnings
    assert set(_tags(warnings)) == {"p"} and "<img src=x> A" in _text(warnings)


def test_save_checks_every_field_before_making_the_vector_transferable(app_server, tmp_path, monkeypatch):
    """Bad names, tags or visibility are refused at once, not after the transfer step (75-123 s on faces64); tags
    may hold spaces; the same edit saved the same way twice is refused with the id it has."""
    import gradio as gr

    import app.handlers as handlers_module
    from app.testing import write_target_mask

    rt = app_server.runtime
    h = Handlers(rt)
    state = h.sample(3, EditSession(), None)[-1]
    mask = write_target_mask(tmp_path / "t.png", 16, (3, 3, 12, 9), (0, 200, 60))
    *_, last = h.edit(None, str(mask), "optimization", 3, state, None)
    state = last[-1]
    calls = []
    real = handlers_module.make_transferable
    monkeypatch.setattr(handlers_module, "make_transferable", lambda *a, **k: calls.append(1) or real(*a, **k))
    refused = [("", "x", "public", "name must not be empty"), ("x" * 121, "", "public", "at most 120"),
               ("ok", "mouth, open mouth!", "public", "tag 'open-mouth!' is not accepted"),
               ("ok", "x", "secret", "visibility 'secret' is not accepted"),
               ("ok", ",".join(f"t{i}" for i in range(20)), "public", "more than 16 tags")]  # fmt: skip
    for name, tags, visibility, message in refused:
        with pytest.raises(gr.Error, match=message):
            h.save_edit(name, "", tags, visibility, True, state, None)
    assert not calls  # no work was done for a save that could not succeed
    msg, vid = h.save_edit("Glasses on", "", "Glasses, round  lenses", "public", True, state, None)
    assert calls and "Made transferable" in msg
    assert rt.library.get(vid).tags == ("glasses", "round-lenses")
    with pytest.raises(gr.Error, match=f"already saved as vector #{vid} \\(Glasses on\\)"):
        h.save_edit("Glasses again", "", "", "public", True, state, None)
    _, plain = h.save_edit("Glasses, as edited", "", "", "private", False, state, None)  # the edit's own delta
    assert plain != vid and len(calls) == 1  # the transfer step ran once
