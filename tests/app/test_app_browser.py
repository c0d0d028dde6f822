"""A real browser (Playwright driving Debian's Chromium) against a launched app: paint a stroke with a
class colour, run an edit, see the result change, save it to the library and find it by search; and
an edit with nothing painted shows a readable message. Screenshots on failure (path printed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("EDITGAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
GLASSES_RGB = "rgb(0, 200, 60)"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                                reason=f"Chromium not installed at {CHROMIUM} (CI installs it: apt-get install chromium)")


@pytest.fixture
def page(app_server, tmp_path, request):
    from playwright.sync_api import sync_playwright

    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1800})
        pg.set_default_timeout(60_000)
        yield pg
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            out = Path(os.environ.get("EDITGAN_TEST_ARTIFACTS", tmp_path)) / f"{request.node.name}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(out), full_page=True)
            print(f"screenshot of the failure: {out}")
        browser.close()


def _src(page, selector: str) -> str:
    return page.locator(f"{selector} img").first.get_attribute("src") or ""


def _paint_stroke(page) -> None:
    editor = page.locator("#mask-editor")
    editor.locator("button[aria-label='Color']").click()
    editor.locator(f"menu.swatch button[style*='{GLASSES_RGB}']").click()
    editor.locator("button[aria-label='Brush']").click()
    canvas = editor.locator(".pixi-target canvas")
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # few pointer events: each one re-renders the canvas, which is slow in software-GL Chromium
    page.mouse.move(cx - 150, cy - 30)
    page.mouse.down()
    for x, y in ((cx - 50, cy + 30), (cx + 50, cy - 30), (cx + 150, cy + 30)):
        page.mouse.move(x, y)
    page.mouse.up()


def test_paint_edit_save_and_find(page, app_server):
    page.goto(app_server.url)
    page.wait_for_selector("#image img")
    page.wait_for_selector("#mask-editor canvas")
    before_src = _src(page, "#image")
    page.wait_for_timeout(500)

    _paint_stroke(page)
    page.locator("#run-btn").click()
    page.wait_for_selector("#after img")
    page.locator("#result").get_by_text("mask edit").wait_for()
    assert "target IoU" in page.locator("#result").inner_text()
    assert _src(page, "#after") != _src(page, "#before")  # files are named by content hash
    page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old; }",
                           arg=["#image img", before_src])  # fmt: skip

    page.locator("#save-name textarea, #save-name input").first.fill("Browser glasses")
    page.locator("#save-tags textarea, #save-tags input").first.fill("browser")
    page.locator("#save-btn").click()
    page.locator("#save-msg").get_by_text("Saved as vector").wait_for()

    page.get_by_role("tab", name="Library").click()
    page.locator("#q-text textarea, #q-text input").first.fill("browser glass")
    page.locator("#search-btn").click()
    page.wait_for_function("document.querySelector('#results-table').innerText.includes('Browser glasses')")
    page.locator("#results").get_by_text("Browser glasses").first.wait_for()


def test_edit_with_nothing_painted_shows_a_message(page, app_server):
    page.goto(app_server.url + "?seed=5")  # a share link opens that seed
    page.locator("#info").get_by_text("seed 5").wait_for()
    page.wait_for_selector("#image img")
    page.wait_for_selector("#mask-editor canvas")
    page.locator("#run-btn").click()
    page.get_by_text("nothing is painted").first.wait_for()
    # the session still works: an example from the gallery, then a new random sample
    page.locator("#examples button[aria-label^='Thumbnail 3 ']").click()
    page.locator("#info").get_by_text("seed 2").wait_for()
    page.locator("#random-btn").click()
    page.locator("#info").get_by_text("no changes yet").wait_for()
