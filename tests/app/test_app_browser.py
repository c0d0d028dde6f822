"""A real browser (Playwright driving Debian's Chromium) against a launched app, used as a person uses it: every
class colour is picked by clicking the swatch a person sees (the topmost element at that point), painted and
read back from the screen; a stroke is painted, edited, saved and found by search; an edit with nothing painted
shows a readable message; a vector page with hostile text requests nothing and shows no markup. Screenshots on
failure (path printed)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.palette import CLASS_NAMES, PALETTE

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
        pg = browser.new_page(viewport={"width": 1400, "height": 900})  # a laptop screen
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


def _pick_colour(page, rgb) -> None:
    """Open the editor's colour menu and click the swatch of ``rgb`` where a person sees it: the swatch must be
    the topmost element at its own centre (a clipped or covered swatch cannot be clicked by a person)."""
    editor = page.locator("#mask-editor")
    editor.locator("button[aria-label='Color']").click()
    swatch = editor.locator(f"menu.swatch button[style*='rgb({rgb[0]}, {rgb[1]}, {rgb[2]})']")
    box = swatch.bounding_box()
    assert box is not None and box["width"] >= 10 and box["height"] >= 10, f"swatch {rgb} is not shown: {box}"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    topmost = page.evaluate("([x, y]) => { const e = document.elementFromPoint(x, y); "
                            "return e ? (e.getAttribute('style') || '') + '|' + e.tagName : null; }", [x, y])  # fmt: skip
    assert topmost is not None and f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})" in topmost and topmost.endswith("BUTTON"), \
        f"the swatch {rgb} is covered by {topmost}"
    # and it is seen: outlined, so that a colour like the menu's own (white teeth on a white menu) still shows
    outline = swatch.evaluate("e => getComputedStyle(e).boxShadow")
    assert outline and outline != "none" and "rgba(0, 0, 0, 0.45)" in outline, f"the swatch {rgb} has no outline"
    page.mouse.click(x, y)  # at the point, as a person clicks: no scrolling into view
    editor.locator("button[aria-label='Brush']").click()


def _canvas_box(page) -> dict:
    return page.locator("#mask-editor .pixi-target canvas").bounding_box()


def _stroke(page, points) -> None:
    # few pointer events: each one re-renders the canvas, which is slow in software-GL Chromium
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y)
    page.mouse.up()


def _paint_stroke(page) -> None:
    _pick_colour(page, (0, 200, 60))  # glasses
    box = _canvas_box(page)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    _stroke(page, [(cx - 150, cy - 30), (cx - 50, cy + 30), (cx + 50, cy - 30), (cx + 150, cy + 30)])


def _screen_rgb(page, x: float, y: float) -> np.ndarray:
    shot = Image.open(io.BytesIO(page.screenshot(clip={"x": x - 2, "y": y - 2, "width": 5, "height": 5})))
    return np.asarray(shot.convert("RGB"))[2, 2].astype(np.int32)


def _nearest_class(rgb: np.ndarray) -> int:
    return int(((PALETTE.astype(np.int32) - rgb) ** 2).sum(-1).argmin())


def test_every_class_colour_is_picked_by_clicking_its_visible_swatch(page, app_server):
    page.goto(app_server.url)
    page.wait_for_selector("#image img")
    page.wait_for_selector("#mask-editor canvas")
    page.locator("#mask-editor").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = _canvas_box(page)
    for k, name in enumerate(CLASS_NAMES):
        # one short horizontal stroke per class, in its own band of the image (the canvas has a margin around it)
        y = box["y"] + box["height"] * (0.15 + 0.7 * (k + 0.5) / len(CLASS_NAMES))
        x0, x1 = box["x"] + box["width"] * 0.3, box["x"] + box["width"] * 0.7
        _pick_colour(page, tuple(int(c) for c in PALETTE[k]))
        _stroke(page, [(x0, y), ((x0 + x1) / 2, y), (x1, y)])
        page.wait_for_timeout(200)
        seen = _screen_rgb(page, (x0 + x1) / 2, y)
        assert _nearest_class(seen) == k, f"painting {name} shows {seen.tolist()} on the canvas"
    # the server reads the last stroke (glasses) as glasses: the edit runs and reports its target
    page.locator("#run-btn").click()
    page.locator("#result").get_by_text("mask edit").wait_for()
    assert "target IoU" in page.locator("#result").inner_text()


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
    # each metric's value, and the column's title, on one line beside its name (a narrow column broke "31.482"
    # into "31.48" and "2", and "value" into "val" and "ue", on a laptop screen)
    lines = page.evaluate("[...document.querySelectorAll('#result table :is(td, th):last-child')].map(e => {"
                          "const r = document.createRange(); r.selectNodeContents(e); "
                          "return new Set([...r.getClientRects()].map(q => Math.round(q.top))).size; })")  # fmt: skip
    assert lines and all(n == 1 for n in lines), lines
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


def test_hostile_text_on_the_vector_page_requests_nothing_and_shows_no_markup(page, app_server):
    from vector_library import VectorMetadata
    from core.vector_format import VectorFile

    rt = app_server.runtime
    rt.library.ensure_user("alice")
    probe = app_server.url + "track-probe.png"
    name = f'<img src="{probe}"> Nice ![p]({probe}) **b**'
    description = f"{probe} www.example.com [l](javascript:alert(1))\n# big\n<b>bold</b> <script>window.pwned=1</script>"
    vf = VectorFile(delta=np.full(rt.model.latent_shape, 0.01, np.float32), model_id=rt.model_id,
                    edited_classes=("lips",), name="x")  # fmt: skip
    info = rt.library.publish("alice", vf, VectorMetadata(name=name, description=description, tags=("probe",)))
    rt.library.publish_version("alice", info.id, vf, note=f'<img src="{probe}"> note')
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(app_server.url)
    page.wait_for_selector("#image img")
    page.get_by_role("tab", name="Library").click()
    page.locator("#q-text textarea, #q-text input").first.fill("Nice")
    page.locator("#search-btn").click()
    page.wait_for_function("document.querySelector('#results-table').innerText.includes('Nice')")
    page.locator("#vector-id textarea, #vector-id input").first.fill(str(info.id))
    page.get_by_role("button", name="Open").click()
    page.locator("#vector-page").get_by_text("Nice").first.wait_for()
    page.wait_for_timeout(500)
    shown = page.locator("#vector-page").inner_text()
    assert name in shown and "<script>window.pwned=1</script>" in shown  # as typed, visible
    page.locator("#versions").get_by_text("note").first.wait_for()  # the version note, as typed
    for where in ("#vector-page", "#versions", "#results-table", "#results"):
        markup = page.evaluate(
            f"[...document.querySelectorAll('{where} *')].filter(e => "
            "(e.getAttribute('src') || '').includes('probe') || (e.getAttribute('href') || '').includes('probe') "
            "|| (e.getAttribute('href') || '').startsWith('javascript') "
            "|| (['SCRIPT', 'B', 'IFRAME'].includes(e.tagName) && /pwned|bold/.test(e.textContent))).length")
        assert markup == 0, where
    assert page.evaluate("document.querySelectorAll('#vector-page h1').length") == 0  # '# big' is no heading
    # a refusal quotes what was typed, and Gradio renders a toast's message as HTML
    typed = '<b>b</b><img src="/track-probe.png">'  # within the 40 characters a refusal quotes
    page.locator("#vector-id textarea, #vector-id input").first.fill(typed)
    page.get_by_role("button", name="Open").click()
    toast = page.locator("[data-testid=toast-text]").first
    toast.wait_for()
    assert typed in toast.inner_text() and toast.locator("b, img").count() == 0
    assert page.evaluate("window.pwned === undefined")
    assert not [u for u in requested if "track-probe" in u], requested


def test_the_first_screen_holds_image_mask_editor_and_run_button(page, app_server):
    """At 1400x900 a person sees the image, the mask editor beside it and the Run button without scrolling; the
    examples gallery shows all four examples unclipped; the mode help reads like body text, not pale."""
    page.goto(app_server.url)
    page.wait_for_selector("#image img")
    page.wait_for_selector("#mask-editor canvas")
    page.wait_for_timeout(500)
    image = page.locator("#image").bounding_box()
    editor = page.locator("#mask-editor").bounding_box()
    run = page.locator("#run-btn").bounding_box()
    assert image["y"] + image["height"] <= 900 and run["y"] + run["height"] <= 900, (image, run)
    assert editor["y"] < 450 and editor["x"] >= image["x"] + image["width"], (image, editor)  # beside, not below
    gallery = page.locator("#examples").bounding_box()
    thumbs = page.locator("#examples .thumbnail-item")
    assert thumbs.count() == 4
    for i in range(4):
        t = thumbs.nth(i).bounding_box()
        assert gallery["x"] <= t["x"] and t["x"] + t["width"] <= gallery["x"] + gallery["width"] + 0.5, (i, t, gallery)
    colours = page.evaluate("[getComputedStyle(document.querySelector('#mode-help p') || document.querySelector("
                            "'#mode-help')).color, getComputedStyle(document.querySelector('#info')).color]")  # fmt: skip
    assert colours[0] == colours[1], colours  # the same colour as the session line beside the image


def test_stop_keeps_the_stopped_edits_result_on_screen(page, app_server):
    """Stop during a 200-step edit: the result keeps the best result so far and its metrics, and Stop's answer
    shows beside its button (before, it was written into the result and replaced the metrics when it came last)."""
    page.goto(app_server.url)
    page.wait_for_selector("#image img")
    page.wait_for_selector("#mask-editor canvas")
    page.wait_for_timeout(500)
    steps = page.locator("#steps input[type=number]")
    steps.fill("200")
    steps.press("Tab")
    _paint_stroke(page)
    page.locator("#run-btn").click()
    page.locator("#result").get_by_text("/200").wait_for(timeout=120_000)  # a streamed step of the 200
    page.locator("#stop-btn").click()
    page.locator("#result").get_by_text("stopped early").wait_for(timeout=120_000)
    page.wait_for_timeout(1500)
    text = page.locator("#result").inner_text()
    assert "stopped early" in text and "steps run" in text and "Stopping" not in text
    page.wait_for_function("!document.querySelector('#stop-msg').innerText.includes('Stopping')")  # cleared at the end
    page.locator("#stop-btn").click()
    page.locator("#stop-msg").get_by_text("No edit is running.").wait_for()
    assert "stopped early" in page.locator("#result").inner_text()
    # a new sample empties the last edit's result, before and after: they were of the other image
    page.locator("#random-btn").click()
    page.locator("#info").get_by_text("no changes yet").wait_for()
    page.wait_for_function("document.querySelector('#result').innerText.trim() === '' && "
                           "!document.querySelector('#after img')")  # fmt: skip


def _error_badges(page, selector: str) -> int:
    """Visible 'Error' status badges over a component (Gradio covers an output with one when its event fails)."""
    return page.evaluate(f"[...document.querySelectorAll('{selector} *')].filter(e => e.children.length === 0 && "
                         "e.textContent.trim() === 'Error' && e.offsetParent !== null).length")  # fmt: skip


def test_refused_actions_say_why_and_keep_the_workspace(page, app_server, tmp_path):
    """Undo on a fresh sample, Redo with nothing undone, Embed photo with a text file named .png and Tune with no
    photo are refused with a message; the image, its mask, the overlay and the mask editor stay on screen (a failed
    Gradio event covers what it shows progress on), and the session goes on working."""
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    page.goto(app_server.url + "?seed=4")
    page.locator("#info").get_by_text("seed 4").wait_for()
    page.wait_for_selector("#image img")
    page.wait_for_selector("#mask-editor canvas")
    shown = _src(page, "#image")

    def upload_text_file():
        page.locator("#photo input[type=file]").set_input_files(str(fake))
        page.wait_for_timeout(500)
        page.locator("#upload-btn").click()

    actions = (("undo", lambda: page.locator("#undo-btn").click(), "nothing to undo"),
               ("redo", lambda: page.locator("#redo-btn").click(), "nothing to redo"),
               ("upload", upload_text_file, "in no image format this server reads"),
               ("tune", lambda: page.locator("#tune-btn").click(), "only a photo uploaded"))  # fmt: skip
    for what, act, message in actions:
        act()
        page.get_by_text(message).first.wait_for()
        page.wait_for_timeout(300)
        for where in ("#image", "#mask", "#overlay", "#mask-editor", "#info"):
            assert _error_badges(page, where) == 0, f"{where} is covered by an error badge after {what}"
        assert page.locator("#image img").first.is_visible() and _src(page, "#image") == shown, what
        assert page.locator("#mask-editor canvas").first.is_visible(), what
        assert "seed 4" in page.locator("#info").inner_text(), what
    page.locator("#random-btn").click()  # and the next action works as ever
    page.locator("#info").get_by_text("no changes yet").wait_for()


def _png_pixels(page, selector: str) -> np.ndarray:
    data = page.request.get(page.locator(f"{selector} img").first.get_attribute("src")).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_scale_typed_in_the_sliders_box_is_the_scale_applied(page, app_server, client, tmp_path):
    """The scale slider's number box, typed into as a person does: a number beyond the slider's ends, an emptied
    box, a lone minus sign. No error (before: an emptied box failed the event with a server traceback and an
    'Error' badge, a number beyond the ends was refused while the box showed the end), and the preview is the
    vector at the scale the box shows once left, as /apply renders it."""
    from gradio_client import handle_file

    from app.testing import write_target_mask

    client.predict(5, api_name="/sample")
    mask = write_target_mask(tmp_path / "target.png", 16, (3, 3, 12, 9), (0, 200, 60))
    client.predict(None, handle_file(str(mask)), "optimization", 4, api_name="/edit")
    _, vid = client.predict("Box glasses", "", "", "public", False, api_name="/save_edit")
    vid = int(vid)
    info = app_server.runtime.library.get(vid, "alice")
    lo, hi = info.scale_min, info.scale_max
    client.predict(5, api_name="/sample")  # the client's image: the browser's seed below

    page.goto(app_server.url + "?seed=5")
    page.locator("#info").get_by_text("seed 5").wait_for()
    page.get_by_role("tab", name="Library").click()
    page.locator("#vector-id textarea, #vector-id input").first.fill(str(vid))
    page.get_by_role("button", name="Open").click()
    page.locator("#vector-page").get_by_text("Box glasses").first.wait_for()
    page.get_by_text("Change or delete this vector").click()  # its author finds the form filled with its fields
    page.wait_for_function("document.querySelector('#manage-name textarea, #manage-name input').value === "
                           "'Box glasses'")  # fmt: skip
    box = page.locator("#apply-scale input[type=number]")
    assert float(box.get_attribute("max")) == hi and float(box.get_attribute("min")) == lo
    for typed, shown in (("0.5", 0.5), (str(hi + 7), hi), ("", 0.0), (str(lo - 3), lo), ("-", 0.0), ("1", 1.0)):
        want = np.asarray(Image.open(client.predict(vid, shown, api_name="/apply")).convert("RGB"))
        box.fill("")
        if typed:
            box.type(typed)
        box.blur()
        assert float(box.input_value()) == shown, (typed, box.input_value())
        for _ in range(100):  # the live preview follows within seconds (the burst's last event wins)
            page.wait_for_timeout(200)
            if page.locator("#applied img").count() and np.array_equal(_png_pixels(page, "#applied"), want):
                break
        else:
            raise AssertionError(f"typed {typed!r}: the preview is not the vector at scale {shown}")
        assert _error_badges(page, "#applied") == 0, typed
        assert page.locator(".toast-body").count() == 0, (typed, page.locator(".toast-body").all_inner_texts())
    # the Edit tab shows what the next edit starts from: the image with the vector applied (before, it kept the
    # image without it, while an edit started from the image with it)
    page.get_by_role("tab", name="Edit").click()
    page.locator("#info").get_by_text(f"Applied (preview): #{vid} ×1").wait_for()
    assert np.array_equal(_png_pixels(page, "#image"), want)


def test_a_vector_chosen_in_a_compose_slot_is_previewed_at_once(page, app_server, client, tmp_path):
    """Choosing a vector in a Compose slot previews it (before, only moving a slider or pressing Preview did), and
    the Edit tab shows the composed image, which the next edit starts from."""
    from gradio_client import handle_file

    from app.testing import write_target_mask

    client.predict(7, api_name="/sample")
    mask = write_target_mask(tmp_path / "target.png", 16, (3, 3, 12, 9), (0, 200, 60))
    client.predict(None, handle_file(str(mask)), "optimization", 4, api_name="/edit")
    _, vid = client.predict("Slot glasses", "", "", "public", False, api_name="/save_edit")
    vid = int(vid)
    client.predict(7, api_name="/sample")  # the client's image: the browser's seed below
    want = np.asarray(Image.open(client.predict(vid, 1.0, api_name="/apply")).convert("RGB"))

    page.goto(app_server.url + "?seed=7")
    page.locator("#info").get_by_text("seed 7").wait_for()
    page.get_by_role("tab", name="Compose").click()
    page.get_by_role("button", name="Refresh vector list").click()
    page.wait_for_timeout(1000)
    page.locator("#slot-0 input").click()
    page.get_by_role("option", name=f"#{vid} Slot glasses").click()
    for _ in range(100):
        page.wait_for_timeout(200)
        if page.locator("#compose-preview img").count() and np.array_equal(_png_pixels(page, "#compose-preview"), want):
            break
    else:
        raise AssertionError("choosing the vector did not preview it")
    page.get_by_role("tab", name="Edit").click()
    page.locator("#info").get_by_text(f"Applied (preview): #{vid} ×1").wait_for()
    assert np.array_equal(_png_pixels(page, "#image"), want)
