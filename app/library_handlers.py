"""Library, Compose and Share actions: a mixin of :class:`app.handlers.Handlers` (same rules: plain
methods, component values in and out, refusals as ``gr.Error``, state changed only on success)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import gradio as gr
import numpy as np

from app.handler_util import (
    COMPOSE_SLOTS,
    MAX_SEED,
    fmt_metrics,
    image_file,
    is_empty,
    md_text,
    parse_tags,
    readable,
    scale_number,
    tmp_file,
    vector_id_of,
    whole_number,
)
from app.session import MAX_APPLIED, EditSession, format_vectors, parse_vectors
from core.edit_vector import interference
from core.vector_format import VectorFile, VectorFormatError
from vector_library import LibraryError, MetadataUpdate, SearchQuery, VectorMetadata


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _shown(scale):
    """A slider's number box that a person empties shows 0 (brought into the slider's range) when they leave it;
    the live events read that, so the preview matches the box."""
    return 0.0 if is_empty(scale) else scale


class LibraryHandlers:
    """Needs from its host: ``rt`` (Runtime), ``shares`` (ShareStore), ``user``, ``_need_user``,
    ``_check_state``, ``_displayed_w`` and ``view``."""

    # ------------------------------------------------------------------ library
    def search(self, text, tag, edited_class, sort, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /search -- returns (gallery, table rows [id, name, author, edits, tags, likes, downloads]); edits are
        the classes a vector is about (its subject classes), as the class filter matches them."""
        try:
            viewer = self.user(request, profile)
            # the tag as saving writes it (handler_util.parse_tags): "Open mouth" finds open-mouth
            q = SearchQuery(text=text or "", model_id=self.rt.model_id, edited_class=edited_class or None,
                            tag="-".join((tag or "").lower().split()) or None, sort=sort or "relevance", page_size=40)  # fmt: skip
            page = self.rt.library.search(q, viewer)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        gallery, rows = [], []
        for v in page.items:
            rows.append([v.id, v.name, v.author, ", ".join(v.subject_classes), ", ".join(v.tags), v.like_count,
                         v.download_count])  # fmt: skip
            prev = self.rt.library.get_preview(v.id, viewer) if v.has_preview else None
            prev = prev if prev is not None else np.zeros((8, 8, 3), np.uint8)
            gallery.append((image_file(prev), f"#{v.id} {v.name} · ♥ {v.like_count}"))  # a file never rewritten
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
            vid = vector_id_of(vector_id)
            lib = self.rt.library
            v = lib.get(vid, viewer)
            versions = lib.versions(vid, viewer)
            remixes = lib.remixes(vid, viewer)
            liked = lib.has_liked(viewer, vid) if viewer else False
            preview = lib.get_preview(vid, viewer) if v.has_preview else None
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        lineage = f"remix of #{v.parent_id} (version {v.parent_version})" if v.parent_id else "original"
        if remixes:
            lineage += "; remixed as " + ", ".join(f"#{r.id} {md_text(r.name)}" for r in remixes[:10])
        fits = ("fits the loaded model" if v.model_id == self.rt.model_id
                else f"**for another model** ({md_text(v.model_id)})")  # fmt: skip
        touched = [c for c in v.edited_classes if c not in v.subject_classes]
        edits = md_text(", ".join(v.subject_classes)) or "—"
        if touched:
            edits += f" (also touches {md_text(', '.join(touched))})"
        # every user-written field goes through md_text: shown as typed, never as markup
        md = (f"### #{v.id} {md_text(v.name)}\n{md_text(v.description)}\n\n"
              f"by **{md_text(v.author)}** · {v.visibility} · licence {md_text(v.licence)} · version {v.version} · "
              f"♥ {v.like_count} · ⬇ {v.download_count}\n\nedits: {edits} · "
              f"tags: {md_text(', '.join(v.tags)) or '—'} · scale {v.scale_min:g} … {v.scale_max:g} "
              f"(default {v.default_scale:g}) · {fits}\n\nlineage: {lineage}\n\n" + fmt_metrics(v.metrics))  # fmt: skip
        rows = [[x.number, x.created_at.strftime("%Y-%m-%d %H:%M"), x.note, ", ".join(x.subject_classes)]
                for x in versions]
        slider = gr.update(minimum=v.scale_min, maximum=v.scale_max, value=v.default_scale)
        preview = image_file(preview) if preview is not None else None
        return md, rows, slider, ("♥ Unlike" if liked else "♥ Like"), preview, v.id

    def manage_fields(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """The vector page's Change or delete form: (name, description, tags, visibility, delete box, message), filled
        with the vector's own for its author, left empty for anyone else."""
        try:
            viewer = self.user(request, profile)
            v = self.rt.library.get(vector_id_of(vector_id), viewer)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        if not viewer or v.author != viewer:
            return "", "", "", v.visibility, False, f"Only its author, {md_text(v.author)}, may change this vector."
        return v.name, v.description, ", ".join(v.tags), v.visibility, False, ""

    def update_vector(self, vector_id, name, description, tags, visibility, request: gr.Request,
                      profile: gr.OAuthProfile | None = None):  # fmt: skip
        """api: /update_vector -- the author changes a vector's name, description, tags (as the save form takes
        them) and visibility; returns a message."""
        try:
            user = self._need_user(request, profile, "changing a vector")
            vid = vector_id_of(vector_id)
            v = self.rt.library.update_metadata(user, vid, MetadataUpdate(
                name=str(name or "").strip(), description=str(description or ""), tags=parse_tags(tags),
                visibility=visibility))  # fmt: skip
            self.rt.forget_vector(vid)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return f"Saved: **#{v.id} {md_text(v.name)}** is {v.visibility}."

    def delete_vector(self, vector_id, sure, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /delete_vector -- the author deletes a vector and every version of it, once ``sure`` is ticked;
        returns (message, the box unticked)."""
        try:
            user = self._need_user(request, profile, "deleting a vector")
            vid = vector_id_of(vector_id)
            if not sure:
                raise ValueError("tick 'yes, delete it' first: deleting removes every version and cannot be undone")
            self.rt.library.delete(user, vid)
            self.rt.forget_vector(vid)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return f"Deleted vector #{vid}.", False

    def like(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /like -- toggle the user's like; returns (button label, message). The message says the state the
        toggle produced ("Liked · 3 like(s)" / "Not liked · 2 like(s)"): the button's label is not an API output."""
        try:
            user = self._need_user(request, profile, "liking")
            vid = vector_id_of(vector_id)
            r = self.rt.library.toggle_like(user, vid)  # one transaction: concurrent clicks never repeat an action
            return ("♥ Unlike" if r.liked else "♥ Like"), f"{'Liked' if r.liked else 'Not liked'} · {r.like_count} like(s)"
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def apply(self, vector_id, scale, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None,
              live: bool = False):  # fmt: skip
        """api: /apply -- preview one vector at ``scale`` on the current image (mode 1, one generator pass).
        Returns (preview image, state)."""
        try:
            viewer = self.user(request, profile)
            self._check_state(state)
            vid = vector_id_of(vector_id)
            vf = self.rt.vector_file(vid, viewer)
            scale = scale_number(scale, "scale", vf.scale_min, vf.scale_max, clamp=live)
            state.applied = [(vid, scale)]
            r = self.rt.render(state.w + np.float32(scale) * np.asarray(vf.delta), with_mask=False,
                               tuning=state.tuning)  # slider: image only
            return r.image, state
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def apply_live(self, vector_id, scale, state: EditSession, request: gr.Request,
                   profile: gr.OAuthProfile | None = None):  # fmt: skip
        """The scale slider's live preview: as :meth:`apply`, but with the scale its number box shows once the
        person leaves it: a number typed beyond the slider's ends at the nearer end, an emptied box at 0 (or the
        end nearer to 0). Then the Edit tab's view (image, mask, overlay, info) of the image with the vector
        applied, which the next edit starts from, from the same event: the live events' last one wins, so the two
        tabs agree. The mask editor is left for the slider's release (:meth:`current_view`): redrawn on every
        move, it kept the browser busy."""
        image, state = self.apply(vector_id, _shown(scale), state, request, profile, live=True)
        return (image, *self.view(state, self.user(request, profile), editor=False), state)

    def download_vector(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /download_vector -- the vector's .safetensors file (counted as a download)."""
        try:
            viewer = self.user(request, profile)
            vid = vector_id_of(vector_id)
            data = self.rt.library.download(vid, viewer)
            info = self.rt.library.get(vid, viewer)
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in info.name)[:40] or "vector"
            p = tmp_file(f"{vid}_{safe}.safetensors")
            p.write_bytes(data)
            return str(p)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

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
            meta = VectorMetadata(name=(name or "").strip() or None, tags=parse_tags(tags), visibility=visibility)
            info = self.rt.library.publish(user, vf, meta)
            return f"Published **#{info.id} {md_text(info.name)}**.", info.id
        except (ValueError, OSError, LibraryError) as e:
            raise readable(e) from None

    # ------------------------------------------------------------------ compose
    def vector_choices(self, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /vector_choices -- the loaded model's visible vectors as dropdown choices."""
        try:
            viewer = self.user(request, profile)
            if self.rt.model_id is None:
                return [gr.update(choices=[]) for _ in range(COMPOSE_SLOTS)]
            items = self.rt.library.list_vectors(viewer, model_id=self.rt.model_id, sort="likes", page_size=100)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        items = getattr(items, "items", items)
        choices = [(f"#{v.id} {v.name}", str(v.id)) for v in items]
        return [gr.update(choices=choices) for _ in range(COMPOSE_SLOTS)]

    def slot_range(self, vector_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        if not vector_id:
            return gr.update(value=0.0)
        try:
            v = self.rt.library.get(vector_id_of(vector_id), self.user(request, profile))
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return gr.update(minimum=v.scale_min, maximum=v.scale_max, value=v.default_scale)

    def _items(self, args) -> list[tuple[int, float]]:
        ids, scales = args[:COMPOSE_SLOTS], args[COMPOSE_SLOTS:2 * COMPOSE_SLOTS]
        items = []
        for vid, s in zip(ids, scales):
            if vid in (None, ""):
                continue
            vid = vector_id_of(vid)
            if any(vid == i for i, _ in items):
                raise ValueError(f"vector #{vid} is chosen twice")
            if is_empty(s):
                raise ValueError(f"the scale of #{vid} is empty: give a number")
            items.append((vid, s))
        if not items:
            raise ValueError("choose at least one vector")
        return items

    def compose(self, v1, v2, v3, v4, s1, s2, s3, s4, state: EditSession, request: gr.Request,
                profile: gr.OAuthProfile | None = None, live: bool = False):  # fmt: skip
        """api: /compose -- ids and scales of up to 4 slots; live preview (mode 1).
        Returns (preview image, warnings markdown, state)."""
        values = (v1, v2, v3, v4, s1, s2, s3, s4)
        try:
            viewer = self.user(request, profile)
            self._check_state(state)
            items = self._items(values)
            files = [self.rt.vector_file(v, viewer) for v, _ in items]
            items = [(vid, scale_number(s, f"the scale of #{vid}", vf.scale_min, vf.scale_max, clamp=live))
                     for (vid, s), vf in zip(items, files)]  # fmt: skip
            vectors = list(zip(files, (s for _, s in items)))
            state.applied = items
            w = self._displayed_w(state, viewer)
            r = self.rt.render(w, with_mask=False, tuning=state.tuning)
            warn = interference([(vf, s) for vf, s in vectors])
            md = "\n\n".join(f"⚠️ {md_text(x)}" for x in warn) if warn else "No interference expected between these vectors."
            return r.image, md, state
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def compose_live(self, v1, v2, v3, v4, s1, s2, s3, s4, state: EditSession, request: gr.Request,
                     profile: gr.OAuthProfile | None = None):  # fmt: skip
        """A slot slider's live preview: as :meth:`compose`, with each scale as its number box shows it once the
        person leaves it (see :meth:`apply_live`); then the Edit tab's view without the mask editor, as there."""
        s1, s2, s3, s4 = (_shown(s) for s in (s1, s2, s3, s4))
        image, warnings, state = self.compose(v1, v2, v3, v4, s1, s2, s3, s4, state, request, profile, live=True)
        return (image, warnings, *self.view(state, self.user(request, profile), editor=False), state)

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
            return f"Saved composition **#{c.id} {md_text(c.name)}** ({c.visibility}, {_count(len(c.items), 'vector')})."
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def composition_choices(self, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /composition_choices -- saved compositions of this model you can open (yours and public ones)."""
        try:
            viewer = self.user(request, profile)
            if self.rt.model_id is None:
                return gr.update(choices=[])
            comps = self.rt.library.list_compositions(viewer, model_id=self.rt.model_id, page_size=100)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        return gr.update(choices=[(f"#{c.id} {c.name} ({c.owner}, {_count(len(c.items), 'vector')})", str(c.id))
                                  for c in comps])  # fmt: skip

    def load_composition(self, composition_id, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /load_composition -- fill the slots from a saved composition.
        Returns the 4 slot ids, the 4 slot scales and a message."""
        try:
            self.rt.require("opening a composition")
            viewer = self.user(request, profile)
            c = self.rt.library.get_composition(vector_id_of(composition_id, "composition"), viewer)
            if c.model_id != self.rt.model_id:
                raise ValueError(f"composition #{c.id} is for model {c.model_id}, not the loaded {self.rt.model_id}")
            if len(c.items) > COMPOSE_SLOTS:
                raise ValueError(f"composition #{c.id} has {len(c.items)} vectors; the editor has {COMPOSE_SLOTS} "
                                 "slots (apply it through the Python API instead)")  # fmt: skip
            files = [self.rt.vector_file(vid, viewer) for vid, _ in c.items]  # visible and fits, or an error
        except (ValueError, LibraryError) as e:
            raise readable(e) from None
        pad = COMPOSE_SLOTS - len(c.items)
        ids = [str(vid) for vid, _ in c.items] + [None] * pad
        # one update object per slot: Gradio consumes an update's keys as it applies it
        scales = [gr.update(minimum=vf.scale_min, maximum=vf.scale_max, value=s)
                  for vf, (_, s) in zip(files, c.items)] + [gr.update(value=1.0) for _ in range(pad)]  # fmt: skip
        return (*ids, *scales, f"Opened composition **#{c.id} {md_text(c.name)}** by {md_text(c.owner)}.")

    # ------------------------------------------------------------------ share
    def share(self, state: EditSession, request: gr.Request) -> str:
        """api: /share -- a link (query string) that opens this image and its applied vectors."""
        try:
            self._check_state(state)
            vec = format_vectors(state.applied)
            if state.pristine and state.source.get("kind") == "seed":
                query = f"?seed={state.source['seed']}" + (f"&v={vec}" if vec else "")
            else:
                query = f"?s={self.shares.save(self.rt.model_id, state.w, state.applied, state.tuning)}"
        except (ValueError, OSError) as e:
            raise readable(e) from None
        base = ""
        headers = getattr(request, "headers", None) or {}
        ref = headers.get("referer") or headers.get("origin") or ""
        if ref:
            base = ref.split("?", 1)[0]
        return base + query

    def open_share(self, query: str, state: EditSession, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """api: /open_share -- open a share link's state (its query string, e.g. '?seed=3&v=12:1')."""
        try:
            q = {k: v[-1] for k, v in parse_qs((query or "").split("?", 1)[-1]).items()}
            return self._open_params(q, request, profile)
        except (ValueError, LibraryError) as e:
            raise readable(e) from None

    def _open_params(self, q: dict, request, profile=None) -> tuple:
        self.rt.require("opening a shared state")
        viewer = self.user(request, profile)
        new = EditSession()
        if "s" in q:
            w, applied, tuning = self.shares.load(q["s"], self.rt.model_id, self.rt.model.latent_shape)
            if tuning is not None:
                self.rt.bundle(tuning)  # on this server, or a readable error
            new.start(w, {"kind": "shared", "token": q["s"]}, tuning=tuning)
        elif "seed" in q:
            seed = whole_number(q["seed"], "seed", 0, MAX_SEED)
            new.start(self.rt.sample(seed), {"kind": "seed", "seed": seed})
            applied = parse_vectors(q.get("v", ""))
        else:
            raise ValueError("a share link has ?seed=N[&v=id:scale,...] or ?s=TOKEN")
        for vid, _ in applied:
            self.rt.vector_file(vid, viewer)  # visible and fits, or a readable error
        new.applied = applied[:MAX_APPLIED]
        out = self.view(new, viewer)
        return (*out, new)
