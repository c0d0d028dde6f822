"""The README's pictures, made again from the shipped model.

    python scripts/readme_pictures.py                    # all of them, into docs/img/
    python scripts/readme_pictures.py --only edits       # the before/after strip (Python API, ~30 s on a CPU)
    python scripts/readme_pictures.py --only editor      # the editor (the real app + Debian's Chromium, ~1 min)
    python scripts/readme_pictures.py --only label       # the Label tab (the real app + Chromium, ~1 min)

``docs/img/edits.png``: one face (seed 3 of ``checkpoints/faces64``) and three scripted mask edits
in mode 3, each as painted target, result and the branch's reading of the result.
``docs/img/editor.png``: the app started on the same model (SQLite library in a temporary folder,
as the tests start it), a painted target mask uploaded and an edit run, then the first screen.
``docs/img/label_tab.png``: the app on faces64's generator alone (no branch), a label set with the face
classes, six samples of which three are labelled (the oracle's masks, saved through the label store), a
fourth open in the painter with a stroke painted.
All are saved as 256-colour PNGs so the README's pictures stay small in the repository.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "img"
MODEL = "faces64"
SEED = 3
EDITS = ("add_glasses", "open_mouth", "smile")
CHROMIUM = "/usr/bin/chromium"
SCALE = 3  # 64 px shown at 192 px, without smoothing


def _save_small(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {img.size[0]}x{img.size[1]}, {path.stat().st_size // 1024} KiB")
    return path


def _target_mask(model, seed: int, edit: str):
    """(the face's latent, its mask [R, R], the scripted target [R, R]) as torch tensors."""
    import torch

    from core.mask_edits import apply_scripted

    w = model.sample(seed=seed)
    mask = model.segment(w)[0]
    return w, mask, torch.from_numpy(apply_scripted(edit, mask))


def edits_strip() -> Path:
    """Rows: the face and its mask, then per edit the painted target, the result and its mask."""
    from core.data.palette import colorize
    from core.edit import edit_by_mask
    from core.editgan import EditGAN
    from core.image_io import to_pil

    model = EditGAN.load(MODEL)
    big = model.resolution * SCALE
    tile = lambda a: Image.fromarray(a).resize((big, big), Image.Resampling.NEAREST)  # noqa: E731
    rows = []
    for edit in EDITS:
        w, mask, target = _target_mask(model, SEED, edit)
        r = edit_by_mask(model.generator, model.branch, w, target, model.class_names, perceptual=model.perceptual,
                         encoder=model.encoder, reader=model.reader)  # fmt: skip
        print(f"{edit}: target IoU in region {r.metrics['target_iou_in_region']:.2f}, "
              f"PSNR outside {r.metrics['psnr_outside_region']:.1f} dB, {r.seconds:.1f} s")  # fmt: skip
        rows.append([np.asarray(to_pil(model.render(w))), colorize(target.numpy(), model.palette),
                     np.asarray(to_pil(r.image)), colorize(r.mask[0].cpu().numpy(), model.palette)])  # fmt: skip
    gap = 6
    sheet = Image.new("RGB", (4 * big + 3 * gap, len(rows) * big + (len(rows) - 1) * gap), "white")
    for i, row in enumerate(rows):
        for j, a in enumerate(row):
            sheet.paste(tile(a), (j * (big + gap), i * (big + gap)))
    return _save_small(sheet, OUT / "edits.png")


def editor_screenshot() -> Path:
    """The editor after one edit, as a browser shows it at 1400 x 1000."""
    from playwright.sync_api import sync_playwright

    from app.testing import launch_app
    from core.data.palette import colorize
    from core.editgan import EditGAN

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    model = EditGAN.load(MODEL)
    _, mask, target = _target_mask(model, 0, "add_glasses")
    painted = np.zeros((model.resolution, model.resolution, 4), np.uint8)
    changed = (target != mask).numpy()
    painted[..., :3] = colorize(target.numpy(), model.palette)
    painted[..., 3] = np.where(changed, 255, 0)  # transparent = unchanged
    del model
    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(painted, "RGBA").save(Path(tmp) / "glasses.png")
        launched = launch_app(ROOT / "checkpoints" / MODEL, Path(tmp) / "data", user="local",
                              example_seeds=tuple(range(8)))  # fmt: skip
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(launched.url)
                page.wait_for_selector("#image img")
                page.wait_for_selector("#mask-editor canvas")
                page.get_by_text("Or upload a painted mask").click()
                page.locator("input[type=file]:not([disabled])").nth(1).set_input_files(str(Path(tmp) / "glasses.png"))
                page.wait_for_timeout(1500)
                page.locator("#run-btn").click()
                try:
                    page.locator("#result").get_by_text("target IoU").wait_for()
                except Exception:
                    page.screenshot(path="/tmp/readme_pictures_failed.png", full_page=True)
                    raise
                page.wait_for_timeout(1500)
                page.evaluate("window.scrollTo(0, 0)")
                shot = Path(tmp) / "editor.png"
                page.screenshot(path=str(shot), full_page=False)
                browser.close()
            img = Image.open(shot)
            return _save_small(img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS),
                               OUT / "editor.png")  # fmt: skip
        finally:
            launched.demo.close()


def label_screenshot() -> Path:
    """The Label tab while a set is being labelled, as a browser shows it at 1400 x 1000."""
    from playwright.sync_api import sync_playwright

    from app.testing import launch_app
    from benchmarks.bench_byog import generator_alone
    from benchmarks.bench_labels import oracle_masks
    from benchmarks.oracle import load_oracle
    from core.data.palette import CLASS_NAMES, PALETTE

    oracle = load_oracle(64)
    with tempfile.TemporaryDirectory() as tmp:
        launched = launch_app(generator_alone(MODEL, Path(tmp) / "gen"), Path(tmp) / "data", user="local")
        rt = launched.runtime
        try:
            rt.library.ensure_user("local")
            info = rt.labels.create_set(rt.base_model.model_id, "faces", "local",
                                        list(zip(CLASS_NAMES, [tuple(c) for c in PALETTE.tolist()])), 64)  # fmt: skip
            rt.labels.add_samples(info.id, "local", [11, 23, 35, 47, 59, 71], 0.7)
            for smp in rt.labels.samples(info.id)[:3]:
                img = rt.bundle().render(rt.bundle().sample(smp.seed, smp.truncation))
                rt.labels.save_mask(smp.id, "local", oracle_masks(oracle, img)[0].numpy().astype(np.uint8), 0)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(launched.url)
                page.wait_for_selector("#image img")
                page.get_by_role("tab", name="Label").click()
                page.locator("#label-samples button[aria-label^='Thumbnail 4 ']").click()
                page.locator("#label-sample").get_by_text("yours to paint").wait_for()
                page.wait_for_timeout(800)
                page.keyboard.press("4")  # hair
                page.wait_for_timeout(800)
                page.locator("#label-editor").scroll_into_view_if_needed()
                page.locator("#label-editor button[aria-label='Brush']").click()
                box = page.locator("#label-editor .pixi-target canvas").bounding_box()
                x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.22
                page.mouse.move(x0, y0)
                page.mouse.down()
                for k in range(1, 6):
                    page.mouse.move(x0 + box["width"] * 0.08 * k, y0 - box["height"] * 0.02 * (k % 2))
                page.mouse.up()
                page.wait_for_timeout(800)
                page.evaluate("document.querySelector('#label-set').scrollIntoView()")
                shot = Path(tmp) / "label.png"
                page.screenshot(path=str(shot), full_page=False)
                browser.close()
            img = Image.open(shot)
            return _save_small(img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS),
                               OUT / "label_tab.png")  # fmt: skip
        finally:
            launched.demo.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("edits", "editor", "label"), help="make only this picture")
    args = ap.parse_args(argv)
    if args.only in (None, "edits"):
        edits_strip()
    if args.only in (None, "editor"):
        editor_screenshot()
    if args.only in (None, "label"):
        label_screenshot()
    return 0


if __name__ == "__main__":
    sys.exit(main())
