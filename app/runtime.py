"""What one app process shares between all sessions: the model bundle, the library, small caches.

Created once in app.py (or by a test) and handed to ``build_demo``. The model may be missing or
partial -- a generator trained before its segmentation branch and encoder -- and the app then does
what it can: :attr:`Runtime.capabilities` says which actions are available and
:meth:`Runtime.status_markdown` says which part is missing and why. Nothing is faked: without a
branch there is no mask, without an encoder no photo upload.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

from app.config import AppConfig
from app.identity import Identity
from app.session import check_token
from core.data.palette import colorize
from core.edit_vector import check_vector
from core.editgan import CHECKPOINTS, EditGAN, resolve_model_path
from core.tuning import Tuning, read_safetensors, tuning_bytes, tuning_from_bytes
from core.vector_format import VectorFile
from db import Database, default_database_url
from vector_library import LabelStore, LibraryError, ModelSpec, VectorLibrary

log = logging.getLogger(__name__)
HF_PREFIX = "hf://"
INFO_TTL_S = 2.0
TUNED_BUNDLES = 8  # photos' tuned models kept in memory (each a copy of the generator)
TUNING_FILES = 256  # photos' tunings kept in the library's database (1.6 MB each for faces64); the oldest go first
# uploaded photos kept there at the model's resolution with their embedding (12 KB each for faces64), so that one
# embedded without tuning can be tuned later (Handlers.tune), on any replica; the oldest go first
PHOTO_FILES = 256
PHOTO_FORMAT = "editgan-photo/1"
BRANCH_CHECK_S = 5.0  # how often a process looks in the database for a branch another replica trained


def fetch_model(spec: str) -> Path:
    """A model spec -> a local folder or ``.pt`` file. ``hf://owner/repo[/subfolder]`` is downloaded (or read from
    the Hugging Face cache); a path ending in ``.pt`` is a rosinality checkpoint (a generator alone); anything else
    goes through core.editgan.resolve_model_path."""
    if spec.endswith(".pt") and not spec.startswith(HF_PREFIX):
        if not Path(spec).is_file():
            raise ValueError(f"no file at {spec!r}")
        return Path(spec)
    if not spec.startswith(HF_PREFIX):
        return resolve_model_path(spec)
    parts = spec[len(HF_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"{spec!r}: expected hf://owner/repo or hf://owner/repo/subfolder")
    repo_id, sub = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import snapshot_download

    patterns = [f"{sub}/*"] if sub else None
    try:
        root = Path(snapshot_download(repo_id=repo_id, allow_patterns=patterns))
    except Exception as e:  # offline, unknown repo, no permission: say which and what to do
        raise ValueError(
            f"could not fetch {spec} from the Hugging Face Hub ({type(e).__name__}: {str(e)[:200]}). "
            "Without internet, download it elsewhere and point EDITGAN_MODEL at the folder"
        ) from None
    folder = root / sub if sub else root
    if not (folder / "config.json").is_file():
        pts = sorted(folder.glob("*.pt"))
        if len(pts) == 1:  # a repo holding one rosinality checkpoint
            return pts[0]
        raise ValueError(f"{spec}: the downloaded folder has no config.json (is the subfolder right?)")
    return folder


@dataclass(frozen=True)
class Capabilities:
    sample: bool  # a generator: sample, render, apply and compose vectors
    segment: bool  # a segmentation branch: masks, mask edits, refinement
    embed: bool  # an encoder: photo upload

    @property
    def edit(self) -> bool:
        return self.segment


class Runtime:
    """The model and the library, loaded once per process and shared by every session (thread-safe)."""

    def __init__(self, config: AppConfig, identity: Identity, library: VectorLibrary,
                 model: Optional[EditGAN], model_problem: str = "") -> None:  # fmt: skip
        self.config = config
        self.identity = identity
        self.library = library
        self.model = model
        self.model_problem = model_problem
        self._vectors: OrderedDict[tuple[int, str], VectorFile] = OrderedDict()
        self._infos: OrderedDict[tuple[int, Optional[str]], tuple[float, object]] = OrderedDict()
        self._tuned: OrderedDict[str, EditGAN] = OrderedDict()
        self._lock = threading.Lock()
        self.labels = LabelStore(library.db)
        # the bundle as loaded (its own branch, if any, is version 0); trained branch versions replace its branch
        self.base_model = model
        self.branch_version = 0
        self._branch_checked = 0.0
        self.trainer = None  # app.training.BranchTrainer, made by build_demo's handlers
        self.model_spec_text = config.model  # which of config.models runs
        self.examples: list[tuple[np.ndarray, str]] = []
        if model is not None:
            self._start_model()

    def _start_model(self) -> None:
        self.refresh_branch(force=True)
        # the classes of the branch in use (a branch trained in the Label tab, or the bundle's own chosen again)
        self.library.set_model_classes(self.model.model_id, tuple(self.model.class_names))
        self.library.register_model(self.model_spec())
        self.examples = [(self.render(self.sample(s)).image, f"seed {s}") for s in self.config.example_seeds]

    def switch_model(self, spec: str) -> None:
        """Run another of the server's models (``config.models``; never a path a user typed). Every session's
        image is then of the old model: its next action says so and a new sample starts over."""
        if spec not in self.config.models:
            raise ValueError(f"{str(spec)[:80]!r} is not one of this server's models: {', '.join(self.config.models)}")
        if self.trainer is not None and any(j.running for j in self.trainer.jobs.values()):
            raise ValueError("a branch is training for the current model; wait for it or stop it first")
        model = EditGAN.load(fetch_model(spec), device=self.config.torch_device)  # on failure the old model stays
        with self._lock:
            self.base_model, self.model, self.branch_version, self._branch_checked = model, model, 0, 0.0
            self.model_problem, self.model_spec_text = "", spec
            self._tuned.clear()
            self._infos.clear()
        self._start_model()
        log.info("switched to model %s (%s)", spec, model.model_id)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def create(cls, config: AppConfig, identity: Optional[Identity] = None,
               library: Optional[VectorLibrary] = None) -> "Runtime":  # fmt: skip
        """Load the model (never raising for a missing or partial bundle) and open the library."""
        identity = identity or Identity("anonymous")
        if library is None:
            data_dir = config.resolved_data_dir
            if config.database_url is None:
                data_dir.mkdir(parents=True, exist_ok=True)
            # without a database URL, the data directory (--data-dir too) holds the SQLite file
            library = VectorLibrary(Database.open(config.database_url or default_database_url(data_dir)))
        device = config.torch_device  # a bad EDITGAN_DEVICE stops the app with its message, unlike a missing model
        model, problem = None, ""
        try:
            model = EditGAN.load(fetch_model(config.model), device=device)
        except Exception as e:  # a missing or broken bundle must not stop the library from working
            problem = _explain_load_failure(config.model, e)
            log.warning("model not loaded: %s", problem)
        return cls(config, identity, library, model, problem)

    # -- what this process can do -----------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        m = self.model
        return Capabilities(sample=m is not None, segment=m is not None and m.branch is not None,
                            embed=m is not None and m.encoder is not None)  # fmt: skip

    @property
    def model_id(self) -> Optional[str]:
        return self.model.model_id if self.model is not None else None

    def model_spec(self) -> ModelSpec:
        m = self.model
        name = m.path.name if m.path is not None else "model"
        return ModelSpec(model_id=m.model_id, name=name[:120], resolution=m.resolution, n_latent=m.latent_shape[0],
                         w_dim=m.latent_shape[1], class_names=tuple(m.class_names))  # fmt: skip

    # -- branch versions trained in the app (app.training), kept in the library's database ----------------------
    def refresh_branch(self, force: bool = False) -> bool:
        """Use the branch version chosen for this generator in the database (LabelStore.choose_branch), else the
        newest trained one, as another replica on the same database or a restart finds them; looked up at most
        every BRANCH_CHECK_S. Returns True when the branch changed."""
        if self.base_model is None:
            return False
        now = time.monotonic()
        if not force and now - self._branch_checked < BRANCH_CHECK_S:
            return False
        self._branch_checked = now
        model_id = self.base_model.model_id
        chosen = self.labels.branch_in_use(model_id)
        if chosen is None or (chosen == 0 and self.base_model.branch is None):
            versions = self.labels.branch_versions(model_id)  # newest first
            chosen = versions[0].version if versions else 0
        if chosen == self.branch_version:
            return False
        try:
            return self.use_branch_version(chosen)
        except (ValueError, LibraryError) as e:  # a damaged version: the branch in use stays, the log says why
            log.warning("branch version %d of model %s not used: %s", chosen, model_id, e)
            return False

    def choose_branch_version(self, version: int, user: str) -> None:
        """The Label tab's choice: branch ``version`` (0: the bundle's own) for every session, on every replica and
        after a restart, until a newer version is trained."""
        base = self.require_base()
        if version == 0 and base.branch is None:
            raise ValueError("this generator's bundle has no branch of its own (version 0); choose a trained one")
        self.labels.choose_branch(base.model_id, int(version), user)
        self.use_branch_version(int(version))

    def use_branch_version(self, version: int) -> bool:
        """Make branch ``version`` of this generator the one every session of this process edits with (0: the
        bundle's own), and the library's classes of the model its classes."""
        from app.training import unpack_branch  # torch-side helpers; imported here to keep start-up lean

        base = self.require_base()
        if version == 0:
            model = base
        else:
            info, data = self.labels.branch_version(base.model_id, int(version))
            branch, reader, names, palette = unpack_branch(data, info.config, base.generator)
            model = base.with_branch(branch, names, palette, reader)
        with self._lock:
            before = tuple(self.model.class_names)
            self.model, self.branch_version = model, int(version)
            self._tuned.clear()
        if before != tuple(model.class_names):  # back to version 0 too: saving checks a vector's classes against these
            self.library.set_model_classes(base.model_id, tuple(model.class_names))
        log.info("model %s now edits with branch version %d", base.model_id, version)
        return True

    def require_base(self) -> EditGAN:
        if self.base_model is None:
            raise ValueError(f"no model is loaded: {self.model_problem}")
        return self.base_model

    def status_markdown(self) -> str:
        """The banner: which model, which parts are missing and what that disables."""
        m = self.model
        if m is None:
            return (f"**No model loaded.** {self.model_problem}\n\nThe library can still be browsed and searched; "
                    "sampling, editing and applying vectors need a generator.")
        name = m.path.name if m.path is not None else "model"
        version = f", branch version {self.branch_version}" if self.branch_version else ""
        head = (f"Model **{name}** ({m.resolution}x{m.resolution}, {len(m.class_names)} classes, id `{m.model_id}`"
                f"{version}).")
        missing = []
        if m.branch is None:
            missing.append("its **segmentation branch** is not trained yet: no masks, no mask editing, no refinement "
                           "(random samples and library vectors work). Label a few samples in the **Label** tab and "
                           "train it there")
        if m.encoder is None:
            missing.append("its **encoder** is not trained yet: photo upload is disabled")
        if m.branch is not None and m.reader is None and not self.branch_version:
            missing.append("its **image reader** is not trained yet: mask edits are guided by the branch alone "
                           "(`python -m core.train.branch --model <folder> --reader-only --export`)")
        if not missing:
            return head + " All parts present."
        return head + " This bundle is partial: " + "; ".join(missing) + ". The training scripts in README.md make them."

    # -- model calls ------------------------------------------------------------------------------
    def require(self, what: str) -> EditGAN:
        """The model, or a ValueError saying which part is missing for ``what``."""
        self.refresh_branch()
        caps, m = self.capabilities, self.model
        if m is None:
            raise ValueError(f"{what} needs a model, and none is loaded: {self.model_problem}")
        if what in ("mask editing", "segmentation", "refinement") and not caps.segment:
            raise ValueError(f"{what} needs the model's segmentation branch, which this bundle does not have yet")
        if what == "photo upload" and not caps.embed:
            raise ValueError("photo upload needs the model's encoder, which this bundle does not have yet")
        return m

    def sample(self, seed: int, truncation: float = 0.7) -> np.ndarray:
        """# [n_latent, w_dim] float32 for a seed."""
        m = self.require("sampling")
        return m.sample(int(seed), truncation)[0].cpu().numpy().astype(np.float32)

    # -- photos' generator tunings (core.tuning) and kept photos, in the library's database ------------------
    # (vector_library.states): every replica on that database finds them, and they survive a restart
    def store_tuning(self, tuning: Tuning) -> str:
        """Keep a photo's pivotal tuning (safetensors bytes, float16) in the library's database; returns the token
        (a hash of its content, so the same tuning is stored once). The oldest beyond TUNING_FILES go."""
        m = self.require("photo upload")
        digest = hashlib.sha256(m.model_id.encode())
        for name in sorted(tuning):  # the float16 values the file holds (its header's order is not fixed)
            digest.update(name.encode() + tuning[name].detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
        token = digest.hexdigest()[:20]
        return self.library.states.keep_file("tuning", token, m.model_id, tuning_bytes(tuning, m.model_id), TUNING_FILES)

    def store_photo(self, image: torch.Tensor, w_plus: np.ndarray) -> str:
        """Keep an uploaded photo as the embedding saw it (``image`` [1, 3, R, R] in [-1, 1], stored as 8-bit) with
        its embedded latent (the pivot a later tuning keeps) in the library's database; returns the token (a hash
        of the model id and the content). The oldest beyond PHOTO_FILES go."""
        m = self.require("photo upload")
        pixels = to_uint8(image).transpose(2, 0, 1).copy()  # [3, R, R]
        pivot = np.ascontiguousarray(w_plus, dtype=np.float32)
        token = hashlib.sha256(m.model_id.encode() + pixels.tobytes() + pivot.tobytes()).hexdigest()[:20]
        data = save_safetensors({"image": torch.from_numpy(pixels), "w_plus": torch.from_numpy(pivot)},
                                metadata={"format": PHOTO_FORMAT, "model_id": m.model_id})  # fmt: skip
        return self.library.states.keep_file("photo", token, m.model_id, data, PHOTO_FILES)

    def load_photo(self, token: str) -> tuple[torch.Tensor, np.ndarray]:
        """(image [1, 3, R, R] in [-1, 1], embedded latent [n_latent, w_dim]) of a photo kept by :meth:`store_photo`."""
        m = self.require("photo upload")
        kept = self.library.states.kept_file("photo", check_token(token, "uploaded photo"))
        if kept is None:
            raise ValueError("this photo is no longer kept on this server (removed to make room): upload it again")
        try:
            meta, tensors = read_safetensors(kept.data)
            image, pivot = tensors["image"], tensors["w_plus"]
        except (ValueError, KeyError) as e:
            raise ValueError(f"this photo's file on the server is damaged ({type(e).__name__}): upload it again") from None
        r = m.resolution
        if (meta.get("format") != PHOTO_FORMAT or meta.get("model_id") != m.model_id or image.dtype != torch.uint8
                or tuple(image.shape) != (3, r, r) or tuple(pivot.shape) != m.latent_shape):  # fmt: skip
            raise ValueError("this photo was kept for another model than the one this server runs: upload it again")
        return image[None].float().div(127.5).sub(1).to(m.device), pivot.numpy()

    def bundle(self, tuning: Optional[str] = None) -> EditGAN:
        """The model, or (``tuning`` = a token from :meth:`store_tuning`) the model tuned to that photo."""
        m = self.require("rendering")
        if tuning is None:
            return m
        token = check_token(tuning, "photo's generator tuning")
        with self._lock:
            hit = self._tuned.get(token)
            if hit is not None:
                self._tuned.move_to_end(token)
                return hit
        kept = self.library.states.kept_file("tuning", token)
        if kept is None:
            raise ValueError("this photo's generator tuning is no longer kept (removed to make room, or made with "
                             "another library database): upload the photo again")  # fmt: skip
        tuned = m.with_tuning(tuning_from_bytes(kept.data, m.generator, m.model_id, "this photo's generator tuning"))
        with self._lock:
            self._tuned[token] = tuned
            while len(self._tuned) > TUNED_BUNDLES:
                self._tuned.popitem(last=False)
        return tuned

    @torch.no_grad()
    def render(self, w: np.ndarray, with_mask: bool = True, tuning: Optional[str] = None) -> "Rendered":
        """One generator pass (+ the branch when present and wanted) for a W+ latent # [n_latent, w_dim], with the
        generator tuned to a photo when ``tuning`` names one."""
        m = self.bundle(tuning)
        wt = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None].to(m.device)
        segment = with_mask and m.branch is not None
        out = m.generator.synthesis(wt, return_features=segment)
        image = to_uint8(out.image)
        mask = m.branch(out.features).argmax(1)[0].cpu().numpy() if segment else None
        return Rendered(image, mask)

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        return colorize(mask, self.model.palette)

    # -- library vectors, cached per content ------------------------------------------------------
    def vector_info(self, vector_id: int, viewer: Optional[str]):
        """library.get, remembered for INFO_TTL_S: a slider sends many updates per second for one vector;
        a change of visibility or a new version shows after at most that long."""
        key = (int(vector_id), viewer)
        now = time.monotonic()
        with self._lock:
            hit = self._infos.get(key)
        if hit is not None and now - hit[0] < INFO_TTL_S:
            return hit[1]
        info = self.library.get(int(vector_id), viewer)
        with self._lock:
            self._infos[key] = (now, info)
            while len(self._infos) > 1024:
                self._infos.popitem(last=False)
        return info

    def vector_file(self, vector_id: int, viewer: Optional[str]) -> VectorFile:
        """The current version of a visible vector, checked against the loaded model."""
        info = self.vector_info(vector_id, viewer)
        key = (info.id, info.content_sha256)
        with self._lock:
            vf = self._vectors.get(key)
            if vf is not None:
                self._vectors.move_to_end(key)
        if vf is None:
            vf = self.library.get_vector_file(info.id, viewer)
            with self._lock:
                self._vectors[key] = vf
                while len(self._vectors) > 256:
                    self._vectors.popitem(last=False)
        m = self.require("applying a vector")
        check_vector(vf, m.model_id, m.latent_shape)
        return vf

    def forget_vector(self, vector_id: int) -> None:
        """Drop what :meth:`vector_info` remembers of a vector its author just changed or deleted."""
        with self._lock:
            for key in [k for k in self._infos if k[0] == int(vector_id)]:
                del self._infos[key]

    def cached_vector(self, vector_id: int, sha: str) -> Optional[VectorFile]:
        with self._lock:
            return self._vectors.get((int(vector_id), sha))


@dataclass
class Rendered:
    image: np.ndarray  # [R, R, 3] uint8
    mask: Optional[np.ndarray]  # [R, R] class ids, None without a branch


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[1, 3, R, R] in [-1, 1] -> [R, R, 3] uint8."""
    x = image[0].detach().cpu().clamp(-1, 1)
    return ((x + 1) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def _explain_load_failure(spec: str, e: Exception) -> str:
    if spec == "faces64" and not (CHECKPOINTS / "faces64" / "config.json").exists():
        return ("The default model checkpoints/faces64/ is not there yet: it is being trained "
                "(`python -m core.train.gan ... --export checkpoints/faces64`, see README.md). "
                "Point EDITGAN_MODEL at another bundle to use one now.")
    return f"Could not load model {spec!r}: {e}"
