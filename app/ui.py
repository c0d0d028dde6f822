"""The editor's layout and event wiring: ``build_demo(runtime) -> gr.Blocks`` (never launches).

Plain handlers live in app/handlers.py; this module only lays out components and wires events,
each with an ``api_name`` so every action is scriptable with gradio_client (table in README.md).
Heavy work (mask edits, refinement, photo embedding, saving a vector made transferable) shares one
concurrency pool ("heavy"); model passes for sliders and samples share another ("light"); library
reads use the queue's default.
"""

from __future__ import annotations

import gradio as gr

from app import gradio_cache, masks
from app.components import Number, Slider
from app.handler_util import COMPOSE_SLOTS, MODES, NO_BRANCH_HELP, PAINT_HELP, SORT_CHOICES, TAGS_HELP
from app.handlers import Handlers
from app.label_handlers import LabelSession
from app.runtime import Runtime
from app.session import EditSession
from core.edit_vector import REFINE_STEPS
from vector_library import VISIBILITIES

SESSION_CAPACITY = 1000

CSS = """
#banner {border-left: 4px solid #f59e0b; padding: 4px 12px; background: rgba(245,158,11,0.08);}
.legend {display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 0.9em;}
.legend-item {display: inline-flex; align-items: center; gap: 5px;}
/* scoped to the legend: Gradio's own colour menu also uses a .swatch class */
.legend .legend-swatch {width: 16px; height: 16px; border: 1px solid #888; border-radius: 3px; display: inline-block;}
/* the editor's colour menu: an outline on every swatch, or a white class (teeth) vanishes on the white menu */
#mask-editor menu.swatch button {box-shadow: inset 0 0 0 1px rgba(0, 0, 0, 0.45);}
/* the edit's metrics: the numbers on one line, the long metric names wrap instead */
#result table td:last-child, #result table th:last-child {white-space: nowrap;}
.pixel img {image-rendering: pixelated;}
.pix img {image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain;}
#results .grid-container {grid-template-columns: repeat(auto-fill, minmax(120px, 140px)) !important;}
#results .thumbnail-item img {object-fit: contain;}
#label-samples .thumbnail-item img {object-fit: contain; image-rendering: pixelated;}
"""

# Keys 1-9 and 0 pick the Label tab's first ten classes (not while typing in a field).
SHORTCUTS_JS = """
() => {
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || !/^[0-9]$/.test(e.key)) return;
    if (t && ((t.tagName === "INPUT" && t.type !== "radio") || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    const group = document.querySelector("#label-class");
    if (!group || group.offsetParent === null) return;
    const inputs = group.querySelectorAll("input[type=radio]");
    const i = e.key === "0" ? 9 : Number(e.key) - 1;
    if (i < inputs.length) { inputs[i].click(); e.preventDefault(); }
  });
}
"""


def launch_options(runtime: Runtime) -> dict:
    """Keyword arguments for ``demo.launch`` that belong to the UI (Gradio 6 takes css at launch)."""
    # a 50 MP PNG fits; bigger uploads are refused at once. Gradio keeps every session's state and component
    # config (about 0.25 MB each, docs/results.md); 10,000 by default, here the 1,000 most recently used
    opts = {"css": CSS, "js": SHORTCUTS_JS, "max_file_size": "100mb", "state_session_capacity": SESSION_CAPACITY}
    auth = runtime.identity.auth()
    if auth is not None:
        opts["auth"] = auth
        opts["auth_message"] = "Sign in to publish edits to the shared library."
    return opts


def queue_options(runtime: Runtime) -> dict:
    """Keyword arguments for ``demo.queue``: a bounded queue (a full one answers 'busy')."""
    return {"max_size": runtime.config.queue_size, "default_concurrency_limit": 8}


def build_demo(runtime: Runtime) -> gr.Blocks:
    gradio_cache.install()  # identical pictures returned at once must not truncate each other mid-send
    h = Handlers(runtime)
    cfg = runtime.config
    caps = runtime.capabilities
    model = runtime.model
    heavy = {"concurrency_id": "heavy", "concurrency_limit": cfg.heavy_workers}
    light = {"concurrency_id": "light", "concurrency_limit": cfg.light_workers}
    res = model.resolution if model is not None else 64
    size = masks.display_size(res)
    palette = model.palette if model is not None and len(model.palette) else None
    class_names = list(model.class_names) if model is not None else []

    with gr.Blocks(title="EditGAN editor", delete_cache=(3600, 3600)) as demo:
        state = gr.State(EditSession())
        gr.Markdown("# EditGAN-class semantic image editor\nEdit a face by painting its segmentation; "
                    "save the edit as a vector others can find, apply and combine.")  # fmt: skip
        banner = gr.Markdown(runtime.status_markdown(), label="status", elem_id="banner")
        if runtime.identity.mode == "oauth":
            gr.LoginButton()

        with gr.Tabs(selected="edit") as tabs:
            # ------------------------------------------------------------------ Edit
            with gr.Tab("Edit", id="edit"):
                # at 1400x900 the image, the mask editor and the Run button sit side by side above the fold
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=280):
                        with gr.Row():
                            seed = Number(value=cfg.example_seeds[0] if cfg.example_seeds else 0, label="Seed",
                                             precision=0, minimum=0, elem_id="seed", min_width=80)  # fmt: skip
                            sample_btn = gr.Button("Sample this seed", interactive=caps.sample, elem_id="sample-btn",
                                                   min_width=80)  # fmt: skip
                            random_btn = gr.Button("New sample", variant="primary", interactive=caps.sample,
                                                   elem_id="random-btn", min_width=80)  # fmt: skip
                        image = gr.Image(label="Image", type="numpy", interactive=False, height=256,
                                         elem_classes=["pix"], elem_id="image", format="png")  # fmt: skip
                        with gr.Row():
                            mask_img = gr.Image(label="Segmentation", type="numpy", interactive=False, height=150,
                                                elem_classes=["pix"], visible=caps.segment, elem_id="mask", format="png",
                                                min_width=120)  # fmt: skip
                            overlay = gr.Image(label="Overlay", type="numpy", interactive=False, height=150,
                                               elem_classes=["pix"], visible=caps.segment, elem_id="overlay",
                                               format="png", min_width=120)  # fmt: skip
                        info = gr.Markdown(label="session", elem_id="info")
                    with gr.Column(scale=2, min_width=420):
                        paint_help = gr.Markdown(PAINT_HELP if caps.segment else NO_BRANCH_HELP, elem_id="paint-help")
                        legend = gr.HTML(masks.legend_html(class_names, palette) if palette is not None else "",
                                         visible=caps.segment, elem_id="legend")  # fmt: skip
                        editor = gr.ImageEditor(
                            label="Mask editor", type="numpy", image_mode="RGBA", sources=[], transforms=[],
                            layers=False, canvas_size=(size, size), fixed_canvas=True, height=size + 80,
                            brush=gr.Brush(colors=masks.hex_colors(palette) if palette is not None else None,
                                           default_color=masks.hex_colors(palette)[min(3, len(palette) - 1)]
                                           if palette is not None else None,
                                           color_mode="fixed", default_size=max(4, size // res)),
                            eraser=gr.Eraser(default_size=max(6, 2 * size // res)),
                            visible=caps.segment, elem_id="mask-editor", format="png",
                        )  # fmt: skip
                        with gr.Accordion("Or upload a painted mask (palette colours, transparent = unchanged)",
                                          open=False, visible=caps.segment):
                            mask_file = gr.File(label="Target mask", file_types=["image"], type="filepath")
                    with gr.Column(scale=1, min_width=260):
                        # without a branch only "vector" (mode 1) can run (the others say why not); every mode is
                        # listed, since a branch trained in the Label tab enables them without a restart
                        mode = gr.Radio(list(MODES),
                                        value=MODES[0] if caps.segment else MODES[1], label="Mode",
                                        elem_id="mode")  # fmt: skip
                        gr.Markdown("**optimization**: realise the painted mask · **vector**: keep the applied "
                                    "library vectors · **vector + refinement**: apply them, then refine",
                                    elem_id="mode-help")  # fmt: skip
                        steps = Slider(1, cfg.max_edit_steps, value=min(40, cfg.max_edit_steps), step=1,
                                          label="Steps", elem_id="steps")  # fmt: skip
                        with gr.Row():
                            run_btn = gr.Button("Run edit", variant="primary", interactive=caps.sample,
                                                elem_id="run-btn")  # fmt: skip
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                        stop_md = gr.Markdown("", elem_id="stop-msg")  # Stop's answer, apart from the result
                        with gr.Row():
                            undo_btn = gr.Button("Undo", interactive=caps.sample, elem_id="undo-btn")
                            redo_btn = gr.Button("Redo", interactive=caps.sample, elem_id="redo-btn")
                        result_md = gr.Markdown(label="result", elem_id="result")
                with gr.Row():
                    before = gr.Image(label="Before", type="numpy", interactive=False, height=200,
                                      elem_classes=["pix"], elem_id="before", format="png")  # fmt: skip
                    after = gr.Image(label="After", type="numpy", interactive=False, height=200,
                                     elem_classes=["pix"], elem_id="after", format="png")  # fmt: skip
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        examples = gr.Gallery(value=runtime.examples or None, label="Examples", columns=4, rows=1,
                                              height=190, allow_preview=False, object_fit="contain",
                                              elem_classes=["pixel"], elem_id="examples")  # fmt: skip
                    with gr.Column(scale=1, min_width=300):
                        photo = gr.File(label="Upload a photo" + ("" if caps.embed else " (needs the encoder)"),
                                        file_types=["image"], type="filepath", interactive=caps.embed,
                                        elem_id="photo")  # fmt: skip
                        embed_steps = Slider(0, cfg.max_embed_steps, value=min(100, cfg.max_embed_steps), step=1,
                                                label="Embedding steps", interactive=caps.embed)  # fmt: skip
                        tune_photo = gr.Checkbox(value=cfg.tune_steps > 0, interactive=caps.embed and cfg.tune_steps > 0,
                                                 label="Tune the generator to the photo (closer likeness; "
                                                       f"{cfg.tune_steps} more steps)", elem_id="tune-photo")  # fmt: skip
                        with gr.Row():
                            upload_btn = gr.Button("Embed photo", interactive=caps.embed, elem_id="upload-btn")
                            tune_btn = gr.Button("Tune to the photo now", interactive=caps.embed and cfg.tune_steps > 0,
                                                 elem_id="tune-btn")  # fmt: skip
                with gr.Accordion("Download and save", open=True):
                    with gr.Row():
                        with gr.Column():
                            export_btn = gr.Button("Prepare downloads (image, mask, edit vector)", elem_id="export-btn")
                            files = gr.File(label="Files", file_count="multiple", interactive=False)
                            pasted = gr.Image(label="Edit pasted into your photo", type="filepath", interactive=False,
                                              height=200)  # fmt: skip
                        with gr.Column():
                            save_name = gr.Textbox(label="Name", max_length=120, elem_id="save-name")
                            save_desc = gr.Textbox(label="Description", lines=2)
                            save_tags = gr.Textbox(label=f"Tags ({TAGS_HELP})", elem_id="save-tags")
                            save_vis = gr.Radio(list(VISIBILITIES), value="public", label="Visibility")
                            save_transfer = gr.Checkbox(value=True, label="Make it transfer to other faces first "
                                                        "(mask edits; about a minute on a CPU, with progress)",
                                                        elem_id="save-transfer")  # fmt: skip
                            save_btn = gr.Button("Save edit to the library", elem_id="save-btn")
                            # min_height leaves room for the progress bar of the transfer step
                            save_msg = gr.Markdown(label="save message", elem_id="save-msg", min_height=64)
                            # the id is in the message; the field is the API's second output only
                            saved_id = gr.Number(value=None, label="Saved vector id", precision=0, interactive=False,
                                                 visible=False)  # fmt: skip

            # ------------------------------------------------------------------ Library
            with gr.Tab("Library", id="library"):
                with gr.Row():
                    q_text = gr.Textbox(label="Search", placeholder="smile, glasses OR hat…", scale=3, elem_id="q-text")
                    q_tag = gr.Textbox(label="Tag", scale=1)
                    q_class = gr.Dropdown([""] + class_names, value="", label="Edits", scale=1,
                                          info="vectors whose change is about this class")  # fmt: skip
                    q_sort = gr.Dropdown(list(SORT_CHOICES), value="relevance", label="Sort", scale=1)
                    search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-btn")
                results = gr.Gallery(label="Results", columns=8, rows=1, height=190, allow_preview=False,
                                     object_fit="contain", elem_classes=["pixel"], elem_id="results")  # fmt: skip
                table = gr.Dataframe(headers=["id", "name", "author", "edits", "tags", "likes", "downloads"],
                                     datatype=["number", "str", "str", "str", "str", "number", "number"],
                                     interactive=False, label="Matches", elem_id="results-table")  # fmt: skip
                with gr.Row():
                    with gr.Column(scale=2):
                        with gr.Row():
                            vid = gr.Textbox(label="Vector id", placeholder="click a result above, or type an id",
                                             elem_id="vector-id")  # fmt: skip
                            open_btn = gr.Button("Open")
                        page_md = gr.Markdown(label="vector page", elem_id="vector-page")
                        versions = gr.Dataframe(headers=["version", "created", "note", "edits"], interactive=False,
                                                label="Version history", elem_id="versions")  # fmt: skip
                        with gr.Row():
                            like_btn = gr.Button("♥ Like", elem_id="like-btn")
                            like_msg = gr.Markdown(label="likes")
                        with gr.Accordion("Change or delete this vector (its author only)", open=False,
                                          elem_id="manage"):  # fmt: skip
                            m_name = gr.Textbox(label="Name", max_length=120, elem_id="manage-name")
                            m_desc = gr.Textbox(label="Description", lines=2, elem_id="manage-desc")
                            m_tags = gr.Textbox(label=f"Tags ({TAGS_HELP})", elem_id="manage-tags")
                            m_vis = gr.Radio(list(VISIBILITIES), value="public", label="Visibility",
                                             elem_id="manage-vis")  # fmt: skip
                            m_save = gr.Button("Save changes", elem_id="manage-save")
                            with gr.Row():
                                m_sure = gr.Checkbox(label="yes, delete it with every version (cannot be undone)",
                                                     elem_id="manage-sure", scale=3)  # fmt: skip
                                m_delete = gr.Button("Delete", variant="stop", elem_id="manage-delete", scale=1)
                            m_msg = gr.Markdown(elem_id="manage-msg")
                    with gr.Column(scale=1):
                        vec_preview = gr.Image(label="Preview (from its author)", interactive=False, height=160,
                                               elem_classes=["pix"])  # fmt: skip
                        scale = Slider(-5.0, 5.0, value=1.0, step=0.05, label="Scale (updates live)",
                                          elem_id="apply-scale")  # fmt: skip
                        apply_btn = gr.Button("Apply to my image", interactive=caps.sample, elem_id="apply-btn")
                        applied_img = gr.Image(label="On your image", interactive=False, height=200,
                                               elem_classes=["pix"], elem_id="applied", format="png")  # fmt: skip
                        keep_btn = gr.Button("Keep it (bake into the image)", interactive=caps.sample)
                with gr.Row():
                    with gr.Column():
                        dl_btn = gr.Button("Download vector file")
                        dl_file = gr.File(label="Vector file", interactive=False)
                    with gr.Column():
                        up_file = gr.File(label="Upload a vector file (.safetensors)", file_types=[".safetensors"],
                                          type="filepath")  # fmt: skip
                        up_name = gr.Textbox(label="Name (default: from the file)")
                        up_tags = gr.Textbox(label=f"Tags ({TAGS_HELP})")
                        up_vis = gr.Radio(list(VISIBILITIES), value="public", label="Visibility")
                        up_btn = gr.Button("Publish file")
                        up_msg = gr.Markdown(label="upload message")
                        up_id = gr.Number(value=None, label="Published vector id", precision=0, interactive=False,
                                          visible=False)  # fmt: skip

            # ------------------------------------------------------------------ Compose
            with gr.Tab("Compose", id="compose"):
                gr.Markdown("Pick up to four vectors; the preview updates as you move the sliders (one generator "
                            "pass). **Refine** runs a few optimisation steps that clean up artifacts (needs the "
                            "segmentation branch).")  # fmt: skip
                slot_ids, slot_scales = [], []
                with gr.Row():
                    with gr.Column(scale=2):
                        for i in range(COMPOSE_SLOTS):
                            with gr.Row():
                                slot_ids.append(gr.Dropdown([], label=f"Vector {i + 1}", allow_custom_value=True,
                                                            scale=2, elem_id=f"slot-{i}"))  # fmt: skip
                                slot_scales.append(Slider(-5.0, 5.0, value=1.0, step=0.05, label="Scale", scale=3,
                                                             elem_id=f"slot-scale-{i}"))  # fmt: skip
                        refresh_btn = gr.Button("Refresh vector list")
                        warn_md = gr.Markdown(label="warnings", elem_id="compose-warnings")
                    with gr.Column(scale=1):
                        comp_img = gr.Image(label="Preview", interactive=False, height=256, elem_classes=["pix"],
                                            elem_id="compose-preview", format="png")  # fmt: skip
                        comp_btn = gr.Button("Preview", interactive=caps.sample)
                        comp_keep = gr.Button("Keep it (bake into the image)", interactive=caps.sample)
                        refine_steps = Slider(1, cfg.max_edit_steps, value=min(REFINE_STEPS, cfg.max_edit_steps),
                                                 step=1, label="Refinement steps")
                        refine_btn = gr.Button("Refine (mode 2)", interactive=caps.segment)
                with gr.Row():
                    comp_name = gr.Textbox(label="Composition name")
                    comp_vis = gr.Radio(list(VISIBILITIES), value="private", label="Visibility")
                    comp_save = gr.Button("Save composition")
                with gr.Row():
                    comp_pick = gr.Dropdown([], label="Saved compositions (yours and public ones)", allow_custom_value=True,
                                            elem_id="composition-pick", scale=3)  # fmt: skip
                    comp_list_btn = gr.Button("Refresh", scale=1)
                    comp_open = gr.Button("Open composition", scale=1)
                comp_msg = gr.Markdown(label="composition message")
                with gr.Row():
                    share_btn = gr.Button("Share this state", interactive=caps.sample, elem_id="share-btn")
                    share_link = gr.Textbox(label="Link (opens this image and these vectors)", elem_id="share-link")
                    share_open = gr.Button("Open a link")

            # ------------------------------------------------------------------ Label
            with gr.Tab("Label", id="label"):
                gr.Markdown("**Teach the editor this generator's parts.** Create a label set (its classes and "
                            "colours), add samples, click one, paint its mask (brush on the image, or the fill bucket "
                            "on the right), **Save mask**; with a few masks (EditGAN uses 16) press **Train branch**. "
                            "Several people can label one set at once: a sample is yours while you paint it. "
                            "Keys 1-9 and 0 pick the classes.", elem_id="label-help")  # fmt: skip
                with gr.Accordion("Model", open=False):
                    with gr.Row():
                        model_pick = gr.Dropdown(list(cfg.models), value=runtime.model_spec_text, scale=3,
                                                 label="This server's models (EDITGAN_MODEL, EDITGAN_MODELS)",
                                                 elem_id="model-pick")  # fmt: skip
                        model_btn = gr.Button("Switch the server to this model", scale=1, elem_id="model-switch")
                    model_msg = gr.Markdown(elem_id="model-msg")
                with gr.Row():
                    lab_set = gr.Dropdown([], label="Label set", elem_id="label-set", scale=3, allow_custom_value=True)
                    lab_refresh = gr.Button("Refresh sets", scale=1)
                lab_progress = gr.Markdown(elem_id="label-progress")
                with gr.Accordion("New label set, classes and members", open=False):
                    lab_name = gr.Textbox(label="Set name", max_length=80, elem_id="label-set-name")
                    lab_classes = gr.Textbox(label="Classes, one per line: name #rrggbb (the first is the background)",
                                             lines=5, elem_id="label-classes")  # fmt: skip
                    with gr.Row():
                        lab_template = gr.Button("Start from the face template")
                        lab_create = gr.Button("Create set", variant="primary", elem_id="label-create")
                        lab_update = gr.Button("Update this set's classes", elem_id="label-update")
                    with gr.Row():
                        lab_member = gr.Textbox(label="Add a member (user name)", elem_id="label-member")
                        lab_member_btn = gr.Button("Add member")
                    with gr.Row():
                        lab_delete_sure = gr.Checkbox(value=False, label="Yes, delete this set with all its samples "
                                                      "and masks (branches trained from it stay)",
                                                      elem_id="label-delete-sure", scale=3)  # fmt: skip
                        lab_delete = gr.Button("Delete this set", variant="stop", elem_id="label-delete", scale=1)
                    lab_setup_msg = gr.Markdown(elem_id="label-setup-msg")
                with gr.Row():
                    lab_count = Number(value=4, label="New samples", precision=0, minimum=1, maximum=32, scale=1,
                                          elem_id="label-count")  # fmt: skip
                    lab_add = gr.Button("Add samples (varied seeds)", scale=2, elem_id="label-add")
                lab_gallery = gr.Gallery(label="Samples: click one to label it", columns=8, rows=1, height=190,
                                         allow_preview=False, object_fit="contain", elem_id="label-samples")  # fmt: skip
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=420):
                        lab_legend = gr.HTML("", elem_id="label-legend")
                        lab_class = gr.Radio([], label="Class (keys 1-9, 0)", elem_id="label-class")
                        lab_editor = gr.ImageEditor(
                            label="Painter", type="numpy", image_mode="RGBA", sources=[], transforms=[], layers=False,
                            canvas_size=(size, size), fixed_canvas=True, height=size + 80,
                            brush=gr.Brush(colors=masks.hex_colors(palette) if palette is not None else None,
                                           color_mode="fixed", default_size=max(4, size // res)),
                            eraser=gr.Eraser(default_size=max(6, 2 * size // res)), elem_id="label-editor", format="png",
                        )  # fmt: skip
                    with gr.Column(scale=1, min_width=260):
                        lab_fill = gr.Image(label="Fill bucket: click a region to fill it with the class",
                                            type="numpy", interactive=False, height=256, elem_classes=["pix"],
                                            elem_id="label-fill", format="png")  # fmt: skip
                        lab_sample_md = gr.Markdown(elem_id="label-sample")
                        with gr.Row():
                            lab_apply = gr.Button("Apply paint", elem_id="label-apply", min_width=80)
                            lab_guess = gr.Button("Start from the branch's guess", elem_id="label-guess", min_width=80)
                            lab_clear = gr.Button("Clear", elem_id="label-clear", min_width=60)
                            lab_remove = gr.Button("Remove sample", elem_id="label-remove", min_width=60)
                        lab_note = gr.Textbox(label="Note (optional)", max_length=200, elem_id="label-note")
                        lab_force = gr.Checkbox(value=False, label="Overwrite a newer mask by someone else",
                                                elem_id="label-force")  # fmt: skip
                        lab_save = gr.Button("Save mask", variant="primary", elem_id="label-save")
                        lab_msg = gr.Markdown(elem_id="label-msg")
                with gr.Row():
                    lab_train = gr.Button("Train branch", variant="primary", elem_id="label-train")
                    lab_stop = gr.Button("Stop training", variant="stop", elem_id="label-stop")
                    lab_follow = gr.Button("Follow a running training", elem_id="label-follow")
                lab_train_msg = gr.Markdown(elem_id="label-train-msg", min_height=64)
                lab_versions = gr.Dataframe(headers=["version", "by", "when", "masks", "published", "in use"],
                                            interactive=False, label="Branch versions of this generator",
                                            elem_id="label-versions")  # fmt: skip
                with gr.Row():
                    lab_pub_v = gr.Number(value=None, label="Branch version", precision=0, elem_id="label-pub-version")
                    lab_pub = gr.Button("Publish it with its label set", elem_id="label-publish")
                    lab_use = gr.Button("Edit with this version", elem_id="label-use")
                lab_pub_msg = gr.Markdown(elem_id="label-pub-msg")
                with gr.Accordion("Share a label set as a file (its masks and the branches trained from it)",
                                  open=False):
                    with gr.Row():
                        with gr.Column():
                            lab_export = gr.Button("Download this set", elem_id="label-export")
                            lab_export_file = gr.File(label="Label set file", interactive=False)
                        with gr.Column():
                            lab_import_file = gr.File(label="Import a label set (.zip)", file_types=[".zip"],
                                                      type="filepath", elem_id="label-import-file")  # fmt: skip
                            lab_import = gr.Button("Import it", elem_id="label-import")
                            lab_import_msg = gr.Markdown(elem_id="label-import-msg")

        # ------------------------------------------------------------------ wiring
        view = [image, mask_img, overlay, editor, info, state]
        edit_outputs = [before, after, image, mask_img, overlay, editor, result_md, info, state]

        # A failed event covers every component it shows progress on with an error badge until its next success
        # (whatever show_progress says), so the quick events that may be refused show it on their own button, which
        # has none: a refusal is a toast and the workspace stays on screen. The slow ones (upload, tune) show
        # progress on the image, so their refusals are made first by a quick check that gates them.
        # a new image empties the last edit's before, after and result (they described another image)
        last_edit, no_edit = [before, after, result_md], dict(fn=lambda: (None, None, ""), inputs=None,
                                                                api_name=False, queue=False)  # fmt: skip
        sample_btn.click(h.sample, [seed, state], view, api_name="sample", show_progress_on=[sample_btn], **light
                         ).success(outputs=last_edit, **no_edit)  # fmt: skip
        random_btn.click(h.random_sample, [state], [seed, *view], api_name="random_sample",
                         show_progress_on=[random_btn], **light).success(outputs=last_edit, **no_edit)  # fmt: skip
        examples.select(h.pick_example, [state], [seed, *view], api_name="pick_example",
                        api_visibility="private", show_progress_on=[random_btn], **light).success(
            outputs=last_edit, **no_edit)  # fmt: skip
        upload_btn.click(h.check_upload, [photo, embed_steps, tune_photo], None, api_name=False,
                         show_progress_on=[upload_btn], **light).success(
            h.upload, [photo, embed_steps, state, tune_photo], view, api_name="upload", show_progress_on=[image],
            **heavy).success(outputs=last_edit, **no_edit)  # fmt: skip
        tune_btn.click(h.check_tune, [state], None, api_name=False, show_progress_on=[tune_btn], **light).success(
            h.tune, [state], view, api_name="tune", show_progress_on=[image], **heavy)  # fmt: skip
        # the progress bar sits on the result text, so the streamed intermediate images stay visible
        run_btn.click(h.edit, [editor, mask_file, mode, steps, state], edit_outputs, api_name="edit",
                      show_progress_on=[result_md], **heavy).then(lambda: "", None, stop_md, api_name=False,
                                                                  queue=False)  # fmt: skip
        run_btn.click(lambda: "", None, stop_md, api_name=False, queue=False)
        # Stop answers beside its button: written into the result, its "Stopping…" replaced the stopped edit's
        # metrics when it arrived after them
        stop_btn.click(h.stop, None, stop_md, api_name="stop", queue=False)
        undo_btn.click(h.undo, [state], view, api_name="undo", show_progress_on=[undo_btn], **light)
        redo_btn.click(h.redo, [state], view, api_name="redo", show_progress_on=[redo_btn], **light)
        export_btn.click(h.export, [state], [files, pasted], api_name="export", **light)
        save_btn.click(h.save_edit, [save_name, save_desc, save_tags, save_vis, save_transfer, state], [save_msg, saved_id],
                       api_name="save_edit", show_progress_on=[save_msg], **heavy).success(h.vector_choices, None, slot_ids, api_name=False)  # fmt: skip

        search_inputs = [q_text, q_tag, q_class, q_sort]
        search_btn.click(h.search, search_inputs, [results, table], api_name="search")
        q_text.submit(h.search, search_inputs, [results, table], api_name=False)
        page_outputs = [page_md, versions, scale, like_btn, vec_preview, vid]
        manage_fields = [m_name, m_desc, m_tags, m_vis, m_sure, m_msg]
        open_btn.click(h.vector_page, [vid], page_outputs, api_name="vector").success(
            h.manage_fields, [vid], manage_fields, api_name=False)  # fmt: skip
        results.select(h.pick_result, [table], [vid], api_name=False).then(
            h.vector_page, [vid], page_outputs, api_name=False).success(
            h.manage_fields, [vid], manage_fields, api_name=False)  # fmt: skip
        m_save.click(h.update_vector, [vid, m_name, m_desc, m_tags, m_vis], [m_msg], api_name="update_vector",
                     show_progress_on=[m_save]).success(
            h.vector_page, [vid], page_outputs, api_name=False).success(
            h.search, search_inputs, [results, table], api_name=False)  # fmt: skip
        m_delete.click(h.delete_vector, [vid, m_sure], [m_msg, m_sure], api_name="delete_vector",
                       show_progress_on=[m_delete]).success(
            h.search, search_inputs, [results, table], api_name=False).success(
            h.vector_choices, None, slot_ids, api_name=False)  # fmt: skip
        like_btn.click(h.like, [vid], [like_btn, like_msg], api_name="like")
        # a preview changes what the next edit starts from: the Edit tab shows it too
        quiet = dict(api_name=False, show_progress="hidden", **light)
        apply_btn.click(h.apply, [vid, scale, state], [applied_img, state], api_name="apply", **light).success(
            h.current_view, [state], view, **quiet)  # fmt: skip
        scale.input(h.apply_live, [vid, scale, state], [applied_img, *view], trigger_mode="always_last", **quiet)
        scale.release(h.current_view, [state], view, trigger_mode="always_last", **quiet)  # and the mask editor
        keep_btn.click(h.keep, [state], view, api_name="keep", show_progress_on=[keep_btn], **light)
        dl_btn.click(h.download_vector, [vid], [dl_file], api_name="download_vector")
        up_btn.click(h.upload_vector, [up_file, up_name, up_tags, up_vis], [up_msg, up_id],
                     api_name="upload_vector").success(h.vector_choices, None, slot_ids, api_name=False)  # fmt: skip

        slots = [*slot_ids, *slot_scales]
        refresh_btn.click(h.vector_choices, None, slot_ids, api_name="vector_choices")
        for i in range(COMPOSE_SLOTS):
            # .input, not .change: opening a composition sets ids and scales together and must not be reset
            # a vector chosen in a slot is previewed at once, with its warnings
            slot_ids[i].input(h.slot_range, [slot_ids[i]], [slot_scales[i]], api_name=False).success(
                h.compose_live, [*slots, state], [comp_img, warn_md, *view], **quiet).success(
                h.current_view, [state], view, **quiet)  # fmt: skip
            slot_scales[i].input(h.compose_live, [*slots, state], [comp_img, warn_md, *view],
                                 trigger_mode="always_last", **quiet)  # fmt: skip
            slot_scales[i].release(h.current_view, [state], view, trigger_mode="always_last", **quiet)
        comp_btn.click(h.compose, [*slots, state], [comp_img, warn_md, state], api_name="compose", **light).success(
            h.current_view, [state], view, **quiet)  # fmt: skip
        comp_keep.click(h.keep, [state], view, api_name=False, **light)
        refine_mode = gr.State(MODES[2])
        refine_btn.click(h.compose, [*slots, state], [comp_img, warn_md, state], api_name=False, **light).success(
            h.edit, [editor, mask_file, refine_mode, refine_steps, state], edit_outputs, api_name="compose_refine",
            show_progress_on=[result_md], **heavy).success(lambda: gr.Tabs(selected="edit"), None, tabs, api_name=False)  # fmt: skip
        comp_save.click(h.save_composition, [comp_name, comp_vis, *slots], [comp_msg], api_name="save_composition"
                        ).success(h.composition_choices, None, [comp_pick], api_name=False)  # fmt: skip
        comp_list_btn.click(h.composition_choices, None, [comp_pick], api_name="composition_choices")
        comp_open.click(h.load_composition, [comp_pick], [*slots, comp_msg], api_name="load_composition").success(
            h.compose, [*slots, state], [comp_img, warn_md, state], api_name=False, **light).success(
            h.current_view, [state], view, **quiet)  # fmt: skip
        share_btn.click(h.share, [state], [share_link], api_name="share")
        share_open.click(h.open_share, [share_link, state], view, api_name="open_share", **light)

        demo.load(h.on_load, [state], [banner, *view], api_name=False)
        demo.load(h.vector_choices, None, slot_ids, api_name=False)
        demo.load(h.composition_choices, None, [comp_pick], api_name=False)
        demo.load(h.browse, None, [results, table], api_name=False)

        # ------------------------------------------------------------------ Label wiring
        lstate = gr.State(LabelSession())
        painter = [lab_editor, lab_fill]
        open_outputs = [lab_gallery, lab_progress, lab_class, lab_editor, lab_legend, lab_classes, lab_versions, lstate]
        edit_controls = [editor, legend, mask_img, overlay, mode, paint_help]
        lab_refresh.click(h.label_set_choices, [lab_set], [lab_set], api_name="label_sets")
        lab_set.change(h.label_open_set, [lab_set, lstate], open_outputs, api_name="label_open")
        lab_template.click(h.label_template, None, [lab_classes], api_name=False)
        # every Label action that may be refused (no set chosen yet, no sample open, ...) shows its progress on its
        # own button: a failed event covers what it shows progress on with an "Error" badge (the painter, the
        # samples), and the painter then stayed blocked until another sample was opened
        lab_create.click(h.label_create, [lab_name, lab_classes], [lab_set, lab_setup_msg], api_name="label_create",
                         show_progress_on=[lab_create])  # fmt: skip
        lab_update.click(h.label_update_classes, [lab_set, lab_classes], [lab_setup_msg], api_name="label_classes",
                         show_progress_on=[lab_update]).success(h.label_open_set, [lab_set, lstate], open_outputs, api_name=False)  # fmt: skip
        lab_delete.click(h.label_delete_set, [lab_set, lab_delete_sure, lstate],
                         [lab_set, lab_setup_msg, lab_gallery, lab_progress, lstate], api_name="label_delete_set",
                         show_progress_on=[lab_delete]).success(lambda: False, None, [lab_delete_sure], api_name=False)  # fmt: skip
        lab_remove.click(h.label_remove_sample, [lstate],
                         [lab_msg, lab_gallery, lab_progress, *painter, lab_sample_md, lstate],
                         api_name="label_remove_sample", show_progress_on=[lab_remove])  # fmt: skip
        lab_member_btn.click(h.label_add_member, [lab_set, lab_member], [lab_setup_msg], api_name="label_add_member",
                             show_progress_on=[lab_member_btn])  # fmt: skip
        lab_add.click(h.label_add_samples, [lab_set, lab_count], [lab_gallery, lab_progress], api_name="label_add_samples",
                      show_progress_on=[lab_add], **light)  # fmt: skip  (a refusal must not cover the samples)
        lab_gallery.select(h.label_pick, [lab_set, lstate], [*painter, lab_sample_md, lstate], api_name=False, **light)
        # API-only actions (the page uses the gallery's and the fill view's clicks): hidden inputs and buttons
        lab_sample_id, sample_btn_api = gr.Number(visible=False, precision=0), gr.Button(visible=False)
        sample_btn_api.click(h.label_sample, [lab_set, lab_sample_id, lstate], [*painter, lab_sample_md, lstate],
                             api_name="label_sample", **light)  # fmt: skip
        lab_class.change(h.label_brush, [lab_class, lstate], [lab_editor], api_name=False)
        lab_fill.select(h.label_fill, [lab_class, lab_editor, lstate], [*painter, lstate], api_name=False)
        fill_x, fill_y = gr.Number(visible=False, precision=0), gr.Number(visible=False, precision=0)
        fill_cls, fill_btn = gr.Textbox(visible=False), gr.Button(visible=False)
        fill_btn.click(h.label_fill_at, [fill_x, fill_y, fill_cls, lab_editor, lstate], [*painter, lstate],
                       api_name="label_fill")  # fmt: skip
        lab_apply.click(h.label_apply_paint, [lab_editor, lstate], [*painter, lstate], api_name="label_apply",
                        show_progress_on=[lab_apply])  # fmt: skip
        lab_guess.click(h.label_guess, [lstate], [*painter, lstate], api_name="label_guess", show_progress_on=[lab_guess],
                        **light)  # fmt: skip
        lab_clear.click(h.label_clear, [lstate], [*painter, lstate], api_name="label_clear", show_progress_on=[lab_clear])
        lab_save.click(h.label_save, [lab_editor, lab_force, lab_note, lstate],
                       [lab_msg, lab_gallery, lab_progress, *painter, lstate], api_name="label_save",
                       show_progress_on=[lab_save]).success(
            h.label_after_save, [lstate], [lab_note, lab_sample_md], api_name=False, show_progress="hidden")  # fmt: skip
        lab_train.click(h.label_train, [lab_set], [lab_train_msg], api_name="label_train",
                        show_progress_on=[lab_train_msg]).success(
            h.edit_controls, None, edit_controls, api_name=False).then(
            h.label_versions, None, [lab_versions], api_name=False).then(
            h.refresh_view, [state], [banner, *view], api_name=False)  # fmt: skip
        lab_follow.click(h.label_train_status, [lab_set], [lab_train_msg], api_name="label_train_status",
                         show_progress_on=[lab_train_msg]).success(
            h.edit_controls, None, edit_controls, api_name=False).then(
            h.refresh_view, [state], [banner, *view], api_name=False)  # fmt: skip
        lab_stop.click(h.label_train_stop, [lab_set], [lab_train_msg], api_name="label_train_stop", queue=False)
        lab_pub.click(h.label_publish, [lab_pub_v], [lab_pub_msg, lab_versions], api_name="label_publish",
                      show_progress_on=[lab_pub])  # fmt: skip
        lab_export.click(h.label_export, [lab_set], [lab_export_file], api_name="label_export",
                         show_progress_on=[lab_export])  # fmt: skip
        lab_import.click(h.label_import, [lab_import_file], [lab_import_msg, lab_set], api_name="label_import",
                         show_progress_on=[lab_import]).success(
            h.edit_controls, None, edit_controls, api_name=False).then(
            h.refresh_view, [state], [banner, *view], api_name=False)  # fmt: skip  (the banner names the branch)
        lab_use.click(h.label_use_version, [lab_pub_v], [lab_pub_msg, lab_versions], api_name="label_use_version",
                      show_progress_on=[lab_use]).success(h.edit_controls, None, edit_controls, api_name=False).then(
            h.refresh_view, [state], [banner, *view], api_name=False)  # fmt: skip
        model_btn.click(h.switch_model, [model_pick], [model_msg, banner], api_name="switch_model").success(
            h.edit_controls, None, edit_controls, api_name=False).then(
            h.label_set_choices, None, [lab_set], api_name=False).then(
            h.random_sample, [state], [seed, *view], api_name=False)  # fmt: skip
        demo.load(h.label_set_choices, None, [lab_set], api_name=False)
        demo.load(h.edit_controls, None, edit_controls, api_name=False)
    return demo
