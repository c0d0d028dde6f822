"""One object for the whole model bundle: generator + segmentation branch + encoder.

    from core.editgan import EditGAN
    model = EditGAN.load("faces64")             # a name under checkpoints/, a folder, or a rosinality .pt
    w = model.sample(seed=3)                     # W+ [1, n_latent, w_dim]
    image, mask = model.render(w), model.segment(w)
    result = model.embed("photo.jpg")            # EmbedResult (w_plus, reconstruction, crop box, ...)
    r = model.embed("photo.jpg", EmbedConfig(tune_steps=200))
    photo_model = model.with_tuning(r.tuning)    # the generator tuned to that photo (pivotal tuning)
    again = model.tune("photo.jpg", r.w_plus)    # tuning alone, at a latent already found

A model folder holds ``generator.safetensors``, optionally ``branch.safetensors``,
``encoder.safetensors`` and ``reader.safetensors`` (few-shot U-Nets that mask
edits use as a second judge, see :class:`core.segmenter.ImageReader`), and one
``config.json`` with their configs, the class names and the model id.

A generator alone (a rosinality ``.pt``, or a folder with only ``generator.safetensors``)
loads as a bundle without a branch and without classes: it samples, renders and
applies vectors; a branch trained later from a few labelled samples
(core.train.fewshot) joins it with :meth:`EditGAN.with_branch`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from safetensors.torch import load_file

from core.branch import BranchConfig, SegmentationBranch
from core.checkpoint import (
    CONFIG_FILE,
    DEPENDENT_PARTS,
    check_state_dict,
    load_generator,
    load_rosinality,
    model_id_of,
    rosinality_state_dict,
)
from core.data.palette import CLASS_NAMES, PALETTE
from core.edit import EditConfig
from core.embed import EmbedConfig, EmbedResult, embed, embed_tensor
from core.encoder import Encoder, EncoderConfig
from core.generator import Generator
from core.image_io import ImageLike
from core.mask_transfer import FACE_FRAME_EXCLUDED
from core.perceptual import PerceptualLoss
from core.segmenter import ImageReader, ReaderConfig
from core.tuning import Tuning, tuned_generator

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_MODEL = "faces64"


def resolve_model_path(path_or_name: str | Path) -> Path:
    p = Path(path_or_name)
    if p.is_dir():
        return p
    named = CHECKPOINTS / str(path_or_name)
    if named.is_dir():
        return named
    known = sorted(d.name for d in CHECKPOINTS.iterdir() if (d / CONFIG_FILE).exists()) if CHECKPOINTS.is_dir() else []
    raise ValueError(f"no model folder at {path_or_name!r}; shipped models: {known}")


def _load_part(model_dir: Path, file: str, module: torch.nn.Module) -> torch.nn.Module:
    try:
        sd = load_file(str(model_dir / file))
    except Exception as e:
        raise ValueError(f"{model_dir / file}: not a readable safetensors file ({e})") from None
    check_state_dict(module, sd, what=str(model_dir / file))
    module.load_state_dict(sd)
    return module.eval()


def check_edit_defaults(values: dict, where: Optional[Path] = None) -> dict:
    """``config.json``'s "edit_defaults": EditConfig fields and finite numbers (or booleans); a clear error otherwise."""
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'the model'}: config.json's edit_defaults must be an object of EditConfig fields")
    known = set(EditConfig.__dataclass_fields__)
    unknown = sorted(k for k in values if k not in known)
    if unknown:
        raise ValueError(f"{where or 'the model'}: config.json's edit_defaults has unknown field(s) {unknown}; "
                         f"EditConfig has {sorted(known)}")  # fmt: skip
    for k, v in values.items():
        ok = isinstance(v, bool) or (isinstance(v, (int, float)) and np.isfinite(v))
        if not ok:
            raise ValueError(f"{where or 'the model'}: edit_defaults.{k} must be a finite number, got {v!r}")
    EditConfig(**values)  # its own checks (ranges)
    return dict(values)


class EditGAN:
    def __init__(
        self,
        generator: Generator,
        branch: Optional[SegmentationBranch] = None,
        encoder: Optional[Encoder] = None,
        class_names: Sequence[str] = CLASS_NAMES,
        palette: np.ndarray = PALETTE,
        model_id: str = "",
        path: Optional[Path] = None,
        reader: Optional[ImageReader] = None,
        edit_defaults: Optional[dict] = None,
    ):
        self.generator = generator.eval()
        # EditConfig fields measured for this model (config.json "edit_defaults"); EditConfig's own elsewhere
        self.edit_defaults = check_edit_defaults(edit_defaults or {}, path)
        self.branch = branch
        self.encoder = encoder
        self.reader = reader
        self.class_names = tuple(class_names)
        self.palette = palette
        self.model_id = model_id
        self.path = path
        self._perceptual: Optional[PerceptualLoss] = None
        self.tuned = False  # True for the bundles with_tuning returns
        self._sample_share: Optional[float] = None  # unlike_its_samples' reference, measured once

    @classmethod
    def load(cls, path_or_name: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu",
             require: Sequence[str] = ()) -> "EditGAN":  # fmt: skip
        """Load a bundle; ``require`` names parts ("branch", "encoder", "reader") that must be present.

        A path ending in ``.pt`` is a rosinality stylegan2-pytorch checkpoint (read with
        ``weights_only=True``): the generator alone, no branch, no classes.
        """
        if str(path_or_name).endswith(".pt"):
            return cls.load_rosinality(path_or_name, device, require)
        model_dir = resolve_model_path(path_or_name)
        generator = load_generator(model_dir)
        cfg = json.loads((model_dir / CONFIG_FILE).read_text())
        for part in DEPENDENT_PARTS:
            trained_for = cfg.get(f"{part}_training", {}).get("generator_model_id")
            if trained_for not in (None, cfg["model_id"]):
                raise ValueError(f"{model_dir}: the {part} was trained for generator {trained_for}, but the generator "
                                 f"here is {cfg['model_id']}; train the {part} again (see README)")  # fmt: skip
        branch = encoder = None
        if "branch" in cfg and (model_dir / "branch.safetensors").exists():
            branch = _load_part(model_dir, "branch.safetensors", SegmentationBranch(BranchConfig.from_dict(cfg["branch"])))
        if "encoder" in cfg and (model_dir / "encoder.safetensors").exists():
            encoder = _load_part(model_dir, "encoder.safetensors", Encoder(EncoderConfig.from_dict(cfg["encoder"])))
        # a bundle without a branch has no classes of its own unless its config names them
        names = tuple(cfg.get("classes", CLASS_NAMES if branch is not None else ()))
        reader = None
        if "reader" in cfg and (model_dir / "reader.safetensors").exists():
            reader_cfg = ReaderConfig.from_dict(cfg["reader"])
            if (reader_cfg.unet.num_classes, reader_cfg.unet.resolution) != (len(names), generator.config.resolution):
                raise ValueError(f"{model_dir}: the reader reads {reader_cfg.unet.resolution} px images into "
                                 f"{reader_cfg.unet.num_classes} classes, the model makes {generator.config.resolution} "
                                 f"px images with {len(names)}; train it again "
                                 "(python -m core.train.branch --reader-only --export)")  # fmt: skip
            reader = _load_part(model_dir, "reader.safetensors", ImageReader(reader_cfg))
        missing = [p for p in require if {"branch": branch, "encoder": encoder, "reader": reader}.get(p) is None]
        if missing:
            raise ValueError(f"model {model_dir.name} has no {', '.join(missing)} (train it; see README)")
        palette = np.array(cfg["palette"], np.uint8) if "palette" in cfg else PALETTE[: len(names)]
        model = cls(generator, branch, encoder, names, palette, cfg["model_id"], model_dir, reader,
                    cfg.get("edit_defaults"))  # fmt: skip
        return model.to(device)

    @classmethod
    def load_rosinality(cls, path: str | Path, device: str | torch.device = "cpu",
                        require: Sequence[str] = ()) -> "EditGAN":  # fmt: skip
        """A rosinality ``.pt`` (``g_ema``) as a bundle without branch, encoder or classes."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no file at {str(path)!r}")
        generator = load_rosinality(path)
        if require:
            raise ValueError(f"{path.name} holds a generator alone; it has no {', '.join(require)}")
        model_id = model_id_of(rosinality_state_dict(generator))
        return cls(generator, None, None, (), np.zeros((0, 3), np.uint8), model_id, path).to(device)

    def with_branch(self, branch: SegmentationBranch, class_names: Sequence[str], palette: np.ndarray,
                    reader: Optional[ImageReader] = None) -> "EditGAN":  # fmt: skip
        """This bundle with another segmentation branch (and its classes and colours): the generator, encoder and
        model id are shared, so vectors made with one branch apply with the other. ``palette`` is # [K, 3] uint8."""
        palette = np.asarray(palette, np.uint8)
        n_out = branch.config.num_classes
        if len(class_names) != n_out or palette.shape != (n_out, 3):
            raise ValueError(f"the branch predicts {n_out} classes; got {len(class_names)} names and a palette of "
                             f"shape {list(palette.shape)}")  # fmt: skip
        if reader is not None and reader.config.unet.num_classes != n_out:
            raise ValueError(f"the reader reads {reader.config.unet.num_classes} classes, the branch {n_out}")
        model = EditGAN(self.generator, branch.to(self.device).eval(), self.encoder, class_names, palette,
                        self.model_id, self.path, reader.to(self.device).eval() if reader is not None else None,
                        self.edit_defaults)  # fmt: skip
        model._perceptual, model.tuned = self._perceptual, self.tuned
        return model

    def edit_config(self, **overrides) -> EditConfig:
        """The EditConfig for edits with this model: EditConfig's defaults, then the model's ``edit_defaults``
        (measured for it), then ``overrides``."""
        return EditConfig(**{**self.edit_defaults, **overrides})

    def to(self, device: str | torch.device) -> "EditGAN":
        for m in (self.generator, self.branch, self.encoder, self.reader, self._perceptual):
            if m is not None:
                m.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.generator.w_avg.device

    @property
    def resolution(self) -> int:
        return self.generator.config.resolution

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.generator.n_latent, self.generator.config.style_dim)

    @property
    def perceptual(self) -> PerceptualLoss:
        if self._perceptual is None:
            self._perceptual = PerceptualLoss().to(self.device)
        return self._perceptual

    # -- the API later parts build on ------------------------------------------------------------
    def sample(self, seed: int, truncation: float = 0.7, batch: int = 1) -> torch.Tensor:
        """Deterministic W+ [batch, n_latent, w_dim] for a seed."""
        return self.generator.sample_w_plus(seed, batch, truncation)

    @torch.no_grad()
    def render(self, w_plus: torch.Tensor) -> torch.Tensor:
        """W+ -> image [B, 3, R, R] in [-1, 1]."""
        return self.generator(w_plus.to(self.device)).image.clamp(-1, 1)

    @torch.no_grad()
    def segment(self, w_plus: torch.Tensor) -> torch.Tensor:
        """W+ -> class ids [B, R, R] from the segmentation branch."""
        if self.branch is None:
            raise ValueError(f"model {self.model_id} has no segmentation branch")
        feats = self.generator.synthesis(w_plus.to(self.device)).features
        return self.branch(feats).argmax(1)

    @torch.no_grad()
    def subject_share(self, images: torch.Tensor) -> Optional[torch.Tensor]:
        """The share of each image's pixels the image reader reads as the subject's own parts, [B] (None without a
        reader). The parts: every class but the first (the background), and on a face model
        (:data:`core.mask_transfer.FACE_FRAME_EXCLUDED` among its classes) but the hair and neck around the face."""
        if self.reader is None:
            return None
        frame = FACE_FRAME_EXCLUDED if all(c in self.class_names for c in FACE_FRAME_EXCLUDED) else ()
        parts = torch.tensor([i > 0 and n not in frame for i, n in enumerate(self.class_names)], device=self.device)
        read = self.reader(images.to(self.device)).argmax(1)
        return parts[read].float().mean((1, 2)).cpu()

    def unlike_its_samples(self, image: torch.Tensor) -> str:
        """A warning when a photo ([1, 3, R, R] in [-1, 1], as :meth:`embed` prepares it: ``EmbedResult.target``)
        holds far less of the subject than the model's own samples, "" otherwise (and without a reader). The bar is
        half the least share among 16 samples (:meth:`subject_share`; faces64: 0.176, so the bar is 0.088): 200 of
        its held-out photos read 0.145 and more; a flat colour, a gradient and an empty PNG 0.00, noise 0.02;
        black and white stripes 0.005-0.122 (8 of 9 widths flagged). Such a photo embeds as some face the generator
        draws, which the user should know before editing it."""
        share = self.subject_share(image)
        if share is None:
            return ""
        if self._sample_share is None:
            self._sample_share = float(self.subject_share(self.render(self.sample(0, batch=16))).min())
        if float(share[0]) >= 0.5 * self._sample_share:
            return ""
        return (f"This image does not look like the faces this model draws: its image reader finds "
                f"{float(share[0]):.0%} of it to be {'face' if 'skin' in self.class_names else 'subject'} parts, "
                f"against at least {self._sample_share:.0%} on the model's own samples. The embedding is the nearest "
                "image the generator can draw, and edits act on that.")

    def embed(self, image: ImageLike, config: EmbedConfig = EmbedConfig(), callback=None) -> EmbedResult:
        return embed(self.generator, self._encoder_for_embedding(), image, config, self.perceptual, callback,
                     **self._embedding_guides())  # fmt: skip

    def embed_tensor(self, target: torch.Tensor, config: EmbedConfig = EmbedConfig(), callback=None) -> EmbedResult:
        """As :meth:`embed` for an image already preprocessed: [1, 3, R, R] in [-1, 1] (no crop box)."""
        return embed_tensor(self.generator, self._encoder_for_embedding(), target.to(self.device), config,
                            self.perceptual, callback=callback, **self._embedding_guides())  # fmt: skip

    def tune(self, image: ImageLike | torch.Tensor, w_plus: torch.Tensor, config: EmbedConfig = EmbedConfig(tune_steps=200),
             callback=None) -> EmbedResult:
        """Pivotal tuning alone: the generator tuned to ``image`` at the latent ``w_plus`` (``config.tune_steps``).

        For a photo already embedded (``EmbedResult.w_plus``): tune it again, or
        several ways, without embedding it again. ``image`` is anything
        :meth:`embed` accepts, or a preprocessed [1, 3, R, R] tensor in [-1, 1];
        ``config.steps`` is ignored (the latent stays ``w_plus``). Returns an
        EmbedResult whose ``tuning`` goes to :meth:`with_tuning`.
        """
        if config.tune_steps <= 0:
            raise ValueError("tune needs config.tune_steps > 0")
        if self.tuned:
            raise ValueError("this bundle is already tuned to a photo; tune the original bundle")
        config = replace(config, steps=0)
        if isinstance(image, torch.Tensor):
            return embed_tensor(self.generator, self.encoder, image.to(self.device), config, self.perceptual,
                                callback=callback, start=w_plus, **self._embedding_guides())  # fmt: skip
        return embed(self.generator, self.encoder, image, config, self.perceptual, callback, start=w_plus,
                     **self._embedding_guides())  # fmt: skip

    def with_tuning(self, tuning: Tuning) -> "EditGAN":
        """This bundle with a pivotal tuning (``EmbedResult.tuning``) added to a copy of its generator.

        The branch, encoder, reader and model id are shared: vectors made for the
        model apply to the tuned one, and vectors made on it apply to the model.
        """
        if self.tuned:
            raise ValueError("this bundle is already tuned to a photo; tune the original bundle")
        model = EditGAN(tuned_generator(self.generator, tuning), self.branch, self.encoder, self.class_names,
                        self.palette, self.model_id, self.path, self.reader, self.edit_defaults)  # fmt: skip
        model._perceptual, model.tuned = self._perceptual, True
        return model

    def _encoder_for_embedding(self) -> Encoder:
        if self.encoder is None:
            raise ValueError(f"model {self.model_id} has no encoder; it cannot embed images")
        return self.encoder

    def _embedding_guides(self) -> dict:
        """What the bundle lends an embedding: the branch's parts weigh the L2 term (EmbedConfig.part_balance),
        the image reader's reading of the photo joins the loss (EmbedConfig.w_reader) and, with the branch, the
        tuning's branch term (EmbedConfig.tune_w_branch)."""
        return {"segment": self.segment if self.branch is not None else None, "reader": self.reader,
                "branch": self.branch}
