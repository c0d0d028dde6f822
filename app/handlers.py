"""The editor's actions as plain functions (methods of one object bound to the shared Runtime).

This module holds the Edit tab (start, edit, stop, undo/redo, keep, export, save) and the page load;
app/library_handlers.py the Library, Compose and Share tabs; app/handler_util.py what they share.

Every method takes component values and the session's :class:`EditSession`, and returns component
values; ui.py wires them to events with an ``api_name`` each. Expected refusals (bad input, a
missing model part, a library rule) raise ``gr.Error`` with a readable message; the session state
is only changed once an action has succeeded, so it keeps working after any error.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Optional

import gradio as gr
import numpy as np
import torch
from PIL import Image

from app import masks
from app.handler_util import (
    MAX_SEED,
    MODES,
    StopFlags,
    fmt_metrics,
    md_text,
    parse_tags,
    readable,
    session_key,
    tmp_file,
    toast_text,
    whole_number,
)
from app.gpu import EDIT_S, EMBED_S, SAVE_S, TUNE_S, gpu_task
from app.label_handlers import LabelHandlers
from app.library_handlers import LibraryHandlers
from app.memory import trim as trim_memory
from app.runtime import Runtime, to_uint8
from app.session import EditSession, ShareStore, format_vectors
from core.edit import edit_by_mask
from core.edit_vector import (
    TransferConfig,
    apply_vectors,
    calibrated_delta,
    make_transferable,
    painted_change,
    refine,
    thumbnail,
)
from core.embed import EmbedConfig
from core.image_io import CropBox, open_image, paste_back
from core.vector_format import VectorFile
from vector_library import LibraryError, PermissionDenied, VectorMetadata

log = logging.getLogger(__name__)
STREAM_EVERY_S = 0.25


class Handlers(LibraryHandlers, LabelHandlers):
    def __init__(self, runtime: Runtime) -> None:
        from app.training import BranchTrainer
        from core.train.fewshot import FewShotConfig

        self.rt = runtime
        if runtime.trainer is None:
            cfg = runtime.config
            runtime.trainer = BranchTrainer(runtime, FewShotConfig(steps=cfg.branch_train_steps,
                                                                   train_reader=cfg.branch_train_reader))  # fmt: skip
        self.stops = StopFlags()
        self._known_users: set[str] = set()
        self.shares = ShareStore(runtime.library.states, runtime.config.resolved_data_dir / "shares")

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
        r = self.rt.render(self._displayed_w(state, viewer), tuning=state.tuning)
        if r.mask is None:
            return r.image, None, None, gr.skip(), state.describe()
        rgb = self.rt.colorize(r.mask)
        ed = masks.editor_value(rgb, masks.display_size(r.mask.shape[0])) if editor else gr.skip()
        return r.image, rgb, masks.overlay(r.image, rgb), ed, state.describe()

    def current_view(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """The Edit tab's view of the session as it now stands: after a Library or Compose preview, the image with
        the vectors applied, which is what the next edit starts from."""
        try:
            self._check_state(state)
            return (*self.view(state, self.user(request, profile)), state)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    # ------------------------------------------------------------------ start: seed, example, photo
    def sample(self, seed, state: EditSession, request: gr.Request):
        """api: /sample -- a random sample of the generator for ``seed``."""
        try:
            seed = whole_number(seed, "seed", 0, MAX_SEED)
            w = self.rt.sample(seed)
            new = EditSession()
            new.start(w, {"kind": "seed", "seed": seed})
            return (*self.view(new), new)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

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

    @gpu_task(EMBED_S)  # a ZeroGPU while it runs; a no-op elsewhere (app/gpu.py)
    def upload(self, path, steps, state: EditSession, request: gr.Request, tune=True, progress=gr.Progress()):
        """api: /upload -- embed a photo into W+ (encoder + ``steps`` of optimisation), then, with ``tune``, tune
        the generator to it (pivotal tuning, ``AppConfig.tune_steps`` steps) so that edits start from the photo
        itself rather than the nearest face the generator draws."""
        try:
            model, steps, tune_steps = self._upload_args(path, steps, tune)
            total = steps + tune_steps
            progress(0, desc="embedding the photo")

            def cb(step, loss):
                what = "embedding" if step < steps else "tuning the generator to the photo"
                progress((step + 1, total), desc=f"{what} (loss {loss:.3f})")

            try:
                res = model.embed(str(path), EmbedConfig(steps=steps, tune_steps=tune_steps), callback=cb)
            finally:
                trim_memory()
            token = self.rt.store_tuning(res.tuning) if res.tuning is not None else None
            w = res.w_plus[0].cpu().numpy()
            new = EditSession()
            crop = res.crop
            source = {"kind": "photo", "path": str(path), "psnr": round(res.psnr, 2),
                      "crop": [crop.left, crop.top, crop.size, crop.original_width, crop.original_height]}  # fmt: skip
            if token is None and self.rt.config.tune_steps > 0:  # kept so that /tune can tune it later
                source["photo"] = self.rt.store_photo(res.target, w)
            new.start(w, source, tuning=token)
            parts = "; its parts held to the image reader's reading of the photo" if res.reader_guided else ""
            note = f"Embedded: PSNR {res.psnr_untuned:.2f} dB after {len(res.losses)} steps ({res.perceptual_backend}{parts})."
            if token is not None:
                mask = "; the mask held to the image reader's reading" if res.tune_branch_guided else ""
                note += (f" Generator tuned to the photo ({len(res.tune_losses)} steps, {res.tune_seconds:.1f} s{mask}): "
                         f"PSNR {res.psnr:.2f} dB.")  # fmt: skip
            unlike = model.unlike_its_samples(res.target)
            if unlike:
                gr.Warning(toast_text(unlike))
                note = unlike + " " + note
            out = self.view(new)
            return (*out[:4], out[4] + " " + note, new)
        except (ValueError, OSError) as e:
            raise readable(e) from None

    def _upload_args(self, path, steps, tune, read: bool = False):
        """The upload's model, embedding steps and tuning steps, checked; with ``read``, the file is opened as the
        embedding opens it (format, size), so that what would be refused is refused before any work."""
        model = self.rt.require("photo upload")
        if not path:
            raise ValueError("choose an image file to upload")
        steps = whole_number(steps, "embedding steps", 0, self.rt.config.max_embed_steps)
        tune = tune if isinstance(tune, bool) else str(tune).strip().lower() in ("1", "true", "yes")
        if read:
            open_image(str(path))
        return model, steps, self.rt.config.tune_steps if tune else 0

    def check_upload(self, path, steps, tune=True) -> None:
        """The upload's refusals that need no model pass (no file, not an image, too small or too large, bad steps),
        run as a quick event before /upload: a refusal there leaves the workspace on screen (a failed event covers
        its outputs with an error badge). /upload makes the same checks for API callers."""
        try:
            self._upload_args(path, steps, tune, read=True)
        except (ValueError, OSError) as e:
            raise readable(e) from None

    def check_tune(self, state: EditSession) -> None:
        """/tune's refusals, run as a quick event before it (see :meth:`check_upload`)."""
        try:
            self._tune_source(state)
        except (ValueError, OSError) as e:
            raise readable(e) from None

    def _tune_source(self, state: EditSession):
        model = self.rt.require("photo upload")
        if state is None or state.w is None:
            raise ValueError("there is no photo yet: upload one first")
        if state.tuning is not None:
            raise ValueError("the generator is already tuned to this photo")
        if state.source.get("kind") != "photo":
            raise ValueError("only a photo uploaded in this session can be tuned (share links carry no photo)")
        if self.rt.config.tune_steps <= 0:
            raise ValueError("this server does not tune photos (AppConfig.tune_steps is 0)")
        if "photo" not in state.source:
            raise ValueError("this photo was not kept for tuning on this server: upload it again with tuning on")
        return model

    @gpu_task(TUNE_S)  # a ZeroGPU while it runs; a no-op elsewhere (app/gpu.py)
    def tune(self, state: EditSession, request: gr.Request, progress=gr.Progress()):
        """api: /tune -- tune the generator to this session's uploaded photo now (pivotal tuning at the latent the
        upload found, ``AppConfig.tune_steps`` steps), for a photo uploaded without tuning. Changes already made
        stay: they are latent changes, and the tuned generator draws them on the photo itself."""
        try:
            model = self._tune_source(state)
            steps = self.rt.config.tune_steps
            image, pivot = self.rt.load_photo(state.source["photo"])
            progress(0, desc="tuning the generator to the photo")

            def cb(step, loss):
                progress((step + 1, steps), desc=f"tuning the generator to the photo (loss {loss:.3f})")

            try:
                res = model.tune(image, torch.from_numpy(pivot)[None].to(model.device), EmbedConfig(tune_steps=steps),
                                 callback=cb)  # fmt: skip
            finally:
                trim_memory()
            state.tuning = self.rt.store_tuning(res.tuning)
            mask = "; the mask held to the image reader's reading" if res.tune_branch_guided else ""
            note = (f" Generator tuned to the photo ({len(res.tune_losses)} steps, {res.tune_seconds:.1f} s{mask}): "
                    f"PSNR {res.psnr_untuned:.2f} -> {res.psnr:.2f} dB at the embedded latent.")  # fmt: skip
            out = self.view(state, self.user(request))
            return (*out[:4], out[4] + note, state)
        except (ValueError, OSError) as e:
            raise readable(e) from None

    # ------------------------------------------------------------------ editing
    def stop(self, request: gr.Request) -> str:
        """api: /stop -- ask this session's running edit to stop (its best result so far is kept)."""
        return "Stopping…" if self.stops.stop(session_key(request)) else "No edit is running."

    @gpu_task(EDIT_S)  # a ZeroGPU while it runs; a no-op elsewhere (app/gpu.py)
    def edit(self, editor, mask_file, mode, steps, state: EditSession, request: gr.Request,
             profile: gr.OAuthProfile | None = None, progress=gr.Progress()):  # fmt: skip
        """api: /edit -- run one edit and stream its progress.

        mode "optimization": realise the painted mask (the editor's layers, or an uploaded target-mask
        image in palette colours with transparent = unchanged); "vector": keep the applied library
        vectors; "vector + refinement": apply them and refine for ``steps``.
        Yields [before, after, image, mask, overlay, editor, metrics, info, state].
        """
        viewer = self.user(request, profile)
        key = session_key(request)
        log.info("edit requested: mode=%s steps=%s", mode, steps)
        try:
            self._check_state(state)
            if mode not in MODES:
                raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
            steps = whole_number(steps, "steps", 1, self.rt.config.max_edit_steps)
            model = self.rt.bundle(state.tuning)
            w0 = self._displayed_w(state, viewer)
            before = self.rt.render(w0, tuning=state.tuning)
            if mode == "optimization":
                self.rt.require("mask editing")
                target = (masks.mask_from_upload(mask_file, model.resolution, model.palette, before.mask)
                          if mask_file else masks.target_mask(editor, before.mask, model.palette))  # fmt: skip
                job = self._optimization_job(model, w0, target, steps)
            else:
                if not state.applied:
                    raise ValueError("no vectors are applied: pick one in the Library or Compose tab first")
                vectors = [(self.rt.vector_file(v, viewer), s) for v, s in state.applied]
                if mode == "vector + refinement":
                    self.rt.require("refinement")
                job = self._vector_job(model, state.w, vectors, steps if mode != "vector" else 0)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

        stop = self.stops.begin(key)
        try:
            yield from self._run_streamed(job, steps, stop, before, state, mode, viewer, progress)
        finally:
            stop.set()  # a closed stream (tab closed, cancelled) stops the worker too
            self.stops.end(key, stop)

    def _optimization_job(self, model, w0: np.ndarray, target: np.ndarray, steps: int):
        def job(callback, should_stop):
            w = torch.from_numpy(w0)[None].to(model.device)
            r = edit_by_mask(model.generator, model.branch, w, torch.from_numpy(target), model.class_names,
                             model.edit_config(steps=steps), model.perceptual, model.encoder, callback, should_stop,
                             reader=model.reader)  # fmt: skip
            return {"w": r.w_plus[0].cpu().numpy(), "delta": r.delta.cpu().numpy(), "classes": r.edited_classes,
                    "metrics": dict(r.metrics), "roi": r.roi.cpu().numpy(), "image": r.image, "label": "mask edit",
                    "edit": {"start_w": w0, "result": r}, "warnings": edit_warnings(r)}  # fmt: skip

        return job

    def _vector_job(self, model, w_base: np.ndarray, vectors, steps: int):
        def job(callback, should_stop):
            w = torch.from_numpy(w_base)[None].to(model.device)
            if steps > 0:
                r = refine(model.generator, model.branch, w, vectors, model.model_id, model.class_names, steps,
                           model.edit_config(), perceptual=model.perceptual, encoder=model.encoder, callback=callback,
                           reader=model.reader, should_stop=should_stop)  # fmt: skip
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
        trim_memory()  # the edit's activations are freed: give the pages back (app/memory.py)
        if "error" in box:
            e = box["error"]
            if isinstance(e, (ValueError, LibraryError)):
                raise readable(e)
            log.exception("edit failed", exc_info=e)
            msg = f"the edit failed unexpectedly ({type(e).__name__}: {e}); the session is unchanged"
            raise gr.Error(toast_text(msg))
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
                           "preview": thumbnail(res["image"]), "label": res["label"], **res.get("edit", {}),
                           "branch_version": self.rt.branch_version}  # fmt: skip
        image, rgb, ovl, ed, info = self.view(state, viewer)
        text = f"**{res['label']}** ({mode})" + (" — stopped early, best result kept" if stop.is_set() else "")
        warnings = res.get("warnings") or []
        if warnings:
            text += "\n\n" + "\n\n".join(f"⚠️ {md_text(w)}" for w in warnings)
        text += "\n\n" + fmt_metrics(metrics)
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
            raise readable(e) from None

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
                               "metrics": {}, "preview": thumbnail(torch.from_numpy(self.rt.render(w, tuning=state.tuning).image).permute(2, 0, 1)[None].float() / 127.5 - 1),
                               "label": "vectors kept"}  # fmt: skip
            label = "kept " + format_vectors(state.applied)
            state.change(w, label)
            state.applied = []
            out = self.view(state, viewer)
            return (*out[:4], "Kept the applied vectors. " + out[4], state)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def export(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /export -- PNGs of the image and mask, the last edit as a vector file, and for photos the
        edit pasted back into the original. Returns (files, pasted photo or None)."""
        try:
            self._check_state(state)
            r = self.rt.render(self._displayed_w(state, self.user(request, profile)), tuning=state.tuning)
            files = []
            p = tmp_file("image.png")
            Image.fromarray(r.image).save(p)
            files.append(str(p))
            if r.mask is not None:
                p = tmp_file("mask.png")
                Image.fromarray(self.rt.colorize(r.mask)).save(p)
                files.append(str(p))
            if state.last_edit is not None:
                p = tmp_file("edit.safetensors")
                self._edit_vector(state, "edit", "", transferable=True).save(p)  # once made, the better one
                files.append(str(p))
            pasted = None
            if state.source.get("kind") == "photo":
                left, top, size, ow, oh = state.source["crop"]
                pasted_img = paste_back(state.source["path"], Image.fromarray(r.image), CropBox(left, top, size, ow, oh))
                p = tmp_file("photo_edited.png")
                pasted_img.save(p)
                files.append(str(p))
                pasted = str(p)
            return files, pasted
        except (ValueError, OSError, LibraryError) as e:
            raise readable(e) from None

    def _edit_vector(self, state: EditSession, name: str, description: str, transferable: bool = False) -> VectorFile:
        """The last edit as a vector: its transferable version when asked for and made, else its own delta."""
        e = state.last_edit
        if e is None:
            raise ValueError("there is no edit to save yet: run an edit first")
        src = e["transferable"] if transferable and "transferable" in e else e
        change = painted_change(e["result"]) if "result" in e else None  # mode 2 carries it onto other faces
        # the branch version the edit was made with (0: the bundle's own branch) travels with the vector
        metrics = {**src["metrics"], "branch_version": e.get("branch_version", self.rt.branch_version)}
        return VectorFile(delta=src["delta"], model_id=self.rt.model_id, edited_classes=e["classes"],
                          default_scale=1.0, scale_min=-1.5, scale_max=2.0, metrics=metrics, name=name,
                          description=description, preview=src["preview"], change=change)  # fmt: skip

    def _make_transferable(self, state: EditSession, progress=None) -> str:
        """Optimise the last mask edit's delta on random faces too (core.edit_vector.make_transferable), once
        per edit, reporting each step with the time left. Returns a sentence for the save message."""
        e = state.last_edit
        if "result" not in e:
            return " Saved as it is: only a mask edit (optimization) can be made transferable."
        if "transferable" not in e:
            model = self.rt.bundle(state.tuning)  # the photo's own generator for the source; other faces: the model's
            w = torch.from_numpy(e["start_w"])[None].to(model.device)
            config, t0 = TransferConfig(), time.perf_counter()
            steps = config.steps

            def cb(step, loss, img):
                if progress is not None:
                    left = (time.perf_counter() - t0) / (step + 1) * (steps - step - 1)
                    progress((step + 1, steps), desc=f"making the vector transfer to other faces: step {step + 1}/"
                                                      f"{steps}, about {left:.0f} s left")  # fmt: skip

            if progress is not None:
                progress(0, desc="making the vector transfer to other faces")
            r = make_transferable(model.generator, model.branch, w, e["result"], model.class_names, config,
                                  model.edit_config(), perceptual=model.perceptual, encoder=model.encoder,
                                  reader=model.reader,
                                  other_generator=self.rt.model.generator, callback=cb)  # fmt: skip
            delta, calibration = r.delta.cpu().numpy().astype(np.float32), {}
            change = painted_change(e["result"])
            if change is not None:  # its strength, picked on other faces of the untuned model
                if progress is not None:
                    progress(None, desc="setting the vector's strength on other faces")
                delta, calibration = calibrated_delta(self.rt.model.generator, self.rt.model.branch, delta, change,
                                                      model.class_names, edit_config=model.edit_config())  # fmt: skip
            e["transferable"] = {"delta": delta, "preview": thumbnail(r.image),
                                 "metrics": {**e["metrics"], **{k: float(v) for k, v in r.metrics.items() if np.isfinite(v)},
                                             **calibration}}  # fmt: skip
        m = e["transferable"]["metrics"]
        text = (f" Made transferable: on {int(m['transfer_samples'])} random faces{_faces_drawn(m)} the vector now "
                f"changes {m['transfer_psnr_outside_before']:.1f} -> {m['transfer_psnr_outside_after']:.1f} dB PSNR "
                "outside their edited parts (higher: less spill)")
        if "transfer_carried_accuracy_after" in m:
            before, after = m["transfer_carried_accuracy_before"], m["transfer_carried_accuracy_after"]
            text += (f", and on the {int(m['transfer_carried_faces'])} that have the edited parts, "
                     f"{100 * before:.0f}% -> {100 * after:.0f}% of the painted change, carried over, "
                     "reads as painted")  # fmt: skip
        return text + "." + _calibration_note(m)

    @gpu_task(SAVE_S)  # a ZeroGPU while it runs; a no-op elsewhere (app/gpu.py)
    def save_edit(self, name, description, tags, visibility, transfer, state: EditSession, request: gr.Request,
                  profile: gr.OAuthProfile | None = None, progress=gr.Progress()):  # fmt: skip
        """api: /save_edit -- publish the last edit as a library vector. Returns (message, vector id).

        Every field is checked before any work. With ``transfer`` (the default in the app), a mask edit is first
        made to transfer to other faces (tens of seconds on a CPU, with progress; done once per edit). The same
        edit saved again the same way is refused with the id it was saved as."""
        try:
            user = self._need_user(request, profile, "saving to the library")
            self._check_state(state)
            if state.last_edit is None:
                raise ValueError("there is no edit to save yet: run an edit first")
            meta = VectorMetadata(name=(name or "").strip(), description=description or "", tags=parse_tags(tags),
                                  visibility=visibility)  # fmt: skip
            self.rt.library.check_metadata(meta)
            transfer = transfer if isinstance(transfer, bool) else str(transfer).strip().lower() in ("1", "true", "yes")
            e = state.last_edit
            how = "transferable" if transfer and "result" in e else "as edited"
            saved = e.setdefault("saved", {})
            if how in saved:
                vid, vname = saved[how]
                raise ValueError(f"this edit is already saved as vector #{vid} ({vname}); run a new edit to save "
                                 f"another vector, or open #{vid} in the Library tab")  # fmt: skip
            note = self._make_transferable(state, progress) if transfer else ""
            vf = self._edit_vector(state, meta.name, meta.description, transferable=transfer)
            trim_memory()
            info = self.rt.library.publish(user, vf, meta)
            saved[how] = (info.id, info.name)
            return f"Saved as vector **#{info.id} {md_text(info.name)}** ({info.visibility}).{note}", info.id
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    # ------------------------------------------------------------------ page load
    def on_load(self, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """Banner, who is acting, and a shared state from the URL (?seed= / ?s=), else seed 0."""
        viewer = self.user(request, profile)
        who = f"Signed in as **{md_text(viewer)}**." if viewer else "Not signed in: browse, search and apply only."
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
            gr.Warning(toast_text(f"Could not open the link: {e}"))
        return banner, skip, skip, skip, skip, skip, skip


def _calibration_note(metrics: dict) -> str:
    """What the strength calibration did (core.edit_vector.calibrated_delta), for the save message."""
    if "calibrated_scale" not in metrics or not metrics.get("calibration_faces"):
        return ""
    n, scale = int(metrics["calibration_faces"]), float(metrics["calibrated_scale"])
    made = round(n * float(metrics.get("calibration_made", 0.0)))
    if scale == 1.0:
        return f" Its strength is as the edit left it: at scale 1 it makes the change on {made} of {n} other faces."
    at1 = metrics.get("calibration_made_at_1")
    was = f", {round(n * float(at1))} at the edit's own strength" if at1 is not None else ""
    return (f" Its strength was set to {scale:g}x the edit's, so that scale 1 makes the change on {made} of {n} "
            f"other faces{was}.")


def _faces_drawn(metrics: dict) -> str:
    """How make_transferable chose its faces, when it had to look for them (core.edit_vector.draw_faces): "" when the
    first faces drawn all fit the change."""
    n, drawn = int(metrics.get("transfer_samples", 0)), int(metrics.get("transfer_faces_drawn", 0))
    fitting = int(metrics.get("transfer_faces_fitting", n))
    if drawn <= n and fitting >= n:
        return ""
    text = f" (looked through {drawn} for faces the change fits: "
    if fitting >= n:
        return text + f"{n} do)"
    return text + f"only {fitting} do, the other {n - fitting} lack what the change needs)"


# below this share of the painted pixels reading as painted after a mask edit, the app says the change fell short
REACHED_WARN = 0.5


def edit_warnings(result) -> list[str]:
    """What a user should know about a mask edit's result (core.edit.EditResult): that nothing changed, or that the
    branch reads little of the painted change in the result."""
    if result.best_step == 0:
        return ["No step improved on the image, so it is unchanged: the generator may not be able to draw this "
                "change here. Try painting a larger or simpler change, or more steps."]  # fmt: skip
    reached = result.metrics.get("painted_change_reached")
    if reached is not None and reached < REACHED_WARN:
        return [f"Only {100 * reached:.0f}% of the painted change reads as painted in the result: the generator may "
                "not draw it fully here. More steps, or a larger or simpler change, may help."]  # fmt: skip
    return []
