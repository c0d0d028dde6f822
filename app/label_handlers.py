"""The Label tab: label a few of the generator's samples together, train its segmentation branch, share it.

A mixin of :class:`app.handlers.Handlers` (same rules: plain methods, component values in and out,
refusals as ``gr.Error``, the session state changed only on success). The rules themselves -- who may
label, claims while painting, conflicts between two people's saves, the history of every mask, the
training lock -- are the label store's (:class:`vector_library.LabelStore`); this module turns them into
a painter:

* a label set belongs to one generator (its model id) and has its own classes and colours;
* its samples are seeds (+ truncation): the image is rendered, never stored;
* the painter shows the sample with the *working mask* over it; brush strokes on the editor's layer
  replace the working mask where they cover a cell (app/masks.py reads them), the fill bucket
  (a click on the "fill" view) fills the connected region of one class under the click;
* a save stores the working mask as the sample's next version; saving over somebody's newer mask is
  refused with who and when, unless "overwrite" is ticked.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gradio as gr
import numpy as np
from scipy import ndimage

from app import masks
from app.handler_util import MODES, NO_BRANCH_HELP, PAINT_HELP, md_text, readable, tmp_file, toast_text, whole_number
from core.data.palette import colorize
from vector_library import FACE_TEMPLATE, LibraryError

MAX_NEW_SAMPLES = 32
TRUNCATION = 0.7
OVERLAY_ALPHA = 0.45
CANDIDATES_PER_SAMPLE = 16  # diverse samples: the farthest of this many random seeds, in W
_CLASS_LINE = re.compile(r"^\s*(.+?)\s*[,:]?\s*#([0-9a-fA-F]{6})\s*$")


@dataclass
class LabelSession:
    """The Label tab's per-session state (small: ids and one [R, R] mask)."""

    set_id: Optional[int] = None
    sample_id: Optional[int] = None
    base_version: int = 0  # the stored version the working mask started from (0: none)
    work: Optional[np.ndarray] = None  # [R, R] uint8 class ids, the mask being painted


def parse_classes(text: str) -> list[tuple[str, tuple[int, int, int]]]:
    """One class per line, ``name #rrggbb`` -> [(name, (r, g, b))]; the store checks names and colours."""
    out = []
    for i, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        m = _CLASS_LINE.match(line)
        if m is None:
            raise ValueError(f"class line {i} ({line.strip()[:40]!r}) is not 'name #rrggbb', e.g. 'sky #3080ff'")
        h = m.group(2)
        out.append((m.group(1), (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))))
    if not out:
        raise ValueError("list the classes, one per line as 'name #rrggbb' (the first is the background)")
    return out


def classes_text(classes) -> str:
    return "\n".join(f"{c[0]} #{c[1][0]:02x}{c[1][1]:02x}{c[1][2]:02x}" if isinstance(c, tuple)
                     else f"{c.name} #{c.color[0]:02x}{c.color[1]:02x}{c.color[2]:02x}" for c in classes)  # fmt: skip


def set_choice(info) -> str:
    return f"{info.id}: {info.name}"


def set_id_of(choice) -> int:
    """'12: my set' or 12 -> 12."""
    text = str(choice if choice is not None else "").strip()
    m = re.match(r"^(\d{1,12})(?::.*)?$", text, re.S)
    if m is None:
        raise ValueError("choose a label set first (or create one)")
    return int(m.group(1))


def palette_of(info) -> np.ndarray:
    return np.array([c.color for c in info.classes], np.uint8)


def flood_fill(mask: np.ndarray, x: int, y: int, cls: int) -> np.ndarray:
    """The connected region (4-neighbours) of the class under (x, y) set to ``cls``. [R, R] uint8."""
    region, _ = ndimage.label(mask == mask[y, x])
    out = mask.copy()
    out[region == region[y, x]] = cls
    return out


class LabelHandlers:
    """Needs from its host: ``rt`` (Runtime), ``user`` and ``_need_user``."""

    # ------------------------------------------------------------------ sets
    def _sets(self) -> list[str]:
        base = self.rt.base_model
        return [set_choice(s) for s in self.rt.labels.sets_for_model(base.model_id)] if base is not None else []

    def label_set_choices(self, current=None):
        """The label sets of this generator, newest first (keeps the current choice when it still exists)."""
        choices = self._sets()
        value = current if current in choices else (choices[0] if choices else None)
        return gr.Dropdown(choices=choices, value=value)

    def label_template(self) -> str:
        """The face classes to start a class list from."""
        return classes_text(FACE_TEMPLATE)

    def label_create(self, name, classes, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_create -- a new label set for this generator; returns (set choice, message)."""
        try:
            user = self._need_user(request, profile, "creating a label set")
            base = self.rt.require_base()
            info = self.rt.labels.create_set(base.model_id, str(name or "").strip(), user, parse_classes(classes),
                                             base.resolution)  # fmt: skip
            return (gr.Dropdown(choices=self._sets(), value=set_choice(info)),
                    f"Label set **{md_text(info.name)}** created with {len(info.classes)} classes. Add samples below.")
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_update_classes(self, choice, classes, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_classes -- change the class list (the set's owner, until a branch is trained from it)."""
        try:
            user = self._need_user(request, profile, "changing classes")
            info = self.rt.labels.update_classes(set_id_of(choice), user, parse_classes(classes))
            return f"Classes of **{md_text(info.name)}** updated: {len(info.classes)} classes."
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_add_member(self, choice, member, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_add_member -- let another user label and train this set (the set's owner only)."""
        try:
            user = self._need_user(request, profile, "adding a member")
            member = str(member or "").strip()
            info = self.rt.labels.get_set(set_id_of(choice))
            if info.owner != user:
                raise ValueError(f"only the set's owner ({info.owner}) adds members")
            self.rt.library.ensure_user(member)  # invited before their first visit; the name is checked there
            self.rt.labels.add_member(info.id, user, member)
            info = self.rt.labels.get_set(set_id_of(choice))
            return "Members: " + ", ".join(md_text(m) for m in info.members)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_delete_set(self, choice, sure, lstate: LabelSession, request: gr.Request,
                         profile: gr.OAuthProfile | None = None):  # fmt: skip
        """api: /label_delete_set -- delete the chosen set with its samples and masks (its owner only, with ``sure``
        ticked); branches trained from it stay. Returns (set choice, message, gallery, progress, state)."""
        try:
            user = self._need_user(request, profile, "deleting a label set")
            info = self.rt.labels.get_set(set_id_of(choice))
            if not sure:
                raise ValueError(f"tick 'yes, delete' to delete label set {info.name!r} with its "
                                 f"{info.n_samples} samples and every version of their masks")
            if lstate is not None and lstate.set_id == info.id and lstate.sample_id is not None:
                self._release(lstate.sample_id, user)
            self.rt.labels.delete_set(info.id, user)
            choices = self._sets()
            msg = (f"Label set **{md_text(info.name)}** deleted with its {info.n_samples} samples. Branch versions "
                   "trained from it stay in the list below.")  # fmt: skip
            return (gr.Dropdown(choices=choices, value=choices[0] if choices else None), msg, [], "",
                    LabelSession())  # fmt: skip
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_open_set(self, choice, lstate: LabelSession):
        """api: /label_open -- (samples gallery, progress, class choice, painter brush, legend, classes text,
        branch versions, state)."""
        if choice in (None, ""):  # no set yet (the page's first load)
            return tuple(gr.skip() for _ in range(8))
        try:
            info = self.rt.labels.get_set(set_id_of(choice))
            pal = palette_of(info)
            names = [c.name for c in info.classes]
            new = LabelSession(set_id=info.id)
            size = masks.display_size(info.resolution)
            editor = gr.ImageEditor(canvas_size=(size, size), height=size + 80,
                                    brush=gr.Brush(colors=masks.hex_colors(pal), default_color=masks.hex_colors(pal)[1],
                                                   color_mode="fixed", default_size=max(4, size // info.resolution)))  # fmt: skip
            return (self._gallery(info), self._progress(info), gr.Radio(choices=names, value=names[1]), editor,
                    masks.legend_html(names, pal), classes_text(info.classes), self._versions(), new)  # fmt: skip
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    # ------------------------------------------------------------------ samples
    def _thumb(self, seed: int, truncation: float) -> np.ndarray:
        return self.rt.render(self.rt.sample(seed, truncation), with_mask=False).image

    def _gallery(self, info) -> list:
        items = []
        for s in self.rt.labels.samples(info.id):
            mark = f"✓ v{s.latest_version} {s.labelled_by}" if s.latest_version else "unlabelled"
            if s.claimed_by:
                mark += f" · {s.claimed_by} painting"
            items.append((self._thumb(s.seed, s.truncation), f"#{s.id} seed {s.seed} · {mark}"))
        return items

    def _progress(self, info) -> str:
        done, total = self.rt.labels.progress(info.id)
        return (f"**{done} of {total} labelled** ({len(info.classes)} classes"
                f"{', locked by a trained branch' if info.locked else ''}). EditGAN's recipe uses about 16; "
                f"{'train when ready' if done >= 2 else 'label at least 2 to train'}.")

    def label_add_samples(self, choice, count, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_add_samples -- ``count`` new samples, chosen far apart in W; returns (gallery, progress)."""
        try:
            user = self._need_user(request, profile, "adding samples")
            n = whole_number(count, "the number of samples", 1, MAX_NEW_SAMPLES)
            info = self.rt.labels.get_set(set_id_of(choice))
            seeds = self._diverse_seeds(info, n)
            self.rt.labels.add_samples(info.id, user, seeds, TRUNCATION)
            info = self.rt.labels.get_set(info.id)
            return self._gallery(info), self._progress(info)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def _diverse_seeds(self, info, n: int) -> list[int]:
        """Farthest-point choice in W among random seeds, starting from the set's samples: varied faces (or
        whatever the generator makes), not n neighbours."""
        g = self.rt.require_base().generator
        have = self.rt.labels.samples(info.id)
        rng = np.random.default_rng(info.id * 7919 + len(have))
        cand = [int(s) for s in rng.integers(0, 2**31 - 1, size=n * CANDIDATES_PER_SAMPLE)]
        w_of = lambda seed: g.sample_w_plus(seed, 1, TRUNCATION)[0, 0].cpu().numpy()  # noqa: E731
        chosen_w = [w_of(s.seed) for s in have]
        cw = np.stack([w_of(s) for s in cand])
        picked: list[int] = []
        dist = (np.min(np.stack([((cw - w) ** 2).sum(1) for w in chosen_w]), 0) if chosen_w
                else np.full(len(cand), np.inf))  # fmt: skip
        for _ in range(n):
            i = int(np.argmax(dist)) if np.isfinite(dist).any() else len(picked)
            picked.append(cand[i])
            dist = np.minimum(dist, ((cw - cw[i]) ** 2).sum(1))
            dist[i] = -1
        return picked

    def label_pick(self, choice, lstate: LabelSession, request: gr.Request, evt: gr.SelectData,
                   profile: gr.OAuthProfile | None = None):  # fmt: skip
        """A click on a gallery sample opens it in the painter."""
        try:
            info = self.rt.labels.get_set(set_id_of(choice))
            sample = self.rt.labels.samples(info.id)[int(evt.index)]
        except (ValueError, LibraryError, IndexError) as e:
            raise readable(e) from None
        return self.label_sample(choice, sample.id, lstate, request, profile)

    def label_sample(self, choice, sample_id, lstate: LabelSession, request: gr.Request,
                     profile: gr.OAuthProfile | None = None):  # fmt: skip
        """api: /label_sample -- claim a sample and open it in the painter with its latest mask;
        returns (painter, fill view, sample text, state)."""
        try:
            user = self._need_user(request, profile, "labelling")
            info = self.rt.labels.get_set(set_id_of(choice))
            sid = whole_number(sample_id, "the sample id", 1, 10**12)
            sample = self.rt.labels.sample(sid)
            if sample.set_id != info.id:
                raise ValueError(f"sample {sid} is not in label set {info.id}")
            if lstate is not None and lstate.sample_id not in (None, sid):
                self._release(lstate.sample_id, user)
            sample = self.rt.labels.claim(sid, user)
            r = info.resolution
            if sample.latest_version:
                _, work = self.rt.labels.mask(sid)
                work = work.astype(np.uint8)
            else:
                work = np.zeros((r, r), np.uint8)
            new = LabelSession(info.id, sid, sample.latest_version, work)
            return (*self._painter(new), self._sample_text(sample), new)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_remove_sample(self, lstate: LabelSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_remove_sample -- take the open sample out of its set with its masks (the set's owner: any
        sample; a member: one nobody labelled). Returns (message, gallery, progress, painter, fill view, sample
        text, state)."""
        try:
            user = self._need_user(request, profile, "removing a sample")
            if lstate is None or lstate.sample_id is None:
                raise ValueError("open a sample first (click one in the gallery)")
            sample = self.rt.labels.sample(lstate.sample_id)
            self.rt.labels.remove_sample(sample.id, user)
            info = self.rt.labels.get_set(lstate.set_id)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return (f"Sample #{sample.id} (seed {sample.seed}) removed from the set.", self._gallery(info),
                self._progress(info), None, None, "", LabelSession(set_id=info.id))  # fmt: skip

    def _release(self, sample_id: int, user: str) -> None:
        try:
            self.rt.labels.release(sample_id, user)
        except LibraryError:
            pass  # a claim that expired or went to someone else is not ours to release

    def _sample_text(self, sample) -> str:
        made = (f"version {sample.latest_version} by {md_text(sample.labelled_by or '')}" if sample.latest_version
                else "not labelled yet")  # fmt: skip
        return (f"Sample **#{sample.id}** (seed {sample.seed}): {made}. It is yours to paint for 10 minutes; "
                "**Save mask** when done.")

    def _painter(self, lstate: LabelSession):
        """(painter value, fill view) for the working mask over the sample's image."""
        sample = self.rt.labels.sample(lstate.sample_id)
        info = self.rt.labels.get_set(lstate.set_id)
        image = self._thumb(sample.seed, sample.truncation)
        over = masks.overlay(image, colorize(lstate.work, palette_of(info)), OVERLAY_ALPHA)
        size = masks.display_size(info.resolution)
        return masks.editor_value(over, size), masks.upscale(over, size)

    def _with_paint(self, editor, lstate: LabelSession) -> np.ndarray:
        """The working mask with the editor's painted strokes laid over it. [R, R] uint8."""
        if lstate is None or lstate.sample_id is None or lstate.work is None:
            raise ValueError("open a sample first (click one in the gallery)")
        info = self.rt.labels.get_set(lstate.set_id)
        painted = masks.painted_classes(editor, info.resolution, palette_of(info)) if isinstance(editor, dict) \
            else np.full(lstate.work.shape, -1)  # fmt: skip
        return np.where(painted >= 0, painted, lstate.work).astype(np.uint8)

    def label_brush(self, cls_name, lstate: LabelSession):
        """The chosen class becomes the brush colour."""
        if lstate is None or lstate.set_id is None:
            return gr.skip()
        info = self.rt.labels.get_set(lstate.set_id)
        names = [c.name for c in info.classes]
        if cls_name not in names:
            return gr.skip()
        colors = masks.hex_colors(palette_of(info))
        return gr.ImageEditor(brush=gr.Brush(colors=colors, default_color=colors[names.index(cls_name)],
                                             color_mode="fixed"))  # fmt: skip

    def label_fill(self, cls_name, editor, lstate: LabelSession, evt: gr.SelectData):
        """A click on the fill view: the connected region under it takes the chosen class."""
        x, y = (int(v) for v in evt.index)
        return self.label_fill_at(x, y, cls_name, editor, lstate, display=True)

    def label_fill_at(self, x, y, cls_name, editor, lstate: LabelSession, display: bool = False):
        """api: /label_fill -- fill bucket at pixel (x, y) of the sample (display pixels when clicked);
        returns (painter, fill view, state)."""
        try:
            work = self._with_paint(editor, lstate)
            info = self.rt.labels.get_set(lstate.set_id)
            names = [c.name for c in info.classes]
            if cls_name not in names:
                raise ValueError(f"choose a class of this set to fill with: {', '.join(names)}")
            r = info.resolution
            k = masks.display_size(r) // r if display else 1
            xi = whole_number(x, "x", 0, r * k - 1) // k
            yi = whole_number(y, "y", 0, r * k - 1) // k
            new = LabelSession(lstate.set_id, lstate.sample_id, lstate.base_version,
                               flood_fill(work, xi, yi, names.index(cls_name)))  # fmt: skip
            return (*self._painter(new), new)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_apply_paint(self, editor, lstate: LabelSession):
        """api: /label_apply -- merge the painted strokes into the working mask (the painter starts clean)."""
        try:
            new = LabelSession(lstate.set_id, lstate.sample_id, lstate.base_version, self._with_paint(editor, lstate))
            return (*self._painter(new), new)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_clear(self, lstate: LabelSession):
        """api: /label_clear -- the working mask back to the first class everywhere."""
        try:
            if lstate is None or lstate.work is None:
                raise ValueError("open a sample first (click one in the gallery)")
            new = LabelSession(lstate.set_id, lstate.sample_id, lstate.base_version, np.zeros_like(lstate.work))
            return (*self._painter(new), new)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_guess(self, lstate: LabelSession):
        """api: /label_guess -- start from the current branch's mask of the sample (same classes as the set)."""
        try:
            if lstate is None or lstate.sample_id is None:
                raise ValueError("open a sample first (click one in the gallery)")
            m = self.rt.require("segmentation")
            info = self.rt.labels.get_set(lstate.set_id)
            if tuple(m.class_names) != tuple(c.name for c in info.classes):
                raise ValueError("the current branch has other classes than this set; train one from this set first")
            sample = self.rt.labels.sample(lstate.sample_id)
            guess = self.rt.render(self.rt.sample(sample.seed, sample.truncation)).mask.astype(np.uint8)
            new = LabelSession(lstate.set_id, lstate.sample_id, lstate.base_version, guess)
            return (*self._painter(new), new)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def label_save(self, editor, overwrite, note, lstate: LabelSession, request: gr.Request,
                   profile: gr.OAuthProfile | None = None):  # fmt: skip
        """api: /label_save -- store the working mask (+ painted strokes) as the sample's next version;
        returns (message, gallery, progress, painter, fill view, state)."""
        try:
            user = self._need_user(request, profile, "saving a mask")
            work = self._with_paint(editor, lstate)
            saved = self.rt.labels.save_mask(lstate.sample_id, user, work, lstate.base_version, str(note or ""),
                                             force=bool(overwrite))  # fmt: skip
        except (ValueError, LibraryError) as e:
            latest = getattr(e, "latest", None)
            if latest is not None:
                raise gr.Error(toast_text(
                    f"{latest.author} saved version {latest.version} of this sample at "
                    f"{latest.created_at:%H:%M:%S} after you opened it. Nothing was overwritten: open the sample "
                    "again to see theirs, or tick 'overwrite a newer mask' and save again to keep yours."),
                    print_exception=False) from None  # fmt: skip
            raise readable(e) from None
        info = self.rt.labels.get_set(lstate.set_id)
        new = LabelSession(lstate.set_id, lstate.sample_id, saved.version, work)
        msg = f"Saved version {saved.version} of sample #{saved.sample_id}."
        return (msg, self._gallery(info), self._progress(info), *self._painter(new), new)

    def label_after_save(self, lstate: LabelSession):
        """After Save mask: the note box emptied (it belonged to that version) and the sample's line saying the
        version just saved (it said "not labelled yet"). Returns (note, sample text)."""
        try:
            return "", self._sample_text(self.rt.labels.sample(lstate.sample_id))
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    # ------------------------------------------------------------------ training
    def label_train(self, choice, request: gr.Request, profile: gr.OAuthProfile | None = None,
                    progress=gr.Progress()):  # fmt: skip
        """api: /label_train -- train the branch from the set's masks in the background; streams progress and
        returns the outcome (the Edit tab uses the new branch at once)."""
        try:
            user = self._need_user(request, profile, "training a branch")
            job = self.rt.trainer.start(set_id_of(choice), user)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return self._watch(job, progress)

    def label_train_status(self, choice, progress=gr.Progress()):
        """api: /label_train_status -- follow the set's running training (or say how the last one ended)."""
        try:
            job = self.rt.trainer.job(set_id_of(choice))
        except ValueError as e:
            raise readable(e) from None
        if job is None:
            return "No training of this set has run on this server since it started."
        return self._watch(job, progress)

    def _watch(self, job, progress) -> str:
        while job.running:
            eta = job.eta_s()
            progress(job.fraction, desc=f"{job.text}" + (f" · about {eta:.0f} s left" if eta else ""))
            time.sleep(0.5)
        if job.state == "failed":
            raise gr.Error(toast_text(job.message), print_exception=False)
        return job.message

    def label_train_stop(self, choice) -> str:
        """api: /label_train_stop"""
        try:
            job = self.rt.trainer.stop(set_id_of(choice))
        except ValueError as e:
            raise readable(e) from None
        return "Stopping the training…" if job is not None and job.running else "No training of this set is running."

    def _versions(self) -> list[list]:
        base = self.rt.base_model
        if base is None:
            return []
        rows = []
        for v in self.rt.labels.branch_versions(base.model_id):
            rows.append([v.version, v.created_by, f"{v.created_at:%Y-%m-%d %H:%M}", v.n_masks,
                         "yes" if v.published else "no", "in use" if v.version == self.rt.branch_version else ""])
        return rows

    def label_versions(self):
        """api: /label_versions -- [version, by, when, masks, published, in use] rows."""
        return self._versions()

    def label_publish(self, version, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_publish -- publish a branch version (and its label set) for other users of this generator."""
        try:
            user = self._need_user(request, profile, "publishing a branch")
            base = self.rt.require_base()
            v = whole_number(version, "the branch version", 1, 10**9)
            info = self.rt.labels.publish_branch(base.model_id, v, user)
            if info.label_set_id is not None:
                self.rt.labels.publish_set(info.label_set_id, user)
            return f"Branch version {v} is published with its label set.", self._versions()
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def switch_model(self, choice, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /switch_model -- run another of this server's models (EDITGAN_MODELS); signed-in users only."""
        try:
            self._need_user(request, profile, "switching the model")
            self.rt.switch_model(str(choice or ""))
        except (ValueError, LibraryError, OSError) as e:
            raise readable(e) from None
        return f"The server now runs **{md_text(str(choice))}**.", self.rt.status_markdown()

    def refresh_view(self, state, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """The banner and the Edit tab's image, mask and painter again (after a branch was trained)."""
        viewer = self.user(request, profile)
        banner = self.rt.status_markdown() + "\n\n" + self.rt.identity.describe()
        if state is None or state.w is None or not self.caps.sample:
            return banner, *(gr.skip() for _ in range(6))
        return (banner, *self.view(state, viewer), state)

    def label_export(self, choice):
        """api: /label_export -- the set (latest masks) and every branch version trained from it, as a zip."""
        from vector_library.label_transfer import export_label_zip

        try:
            info = self.rt.labels.get_set(set_id_of(choice))
            versions = [v.version for v in self.rt.labels.branch_versions(info.model_id) if v.label_set_id == info.id]
            data = export_label_zip(self.rt.labels, info.id, versions)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", info.name).strip("-")[:40] or "labels"
        path = tmp_file(f"labels-{name}.zip")
        path.write_bytes(data)
        return str(path)

    def label_import(self, path, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_import -- a label set zip (from /label_export or the Hub) for this generator; its branch
        versions join this generator's, and the newest is used at once. Returns (message, set choice)."""
        from vector_library.label_transfer import import_label_set

        try:
            user = self._need_user(request, profile, "importing a label set")
            if not path:
                raise ValueError("choose a label set .zip first")
            result = import_label_set(self.rt.labels, Path(path), user, model_id=self.rt.require_base().model_id)
            switched = self.rt.refresh_branch(force=True)
        except (ValueError, LibraryError, OSError) as e:
            raise readable(e) from None
        msg = (f"Imported **{md_text(result.label_set.name)}**: {result.n_masks} masks, "
               f"{len(result.branch_versions)} branch version(s).")
        if switched:  # its newest branch is now the generator's newest: every session edits with it
            msg += (f" The Edit tab now uses branch version {self.rt.branch_version} "
                    f"({md_text(', '.join(self.rt.model.class_names))}); choose another under Branch versions.")
        return msg, gr.Dropdown(choices=self._sets(), value=set_choice(result.label_set))

    def label_use_version(self, version, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /label_use_version -- edit with an older (or the bundle's own, 0) branch version again, on every
        replica and after restarts; a newer version trained later replaces it."""
        try:
            user = self._need_user(request, profile, "choosing the branch version")
            v = whole_number(version, "the branch version", 0, 10**9)
            self.rt.choose_branch_version(v, user)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return f"The Edit tab now uses branch version {v}.", self._versions()

    def edit_controls(self):
        """The Edit tab's mask controls for the current branch (after a training they appear, with its colours)."""
        m, caps = self.rt.model, self.rt.capabilities
        if m is None:
            return tuple(gr.skip() for _ in range(6))
        if not caps.segment:  # e.g. after switching to a generator without a branch
            return (gr.ImageEditor(visible=False), gr.HTML("", visible=False), gr.Image(visible=False),
                    gr.Image(visible=False), gr.Radio(choices=list(MODES), value=MODES[1]), NO_BRANCH_HELP)  # fmt: skip
        colors = masks.hex_colors(m.palette)
        size = masks.display_size(m.resolution)
        return (gr.ImageEditor(visible=True, canvas_size=(size, size), height=size + 80,
                               brush=gr.Brush(colors=colors, default_color=colors[min(3, len(colors) - 1)],
                                              color_mode="fixed", default_size=max(4, size // m.resolution))),
                gr.HTML(masks.legend_html(m.class_names, m.palette), visible=True),
                gr.Image(visible=True), gr.Image(visible=True),
                gr.Radio(choices=list(MODES), value=MODES[0]), PAINT_HELP)  # fmt: skip
