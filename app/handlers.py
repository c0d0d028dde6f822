"""The editor's actions as plain functions (methods of one object bound to the shared Runtime).

Every method takes component values and the session's :class:`EditSession`, and returns component
values; ui.py wires them to events with an ``api_name`` each. Expected refusals (bad input, a
missing model part, a library rule) raise ``gr.Error`` with a readable message; the session state
is only changed once an action has succeeded, so it keeps working after any error.
"""

from __future__ import annotations

import logging
import queue
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np
import torch
from PIL import Image

from app import masks
from app.runtime import Runtime, to_uint8
from app.session import MAX_APPLIED, EditSession, ShareStore, format_vectors, parse_vectors
from core.edit import EditConfig, edit_by_mask
from core.edit_vector import apply_vectors, interference, refine, thumbnail
from core.embed import EmbedConfig
from core.image_io import CropBox, paste_back
from core.vector_format import VectorFile, VectorFormatError
from vector_library import (
    LibraryError,
    PermissionDenied,
    SearchQuery,
    VectorMetadata,
)

log = logging.getLogger(__name__)
MODES = ("optimization", "vector", "vector + refinement")
SORT_CHOICES = ("relevance", "recent", "likes", "downloads")
COMPOSE_SLOTS = 4
MAX_SEED = 2**31 - 1
STREAM_EVERY_S = 0.25


class StopFlags:
    """Stop requests per browser session: the Stop button sets the running edit's flag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}

    def begin(self, key: str) -> threading.Event:
        ev = threading.Event()
        with self._lock:
            self._running[key] = ev
        return ev

    def end(self, key: str, ev: threading.Event) -> None:
        with self._lock:
            if self._running.get(key) is ev:
                del self._running[key]

    def stop(self, key: str) -> bool:
        with self._lock:
            ev = self._running.get(key)
        if ev is None:
            return False
        ev.set()
        return True


def _err(e: Exception) -> gr.Error:
    """A readable message for an expected refusal."""
    msg = str(e) or type(e).__name__
    return gr.Error(msg, print_exception=False)


def _session_key(request: Optional[gr.Request]) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None
    if not np.isfinite(v) or v != int(v) or not lo <= v <= hi:
        raise ValueError(f"{what} must be a whole number in [{lo}, {hi}], got {value!r}")
    return int(v)


def _parse_tags(text: str) -> tuple[str, ...]:
    return tuple(t.strip().lower() for t in (text or "").replace(";", ",").split(",") if t.strip())


def _vector_id(value: Any) -> int:
    """A vector id from a number, '12' or a dropdown label '12 · name'."""
    if value is None or value == "":
        raise ValueError("choose a vector first")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _int(value, "vector id", 1, 2**62)
    head = str(value).strip().split(" ", 1)[0].lstrip("#")
    if not head.isdigit():
        raise ValueError(f"{str(value)[:40]!r} is not a vector id")
    return int(head)


_TMP_ROOT = Path(tempfile.gettempdir()) / "editgan-app"
TMP_MAX_AGE_S = 3600


def _tmp_file(name: str) -> Path:
    """A fresh path for a file handed to Gradio (which copies it into its cache); folders older than an
    hour are removed on the way, so downloads do not pile up."""
    _TMP_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in _TMP_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > TMP_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # removed by a concurrent request
    return Path(tempfile.mkdtemp(dir=_TMP_ROOT)) / name


def _fmt_metrics(metrics: dict) -> str:
    labels = {
        "target_iou_in_region": "target IoU in the region",
        "psnr_outside_region": "PSNR outside the region (dB, higher = less change)",
        "mean_abs_change_outside": "mean change outside the region (0-255)",
        "region_pixels": "region pixels",
        "steps_run": "steps run",
        "vector_mask_iou_in_region": "IoU with the vectors' mask in the region",
        "psnr_outside_region_before_refinement": "PSNR outside before refinement (dB)",
        "seconds": "seconds",
    }
    if not metrics:
        return ""
    def show(v) -> str:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e12 else f"{v:.3f}"

    rows = [f"| {labels.get(k, k)} | {show(v)} |" for k, v in metrics.items()]
    return "| metric | value |\n|---|---|\n" + "\n".join(rows)


class Handlers:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.stops = StopFlags()
        self._known_users: set[str] = set()
        self.shares = ShareStore(runtime.config.resolved_data_dir / "shares")

    # ------------------------------------------------------------------ helpers
    @property
    def caps(self):
        return self.rt.capabilities

    def user(self, request: Optional[gr.Request], profile=None) -> Optional[str]:
        """The acting username (None: anonymous), registered in the library on first sight."""
        name = self.rt.identity.username(request, profile)
        if name and name not in self._known_users:  # ensure_user is a write transaction: once per process
            self.rt.library.ensure_user(name)
            self._known_users.add(name)
        return name

    def _need_user(self, request, profile, doing: str) -> str:
        name = self.user(request, profile)
        if not name:
            raise PermissionDenied(f"{doing} needs a signed-in user; anonymous visitors can browse and apply only")
        return name

    def _displayed_w(self, state: EditSession, viewer: Optional[str]) -> np.ndarray:
        """base + sum(scale * delta) of the applied vectors # [n_latent, w_dim]."""
        w = state.w.copy()
        for vid, scale in state.applied:
            w += np.float32(scale) * np.asarray(self.rt.vector_file(vid, viewer).delta)
        return w

    def _check_state(self, state: EditSession) -> None:
        self.rt.require("editing")
        if state is None or state.w is None:
            raise ValueError("there is no image yet: pick a seed or an example, or upload a photo")
        if tuple(state.w.shape) != self.rt.model.latent_shape:
            raise ValueError("this session's latent does not fit the loaded model; start a new sample")

    def view(self, state: EditSession, viewer: Optional[str] = None, editor: bool = True):
        """[image, mask, overlay, editor, info] for the session's displayed latent."""
        r = self.rt.render(self._displayed_w(state, viewer))
        if r.mask is None:
            return r.image, None, None, gr.skip(), state.describe()
        rgb = self.rt.colorize(r.mask)
        ed = masks.editor_value(rgb, masks.display_size(r.mask.shape[0])) if editor else gr.skip()
        return r.image, rgb, masks.overlay(r.image, rgb), ed, state.describe()

    # ------------------------------------------------------------------ start: seed, example, photo
    def sample(self, seed, state: EditSession, request: gr.Request):
        """api: /sample -- a random sample of the generator for ``seed``."""
        try:
            seed = _int(seed, "seed", 0, MAX_SEED)
            w = self.rt.sample(seed)
            new = EditSession()
            new.start(w, {"kind": "seed", "seed": seed})
            return (*self.view(new), new)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def random_sample(self, state: EditSession, request: gr.Request):
        """api: /random_sample -- a new random seed, then /sample."""
        seed = random.randint(0, 10**6)
        return (seed, *self.sample(seed, state, request))

    def pick_example(self, state: EditSession, request: gr.Request, evt: gr.SelectData):
        seeds = self.rt.config.example_seeds
        if not seeds or evt.index is None:
            raise gr.Error("no example selected")
        seed = seeds[int(evt.index) % len(seeds)]
        return (seed, *self.sample(seed, state, request))

    def upload(self, path, steps, state: EditSession, request: gr.Request, progress=gr.Progress()):
        """api: /upload -- embed a photo into W+ (encoder + ``steps`` of optimisation)."""
        try:
            model = self.rt.require("photo upload")
            if not path:
                raise ValueError("choose an image file to upload")
            steps = _int(steps, "embedding steps", 0, self.rt.config.max_embed_steps)
            progress(0, desc="embedding the photo")

            def cb(step, loss):
                progress((step + 1, steps), desc=f"embedding (loss {loss:.3f})")

            res = model.embed(str(path), EmbedConfig(steps=steps), callback=cb)
            new = EditSession()
            crop = res.crop
            new.start(res.w_plus[0].cpu().numpy(), {
                "kind": "photo", "path": str(path), "psnr": round(res.psnr, 2),
                "crop": [crop.left, crop.top, crop.size, crop.original_width, crop.original_height],
            })  # fmt: skip
            note = f"Embedded: PSNR {res.psnr:.2f} dB after {len(res.losses)} steps ({res.perceptual_backend})."
            out = self.view(new)
            return (*out[:4], out[4] + " " + note, new)
        except (ValueError, OSError) as e:
            raise _err(e) from None

    # ------------------------------------------------------------------ editing
    def stop(self, request: gr.Request) -> str:
        """api: /stop -- ask this session's running edit to stop (its best result so far is kept)."""
        return "Stopping…" if self.stops.stop(_session_key(request)) else "No edit is running."

    def edit(self, editor, mask_file, mode, steps, state: EditSession, request: gr.Request,
             profile: gr.OAuthProfile | None = None, progress=gr.Progress()):  # fmt: skip
        """api: /edit -- run one edit and stream its progress.

        mode "optimization": realise the painted mask (the editor's layers, or an uploaded target-mask
        image in palette colours with transparent = unchanged); "vector": keep the applied library
        vectors; "vector + refinement": apply them and refine for ``steps``.
        Yields [before, after, image, mask, overlay, editor, metrics, info, state].
        """
        viewer = self.user(request, profile)
        key = _session_key(request)
        log.info("edit requested: mode=%s steps=%s", mode, steps)
        try:
            self._check_state(state)
            if mode not in MODES:
                raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
            steps = _int(steps, "steps", 1, self.rt.config.max_edit_steps)
            model = self.rt.model
            w0 = self._displayed_w(state, viewer)
            before = self.rt.render(w0)
            if mode == "optimization":
                self.rt.require("mask editing")
                target = (masks.mask_from_upload(mask_file, model.resolution, model.palette, before.mask)
                          if mask_file else masks.target_mask(editor, before.mask, model.palette))  # fmt: skip
                job = self._optimization_job(w0, target, steps)
            else:
                if not state.applied:
                    raise ValueError("no vectors are applied: pick one in the Library or Compose tab first")
                vectors = [(self.rt.vector_file(v, viewer), s) for v, s in state.applied]
                if mode == "vector + refinement":
                    self.rt.require("refinement")
                job = self._vector_job(state.w, vectors, steps if mode != "vector" else 0)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

        stop = self.stops.begin(key)
        try:
            yield from self._run_streamed(job, steps, stop, before, state, mode, viewer, progress)
        finally:
            stop.set()  # a closed stream (tab closed, cancelled) stops the worker too
            self.stops.end(key, stop)

    def _optimization_job(self, w0: np.ndarray, target: np.ndarray, steps: int):
        model = self.rt.model

        def job(callback, should_stop):
            w = torch.from_numpy(w0)[None].to(model.device)
            r = edit_by_mask(model.generator, model.branch, w, torch.from_numpy(target), model.class_names,
                             EditConfig(steps=steps), model.perceptual, model.encoder, callback, should_stop)  # fmt: skip
            return {"w": r.w_plus[0].cpu().numpy(), "delta": r.delta.cpu().numpy(), "classes": r.edited_classes,
                    "metrics": dict(r.metrics), "roi": r.roi.cpu().numpy(), "image": r.image, "label": "mask edit"}  # fmt: skip

        return job

    def _vector_job(self, w_base: np.ndarray, vectors, steps: int):
        model = self.rt.model

        def job(callback, should_stop):
            w = torch.from_numpy(w_base)[None].to(model.device)
            if steps > 0:
                r = refine(model.generator, model.branch, w, vectors, model.model_id, model.class_names, steps,
                           perceptual=model.perceptual, encoder=model.encoder, callback=callback,
                           should_stop=should_stop)  # fmt: skip
            else:
                r = apply_vectors(model.generator, w, vectors, model.model_id)
            classes = tuple(dict.fromkeys(c for v, _ in vectors for c in v.edited_classes))
            return {"w": r.w_plus[0].cpu().numpy(), "delta": (r.w_plus[0].cpu().numpy() - w_base), "classes": classes,
                    "metrics": dict(r.metrics), "roi": None, "image": r.image, "warnings": r.warnings,
                    "label": "vectors + refinement" if steps else "vectors kept"}  # fmt: skip

        return job

    def _run_streamed(self, job, steps, stop: threading.Event, before, state: EditSession, mode: str, viewer,
                      progress=None):  # fmt: skip
        """Run ``job`` in a worker thread; yield intermediate images every STREAM_EVERY_S, then the result."""
        q: queue.Queue = queue.Queue()
        box: dict = {}

        def callback(step, loss, img):
            q.put((step, loss, to_uint8(img)))

        def worker():
            try:
                box["result"] = job(callback, stop.is_set)
            except Exception as e:  # reported to the user below
                box["error"] = e

        t0 = time.perf_counter()
        thread = threading.Thread(target=worker, name="editgan-edit", daemon=True)
        thread.start()
        skip = gr.skip()
        last, latest = 0.0, None
        while thread.is_alive() or not q.empty():
            try:
                latest = q.get(timeout=0.05)
                while not q.empty():
                    latest = q.get_nowait()
            except queue.Empty:
                continue
            now = time.perf_counter()
            if latest is not None and now - last >= STREAM_EVERY_S:
                last = now
                step, loss, img = latest
                msg = f"Step {step + 1}/{steps}, loss {loss:.4f}" + (" (stopping…)" if stop.is_set() else "")
                if progress is not None:
                    progress((step + 1, steps), desc=msg)
                yield before.image, img, skip, skip, skip, skip, msg, skip, skip
        thread.join()
        if "error" in box:
            e = box["error"]
            if isinstance(e, (ValueError, LibraryError)):
                raise _err(e)
            log.exception("edit failed", exc_info=e)
            raise gr.Error(f"the edit failed unexpectedly ({type(e).__name__}: {e}); the session is unchanged")
        res = box["result"]
        after = to_uint8(res["image"])
        metrics = dict(res["metrics"])
        if res["roi"] is not None:
            outside = ~res["roi"]
            if outside.any():
                metrics["mean_abs_change_outside"] = float(np.abs(after.astype(np.float32) - before.image)[outside].mean())
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        state.change(res["w"], res["label"])
        state.applied = []
        state.last_edit = {"delta": np.asarray(res["delta"], np.float32), "classes": tuple(res["classes"]),
                           "metrics": {k: float(v) for k, v in metrics.items() if np.isfinite(v)},
                           "preview": thumbnail(res["image"]), "label": res["label"]}  # fmt: skip
        image, rgb, ovl, ed, info = self.view(state, viewer)
        text = f"**{res['label']}** ({mode})" + (" — stopped early, best result kept" if stop.is_set() else "")
        warnings = res.get("warnings") or []
        if warnings:
            text += "\n\n" + "\n".join(f"⚠️ {w}" for w in warnings)
        text += "\n\n" + _fmt_metrics(metrics)
        yield before.image, after, image, rgb, ovl, ed, text, info, state

    def undo(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /undo"""
        return self._history_step(state, request, profile, forward=False)

    def redo(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /redo"""
        return self._history_step(state, request, profile, forward=True)

    def _history_step(self, state: EditSession, request, profile, forward: bool):
        try:
            self._check_state(state)
            label = state.redo_step() if forward else state.undo()
            out = self.view(state, self.user(request, profile))
            return (*out[:4], f"{'Redid' if forward else 'Undid'}: {label}. " + out[4], state)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def export(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /export -- PNGs of the image and mask, the last edit as a vector file, and for photos the
        edit pasted back into the original. Returns (files, pasted photo or None)."""
        try:
            self._check_state(state)
            r = self.rt.render(self._displayed_w(state, self.user(request, profile)))
            files = []
            p = _tmp_file("image.png")
            Image.fromarray(r.image).save(p)
            files.append(str(p))
            if r.mask is not None:
                p = _tmp_file("mask.png")
                Image.fromarray(self.rt.colorize(r.mask)).save(p)
                files.append(str(p))
            if state.last_edit is not None:
                p = _tmp_file("edit.safetensors")
                self._edit_vector(state, "edit", "").save(p)
                files.append(str(p))
            pasted = None
            if state.source.get("kind") == "photo":
                left, top, size, ow, oh = state.source["crop"]
                pasted_img = paste_back(state.source["path"], Image.fromarray(r.image), CropBox(left, top, size, ow, oh))
                p = _tmp_file("photo_edited.png")
                pasted_img.save(p)
                files.append(str(p))
                pasted = str(p)
            return files, pasted
        except (ValueError, OSError, LibraryError) as e:
            raise _err(e) from None

    def _edit_vector(self, state: EditSession, name: str, description: str) -> VectorFile:
        e = state.last_edit
        if e is None:
            raise ValueError("there is no edit to save yet: run an edit first")
        return VectorFile(delta=e["delta"], model_id=self.rt.model_id, edited_classes=e["classes"],
                          default_scale=1.0, scale_min=-1.5, scale_max=2.0, metrics=e["metrics"], name=name,
                          description=description, preview=e["preview"])  # fmt: skip

    def save_edit(self, name, description, tags, visibility, state: EditSession, request: gr.Request,
                  profile: gr.OAuthProfile | None = None):  # fmt: skip
        """api: /save_edit -- publish the last edit as a library vector. Returns (message, vector id)."""
        try:
            user = self._need_user(request, profile, "saving to the library")
            self._check_state(state)
            vf = self._edit_vector(state, (name or "").strip(), description or "")
            info = self.rt.library.publish(user, vf, VectorMetadata(name=(name or "").strip(), description=description or "",
                                                                    tags=_parse_tags(tags), visibility=visibility))  # fmt: skip
            return f"Saved as vector **#{info.id} {info.name}** ({info.visibility}).", info.id
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    # ------------------------------------------------------------------ library
    def search(self, text, tag, edited_class, sort, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /search -- returns (gallery, table rows [id, name, author, classes, tags, likes, downloads])."""
        try:
            viewer = self.user(request, profile)
            q = SearchQuery(text=text or "", model_id=self.rt.model_id, edited_class=edited_class or None,
                            tag=(tag or "").strip().lower() or None, sort=sort or "relevance", page_size=40)  # fmt: skip
            page = self.rt.library.search(q, viewer)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None
        gallery, rows = [], []
        for v in page.items:
            rows.append([v.id, v.name, v.author, ", ".join(v.edited_classes), ", ".join(v.tags), v.like_count,
                         v.download_count])  # fmt: skip
            prev = self.rt.library.get_preview(v.id, viewer) if v.has_preview else None
            gallery.append((prev if prev is not None else np.zeros((8, 8, 3), np.uint8), f"#{v.id} {v.name} · ♥ {v.like_count}"))
        return gallery, rows

    def browse(self, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """The most recent vectors of the loaded model (the Library tab before any search)."""
        return self.search("", "", "", "recent", request, profile)

    def pick_result(self, rows, request: gr.Request, evt: gr.SelectData):
        try:
            data = rows.values.tolist() if hasattr(rows, "values") else rows
            return int(data[int(evt.index)][0])
        except (TypeError, ValueError, IndexError):
            raise gr.Error("could not read the selected result; search again") from None

    def vector_page(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /vector -- a vector's page: (markdown, versions rows, scale slider, like label, preview)."""
        try:
            viewer = self.user(request, profile)
            vid = _vector_id(vector_id)
            lib = self.rt.library
            v = lib.get(vid, viewer)
            versions = lib.versions(vid, viewer)
            remixes = lib.remixes(vid, viewer)
            liked = lib.has_liked(viewer, vid) if viewer else False
            preview = lib.get_preview(vid, viewer) if v.has_preview else None
        except (ValueError, LibraryError) as e:
            raise _err(e) from None
        lineage = f"remix of #{v.parent_id} (version {v.parent_version})" if v.parent_id else "original"
        if remixes:
            lineage += "; remixed as " + ", ".join(f"#{r.id} {r.name}" for r in remixes[:10])
        fits = "fits the loaded model" if v.model_id == self.rt.model_id else f"**for another model** (`{v.model_id}`)"
        md = (f"### #{v.id} {v.name}\n{v.description}\n\n"
              f"by **{v.author}** · {v.visibility} · licence {v.licence} · version {v.version} · ♥ {v.like_count} · "
              f"⬇ {v.download_count}\n\nedits: {', '.join(v.edited_classes) or '—'} · tags: {', '.join(v.tags) or '—'} · "
              f"scale {v.scale_min:g} … {v.scale_max:g} (default {v.default_scale:g}) · {fits}\n\nlineage: {lineage}\n\n"
              + _fmt_metrics(v.metrics))  # fmt: skip
        rows = [[x.number, x.created_at.strftime("%Y-%m-%d %H:%M"), x.note, ", ".join(x.edited_classes)] for x in versions]
        slider = gr.update(minimum=v.scale_min, maximum=v.scale_max, value=v.default_scale)
        return md, rows, slider, ("♥ Unlike" if liked else "♥ Like"), preview, v.id

    def like(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /like -- toggle the user's like; returns (button label, message)."""
        try:
            user = self._need_user(request, profile, "liking")
            vid = _vector_id(vector_id)
            lib = self.rt.library
            r = lib.unlike(user, vid) if lib.has_liked(user, vid) else lib.like(user, vid)
            return ("♥ Unlike" if r.liked else "♥ Like"), f"{r.like_count} like(s)"
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def apply(self, vector_id, scale, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /apply -- preview one vector at ``scale`` on the current image (mode 1, one generator pass).
        Returns (preview image, state)."""
        try:
            viewer = self.user(request, profile)
            self._check_state(state)
            vid = _vector_id(vector_id)
            scale = float(scale)
            vf = self.rt.vector_file(vid, viewer)
            if not vf.scale_min <= scale <= vf.scale_max:
                raise ValueError(f"scale {scale:g} is outside this vector's range [{vf.scale_min:g}, {vf.scale_max:g}]")
            state.applied = [(vid, scale)]
            r = self.rt.render(state.w + np.float32(scale) * np.asarray(vf.delta), with_mask=False)  # slider: image only
            return r.image, state
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def keep(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /keep -- bake the applied vectors into the image (undoable). Same outputs as /undo."""
        try:
            self._check_state(state)
            if not state.applied:
                raise ValueError("no vectors are applied")
            viewer = self.user(request, profile)
            w = self._displayed_w(state, viewer)
            vectors = [(self.rt.vector_file(v, viewer), s) for v, s in state.applied]
            state.last_edit = {"delta": w - state.w, "classes": tuple(dict.fromkeys(c for v, _ in vectors for c in v.edited_classes)),
                               "metrics": {}, "preview": thumbnail(torch.from_numpy(self.rt.render(w).image).permute(2, 0, 1)[None].float() / 127.5 - 1),
                               "label": "vectors kept"}  # fmt: skip
            label = "kept " + format_vectors(state.applied)
            state.change(w, label)
            state.applied = []
            out = self.view(state, viewer)
            return (*out[:4], "Kept the applied vectors. " + out[4], state)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def download_vector(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /download_vector -- the vector's .safetensors file (counted as a download)."""
        try:
            viewer = self.user(request, profile)
            vid = _vector_id(vector_id)
            data = self.rt.library.download(vid, viewer)
            info = self.rt.library.get(vid, viewer)
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in info.name)[:40] or "vector"
            p = _tmp_file(f"{vid}_{safe}.safetensors")
            p.write_bytes(data)
            return str(p)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def upload_vector(self, path, name, tags, visibility, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /upload_vector -- publish an editgan-vector/1 file. Returns (message, vector id)."""
        try:
            user = self._need_user(request, profile, "publishing a vector")
            if not path:
                raise ValueError("choose a .safetensors vector file")
            data = Path(path).read_bytes()
            vf = VectorFile.from_bytes(data, max_bytes=self.rt.library.max_upload_bytes)
            if self.rt.model_id is not None and vf.model_id != self.rt.model_id:
                raise VectorFormatError(f"this vector belongs to model {vf.model_id}, not to the loaded model "
                                        f"{self.rt.model_id}; it cannot be applied here")  # fmt: skip
            meta = VectorMetadata(name=(name or "").strip() or None, tags=_parse_tags(tags), visibility=visibility)
            info = self.rt.library.publish(user, vf, meta)
            return f"Published **#{info.id} {info.name}**.", info.id
        except (ValueError, OSError, LibraryError) as e:
            raise _err(e) from None

    # ------------------------------------------------------------------ compose
    def vector_choices(self, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /vector_choices -- the loaded model's visible vectors as dropdown choices."""
        try:
            viewer = self.user(request, profile)
            if self.rt.model_id is None:
                return [gr.update(choices=[])] * COMPOSE_SLOTS
            items = self.rt.library.list_vectors(viewer, model_id=self.rt.model_id, sort="likes", page_size=100)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None
        items = getattr(items, "items", items)
        choices = [(f"#{v.id} {v.name}", str(v.id)) for v in items]
        return [gr.update(choices=choices)] * COMPOSE_SLOTS

    def slot_range(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        if not vector_id:
            return gr.update(value=0.0)
        try:
            v = self.rt.library.get(_vector_id(vector_id), self.user(request, profile))
        except (ValueError, LibraryError) as e:
            raise _err(e) from None
        return gr.update(minimum=v.scale_min, maximum=v.scale_max, value=v.default_scale)

    def _items(self, args) -> list[tuple[int, float]]:
        ids, scales = args[:COMPOSE_SLOTS], args[COMPOSE_SLOTS:2 * COMPOSE_SLOTS]
        items = []
        for vid, s in zip(ids, scales):
            if vid in (None, ""):
                continue
            vid = _vector_id(vid)
            if any(vid == i for i, _ in items):
                raise ValueError(f"vector #{vid} is chosen twice")
            items.append((vid, float(s or 0.0)))
        if not items:
            raise ValueError("choose at least one vector")
        return items

    def compose(self, v1, v2, v3, v4, s1, s2, s3, s4, state: EditSession, request: gr.Request,
                profile: gr.OAuthProfile | None = None):
        """api: /compose -- ids and scales of up to 4 slots; live preview (mode 1).
        Returns (preview image, warnings markdown, state)."""
        values = (v1, v2, v3, v4, s1, s2, s3, s4)
        try:
            viewer = self.user(request, profile)
            self._check_state(state)
            items = self._items(values)
            vectors = [(self.rt.vector_file(v, viewer), s) for v, s in items]
            for (vf, s), (vid, _) in zip(vectors, items):
                if not vf.scale_min <= s <= vf.scale_max:
                    raise ValueError(f"scale {s:g} of #{vid} is outside its range [{vf.scale_min:g}, {vf.scale_max:g}]")
            state.applied = items
            w = self._displayed_w(state, viewer)
            r = self.rt.render(w, with_mask=False)
            warn = interference([(vf, s) for vf, s in vectors])
            md = "\n".join(f"⚠️ {x}" for x in warn) if warn else "No interference expected between these vectors."
            return r.image, md, state
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def save_composition(self, name, visibility, v1, v2, v3, v4, s1, s2, s3, s4, request: gr.Request,
                         profile: gr.OAuthProfile | None = None):  # fmt: skip
        """api: /save_composition -- returns a message with the composition id."""
        values = (v1, v2, v3, v4, s1, s2, s3, s4)
        try:
            user = self._need_user(request, profile, "saving a composition")
            items = self._items(values)
            self.rt.require("saving a composition")
            c = self.rt.library.save_composition(user, (name or "").strip(), self.rt.model_id, items,
                                                 visibility=visibility)  # fmt: skip
            return f"Saved composition **#{c.id} {c.name}** ({c.visibility}, {len(c.items)} vectors)."
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    # ------------------------------------------------------------------ share
    def share(self, state: EditSession, request: gr.Request) -> str:
        """api: /share -- a link (query string) that opens this image and its applied vectors."""
        try:
            self._check_state(state)
            vec = format_vectors(state.applied)
            if state.pristine and state.source.get("kind") == "seed":
                query = f"?seed={state.source['seed']}" + (f"&v={vec}" if vec else "")
            else:
                query = f"?s={self.shares.save(self.rt.model_id, state.w, state.applied)}"
        except (ValueError, OSError) as e:
            raise _err(e) from None
        base = ""
        headers = getattr(request, "headers", None) or {}
        ref = headers.get("referer") or headers.get("origin") or ""
        if ref:
            base = ref.split("?", 1)[0]
        return base + query

    def open_share(self, query: str, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /open_share -- open a share link's state (its query string, e.g. '?seed=3&v=12:1')."""
        from urllib.parse import parse_qs

        try:
            q = {k: v[-1] for k, v in parse_qs((query or "").split("?", 1)[-1]).items()}
            return self._open_params(q, request, profile)
        except (ValueError, LibraryError) as e:
            raise _err(e) from None

    def _open_params(self, q: dict, request, profile=None) -> tuple:
        self.rt.require("opening a shared state")
        viewer = self.user(request, profile)
        new = EditSession()
        if "s" in q:
            w, applied = self.shares.load(q["s"], self.rt.model_id, self.rt.model.latent_shape)
            new.start(w, {"kind": "shared", "token": q["s"]})
        elif "seed" in q:
            seed = _int(q["seed"], "seed", 0, MAX_SEED)
            new.start(self.rt.sample(seed), {"kind": "seed", "seed": seed})
            applied = parse_vectors(q.get("v", ""))
        else:
            raise ValueError("a share link has ?seed=N[&v=id:scale,...] or ?s=TOKEN")
        for vid, _ in applied:
            self.rt.vector_file(vid, viewer)  # visible and fits, or a readable error
        new.applied = applied[:MAX_APPLIED]
        out = self.view(new, viewer)
        return (*out, new)

    # ------------------------------------------------------------------ page load
    def on_load(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """Banner, who is acting, and a shared state from the URL (?seed= / ?s=), else seed 0."""
        viewer = self.user(request, profile)
        who = f"Signed in as **{viewer}**." if viewer else "Not signed in: browse, search and apply only."
        banner = self.rt.status_markdown() + "\n\n" + self.rt.identity.describe() + " " + who
        skip = gr.skip()
        if not self.caps.sample:
            return banner, skip, skip, skip, skip, skip, skip
        params = dict(getattr(request, "query_params", {}) or {})
        try:
            if "s" in params or "seed" in params:
                out = self._open_params(params, request, profile)
                return (banner, *out)
            if state is None or state.w is None:
                new = EditSession()
                seed = self.rt.config.example_seeds[0] if self.rt.config.example_seeds else 0
                new.start(self.rt.sample(seed), {"kind": "seed", "seed": seed})
                return (banner, *self.view(new, viewer), new)
        except (ValueError, LibraryError) as e:
            gr.Warning(f"Could not open the link: {e}")
        return banner, skip, skip, skip, skip, skip, skip

