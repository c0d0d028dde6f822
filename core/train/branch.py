"""Training the segmentation branch from a handful of labelled images (DatasetGAN-style).

1. The labelled images (16 by default: procedural faces with their masks) are
   embedded into W+ with the encoder + optimisation (core.embed). Their masks
   are known, so the embedding's L2 term is weighted towards the small parts
   (weight ~ class frequency ** -embed_class_balance): unweighted, a 64 px
   reconstruction keeps the layout but drops or shifts eyes and brows, and the
   branch then learns those classes from labels laid over the wrong pixels.
   The teachers of step 3 are trained first, and their reading of each
   reconstruction must match its known mask too (core.embed's image-reader
   term, ``embed_reader_weight``).
2. Pixels the reconstruction still gets wrong (mean absolute colour error above
   ``max_recon_error``) are not trusted: their label may belong to a part the
   reconstruction moved, so they are never sampled.
3. Small U-Nets (core.segmenter, ``teacher_ensemble`` of them, trained with
   mirroring and random similarity transforms) learn the same labelled images
   and label ``teacher_samples`` GAN samples by their averaged probabilities
   (each sample read as it is and mirrored); pixels they are unsure of are
   skipped. Those labels sit on the generator's own pixels, which the embedded
   images' labels do not, and no label is added.
4. Each step takes a few of those latents, runs the frozen generator to get its
   feature maps (or reads them from a small cache of *native-resolution* maps
   when they fit the budget), samples pixels -- class-balanced, so eyes and
   brows are not drowned by background -- and trains every ensemble member with
   cross-entropy on the features at its own pixel sample. The targets are the
   teachers' probabilities (``teacher_soft``), not their argmax: a pixel the
   teachers split between lips and teeth teaches that, and the branch learns
   more from the same samples.

What each step gave on faces64: docs/results.md, segmentation branch.

The teachers are shipped as the bundle's image reader (``reader.safetensors``);
with ``reader_samples`` > 0 the reader is instead trained after the branch, on
the labelled images beside GAN samples the branch labelled (DatasetGAN's
synthetic data set; see :func:`train_reader`).

Nothing of size [pixels, channels] is ever kept for the whole training set,
which is what makes the original recipe need 76-160 GB.

    python -m core.train.branch --model checkpoints/faces64 --min-map-resolution 32 --export
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from core.branch import BranchConfig, SegmentationBranch, sample_features
from core.checkpoint import compact_state_dict
from core.config import ConfigMixin
from core.data.faces import ProceduralFaces
from core.data.palette import CLASS_NAMES, NUM_CLASSES
from core.embed import EmbedConfig, class_weight_map, embed_tensor, inverse_frequency
from core.encoder import Encoder
from core.generator import Generator
from core.perceptual import PerceptualLoss
from core.segmenter import ImageReader, UNetSegmenter, mirror_labels, train_few_shot

BRANCH_FILE = "branch.safetensors"
READER_FILE = "reader.safetensors"
LABELLED_SEED = 4242  # procedural stream the labelled images come from


@dataclass(frozen=True)
class BranchTrainConfig(ConfigMixin):
    n_images: int = 16
    ensemble: int = 5
    hidden: tuple[int, ...] = (128, 32)
    layers: Optional[tuple[int, ...]] = None  # generator feature maps the branch reads; None = all
    min_map_resolution: int = 0  # or: read only maps at least this many pixels wide (0 = all); not with layers
    # with hard labels 1,200 steps were no better than 600; with the teachers' soft targets they are
    steps: int = 1200
    images_per_step: int = 4
    pixels_per_image: int = 1024
    lr: float = 1e-3
    class_balance: float = 0.5  # pixel sampling weight ~ class frequency ** -class_balance
    cache_budget_mb: int = 512  # keep native-resolution feature maps if they fit; else recompute
    # fewer steps since the soft teacher made the embedded images' share of the labels small and the reader
    # term below guides them (docs/results.md, segmentation branch)
    embed_steps: int = 150
    embed_lr: float = 0.1
    embed_class_balance: float = 0.5  # L2 weight ~ class frequency ** -this when embedding labelled images; 0 = plain L2
    # the teachers (trained first) must read each labelled image's reconstruction as its known mask
    # (core.embed's reader term, this weight; 0 = off): the labels then sit on what the generator drew
    embed_reader_weight: float = 0.3
    max_recon_error: float = 0.15  # skip pixels whose reconstruction is off by more (mean |diff| in [-1, 1]); <= 0 keeps all
    # GAN samples labelled by a U-Net trained on the same labelled images (0 = none): their labels sit on
    # the generator's own pixels
    teacher_samples: int = 128
    teacher_steps: int = 1500
    # U-Nets (seeds seed, seed + 1, ...) whose probabilities are averaged: two read GAN samples better than one
    teacher_ensemble: int = 2
    teacher_affine: float = 0.1  # strength of the teacher's random similarity augmentation (0 = mirroring only)
    teacher_min_confidence: float = 0.5  # skip pixels where the teacher's top class has less probability
    # the teachers also read each sample mirrored (left/right classes swapped back) and average
    teacher_flip: bool = True
    # train on the teachers' averaged probabilities rather than their argmax (a pixel split between classes says so)
    teacher_soft: bool = True
    teacher_seed: int = 555  # the latent stream the samples come from
    # the image reader (reader.safetensors, which embeddings and mask edits read the pixels with) is the teachers
    # (reader_samples = 0), or U-Nets like them (teacher_ensemble, teacher_steps, teacher_affine) trained on the
    # labelled images, each repeated reader_real_repeat times, beside reader_samples GAN samples labelled by the
    # trained branch: DatasetGAN's synthetic data set, no label added. Not the default: on real photos, which
    # embeddings read, it reads no better than the teachers (docs/results.md, segmentation branch)
    reader_samples: int = 0
    reader_real_repeat: int = 16
    reader_seed: int = 777  # the latent stream of the reader's GAN samples
    seed: int = 0

def recorded_config(model_dir: str | Path) -> BranchTrainConfig:
    """The BranchTrainConfig a bundle's branch was trained with (config.json ``branch_training``)."""
    recorded = json.loads((Path(model_dir) / "config.json").read_text()).get("branch_training")
    if not recorded:
        raise ValueError(f"{model_dir} has no trained branch (config.json has no branch_training)")
    names = {f.name for f in dataclasses.fields(BranchTrainConfig)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in names}
    return BranchTrainConfig(**kw)


def labelled_set(resolution: int, n: int, seed: int = LABELLED_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """The n labelled images ([n, 3, R, R] in [-1, 1]) and masks ([n, R, R])."""
    return ProceduralFaces(resolution, seed).batch(0, n)


def embed_labelled(
    generator: Generator,
    encoder: Encoder,
    images: torch.Tensor,  # [N, 3, R, R]
    masks: torch.Tensor,  # [N, R, R]
    config: BranchTrainConfig = BranchTrainConfig(),
    perceptual: Optional[PerceptualLoss] = None,
    progress: bool = True,
    reader: Optional[ImageReader] = None,  # the teachers: their reading of each reconstruction must match its mask
) -> torch.Tensor:
    """W+ [N, n_latent, w_dim] of the labelled images, the L2 term weighted towards their small parts."""
    perceptual = perceptual or PerceptualLoss()
    cfg = EmbedConfig(steps=config.embed_steps, lr=config.embed_lr, part_balance=config.embed_class_balance,
                      w_reader=config.embed_reader_weight)  # fmt: skip
    out = []
    for i in tqdm(range(len(images)), desc="embed labelled", disable=not progress):
        weight = class_weight_map(masks[i], config.embed_class_balance) if config.embed_class_balance > 0 else None
        out.append(embed_tensor(generator, encoder, images[i : i + 1], cfg, perceptual, pixel_weight=weight,
                                reader=reader, target_mask=masks[i]).w_plus)  # fmt: skip
    return torch.cat(out)


def train_teachers(
    images: torch.Tensor,  # [N, 3, R, R] the labelled images
    masks: torch.Tensor,  # [N, R, R] their masks
    config: BranchTrainConfig,
    num_classes: int = NUM_CLASSES,
    class_names: Sequence[str] = CLASS_NAMES,
) -> list[UNetSegmenter]:
    """``config.teacher_ensemble`` augmented U-Nets (seeds seed, seed+1, ...) on the labelled images."""
    if config.teacher_ensemble < 1:
        raise ValueError(f"teacher_ensemble must be at least 1, got {config.teacher_ensemble}")
    return [train_few_shot(images, masks, steps=config.teacher_steps, seed=config.seed + k, num_classes=num_classes,
                           class_names=class_names, affine=config.teacher_affine)
            for k in range(config.teacher_ensemble)]  # fmt: skip


def teacher_labelled_samples(
    generator: Generator,
    images: torch.Tensor,  # [N, 3, R, R] the labelled images
    masks: torch.Tensor,  # [N, R, R] their masks
    config: BranchTrainConfig,
    num_classes: int = NUM_CLASSES,
    class_names: Sequence[str] = CLASS_NAMES,
    teachers: Optional[Sequence[UNetSegmenter]] = None,  # trained here when not given
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``config.teacher_samples`` GAN samples labelled by U-Nets trained on the labelled images.

    Returns (W+ latents, class ids, confident-pixel mask, class probabilities
    [S, K, R, R] in float16). The U-Net sees only the labelled images, so no
    label is added; what is gained is alignment.
    """
    teachers = teachers or train_teachers(images, masks, config, num_classes, class_names)
    latents = generator.sample_w_plus(config.teacher_seed, config.teacher_samples, 1.0)
    swap = mirror_labels(torch.arange(num_classes, device=images.device), class_names)
    probs = []
    with torch.no_grad():
        for i in range(0, len(latents), 16):
            x = generator(latents[i : i + 16]).image.clamp(-1, 1).to(images.device)
            prob = torch.stack([t(x).softmax(1) for t in teachers]).mean(0)
            if config.teacher_flip:  # channel k of the mirrored reading is class swap[k] of the image
                mirrored = torch.stack([t(x.flip(-1)).softmax(1) for t in teachers]).mean(0).flip(-1)
                prob = (prob + mirrored[:, swap]) / 2
            probs.append(prob.to(latents.device))
    prob = torch.cat(probs)
    return latents, prob.argmax(1), prob.amax(1) > config.teacher_min_confidence, prob.half()


@torch.no_grad()
def branch_labelled_samples(generator: Generator, branch: SegmentationBranch, n: int, seed: int,
                            batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """n GAN samples (latent stream ``seed``, no truncation) and the branch's reading of them: ([n, 3, R, R], [n, R, R])."""
    latents = generator.sample_w_plus(seed, n, 1.0)
    images, masks = [], []
    for i in range(0, n, batch):
        out = generator.synthesis(latents[i : i + batch])
        images.append(out.image.clamp(-1, 1))
        masks.append(branch(out.features).argmax(1))
    return torch.cat(images), torch.cat(masks)


def train_reader(
    generator: Generator,
    branch: Optional[SegmentationBranch],
    images: torch.Tensor,  # [N, 3, R, R] the labelled images
    masks: torch.Tensor,  # [N, R, R] their masks
    config: BranchTrainConfig,
    num_classes: int = NUM_CLASSES,
    class_names: Sequence[str] = CLASS_NAMES,
) -> list[UNetSegmenter]:
    """The image reader's U-Nets: the labelled images (repeated) beside GAN samples the branch labelled.

    With ``config.reader_samples = 0`` they are the teachers (:func:`train_teachers`). Otherwise ``branch``
    is required: it is what labels the samples.
    """
    if config.reader_samples < 0 or config.reader_real_repeat < 1:
        raise ValueError(f"reader_samples >= 0 and reader_real_repeat >= 1 are required, got "
                         f"{config.reader_samples} and {config.reader_real_repeat}")  # fmt: skip
    if config.reader_samples == 0:
        return train_teachers(images, masks, config, num_classes, class_names)
    if branch is None:
        raise ValueError(f"a reader trained on {config.reader_samples} branch-labelled GAN samples needs a trained "
                         "branch: train the branch first, or set reader_samples to 0 (the reader is then the teachers)")
    synth_x, synth_y = branch_labelled_samples(generator, branch, config.reader_samples, config.reader_seed)
    r = config.reader_real_repeat
    x = torch.cat([images.repeat(r, 1, 1, 1), synth_x.to(images.device)])
    y = torch.cat([masks.long().repeat(r, 1, 1), synth_y.to(images.device)])
    return train_teachers(x, y, config, num_classes, class_names)  # trained like the teachers, on more images


def one_hot_targets(masks: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """[N, R, R] class ids -> [N, K, R, R] float16 target probabilities (soft targets of known labels)."""
    return F.one_hot(masks.long(), num_classes).permute(0, 3, 1, 2).half()


@torch.no_grad()
def trusted_pixels(generator: Generator, latents: torch.Tensor, images: torch.Tensor, max_error: float) -> torch.Tensor:
    """[N, R, R] bool: pixels where the reconstruction G(w) matches the labelled image within max_error."""
    if max_error <= 0:
        return torch.ones(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
    rec = torch.cat([generator(latents[i : i + 1]).image for i in range(len(latents))]).clamp(-1, 1)
    return (rec - images).abs().mean(1) < max_error


def _sample_pixels(
    mask: torch.Tensor, n: int, balance: float, gen: torch.Generator, valid: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates drawn with weight ~ freq(class) ** -balance, only where ``valid``. mask [R, R] -> (ys, xs) [n]."""
    flat = mask.flatten()
    keep = None if valid is None else valid.flatten()
    weights = inverse_frequency(flat, balance, keep)
    if keep is not None:
        weights = weights * keep
    idx = torch.multinomial(weights, n, replacement=True, generator=gen)
    r = mask.shape[-1]
    return idx // r, idx % r


def branch_layers(generator: Generator, config: BranchTrainConfig) -> Optional[tuple[int, ...]]:
    """The feature maps a branch trained with ``config`` reads (None = all)."""
    if config.layers is not None and config.min_map_resolution:
        raise ValueError("set layers or min_map_resolution, not both")
    if not config.min_map_resolution:
        return config.layers
    picked = tuple(i for i, r in enumerate(generator.feature_resolutions) if r >= config.min_map_resolution)
    if not picked:
        raise ValueError(f"no feature map is {config.min_map_resolution} px or larger "
                         f"(the generator's are {sorted(set(generator.feature_resolutions))})")  # fmt: skip
    return picked


def train_branch(
    generator: Generator,
    latents: torch.Tensor,  # [N, n_latent, w_dim]
    masks: torch.Tensor,  # [N, R, R] class ids
    config: BranchTrainConfig = BranchTrainConfig(),
    progress: bool = True,
    num_classes: int = NUM_CLASSES,
    valid: Optional[torch.Tensor] = None,  # [N, R, R] bool: pixels whose label may be trusted
    soft: Optional[torch.Tensor] = None,  # [N, K, R, R] target probabilities; None = the masks' one-hot labels
) -> tuple[SegmentationBranch, dict[str, Any]]:
    g = generator.eval().requires_grad_(False)
    device = latents.device
    res = g.config.resolution
    if masks.shape != (latents.shape[0], res, res):
        raise ValueError(f"masks must be [{latents.shape[0]}, {res}, {res}], got {list(masks.shape)}")
    if masks.numel() and (masks.min() < 0 or masks.max() >= num_classes):
        raise ValueError(f"masks hold class ids outside [0, {num_classes - 1}]")
    if valid is not None:
        if valid.shape != masks.shape:
            raise ValueError(f"valid must be {list(masks.shape)} like masks, got {list(valid.shape)}")
        empty = [i for i in range(len(valid)) if not valid[i].any()]
        if empty:
            raise ValueError(f"labelled images {empty} have no trusted pixel; loosen max_recon_error or re-embed them")
    if soft is not None and soft.shape != (masks.shape[0], num_classes, res, res):
        raise ValueError(f"soft targets must be [{masks.shape[0]}, {num_classes}, {res}, {res}], got {list(soft.shape)}")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    bcfg = BranchConfig(feature_channels=tuple(g.feature_channels), resolution=res, num_classes=num_classes,
                        hidden=config.hidden, ensemble=config.ensemble, layers=branch_layers(g, config))  # fmt: skip
    branch = SegmentationBranch(bcfg).to(device).train()
    opt = torch.optim.Adam(branch.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    per_image_mb = sum(c * r * r for c, r in zip(g.feature_channels, g.feature_resolutions)) * 4 / 2**20
    cache = None
    if per_image_mb * len(latents) <= config.cache_budget_mb:
        with torch.no_grad():
            cache = [torch.cat(x) for x in zip(*(g.synthesis(latents[i : i + 1]).features for i in range(len(latents))))]
    # pixel sampling draws from a CPU generator (reproducible on any device); labels go to the device per step
    masks_cpu = masks.cpu()
    valid_cpu = None if valid is None else valid.cpu()
    soft_cpu = None if soft is None else soft.cpu()
    t0 = time.time()
    losses = []
    bar = tqdm(range(config.steps), desc="branch", disable=not progress)
    for _ in bar:
        pick_cpu = torch.randperm(len(latents), generator=gen)[: config.images_per_step]
        pick = pick_cpu.to(device)
        if cache is not None:
            feats = [f[pick] for f in cache]
        else:
            with torch.no_grad():
                feats = g.synthesis(latents[pick]).features
        total = 0.0
        for member in branch.members:
            bi, ys, xs = [], [], []
            for j, k in enumerate(pick_cpu.tolist()):
                y, x = _sample_pixels(masks_cpu[k], config.pixels_per_image, config.class_balance, gen,
                                      None if valid_cpu is None else valid_cpu[k])  # fmt: skip
                bi.append(torch.full_like(y, j))
                ys.append(y)
                xs.append(x)
            bi, ys, xs = (torch.cat(t) for t in (bi, ys, xs))
            rows = pick_cpu[bi]  # each sampled pixel's image, indexed without copying the picked images first
            if soft is None:
                labels = masks_cpu[rows, ys, xs].long().to(device)
            else:
                labels = soft_cpu[rows, :, ys, xs].float().to(device)
            bi, ys, xs = bi.to(device), ys.to(device), xs.to(device)
            logits = member(sample_features(branch.select(feats), bi, ys, xs, res))
            total = total + F.cross_entropy(logits, labels)
        loss = total / len(branch.members)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    branch.eval()
    stats = {
        "train_seconds": round(time.time() - t0, 1),
        "feature_cache": cache is not None,
        "feature_cache_mb": round(per_image_mb * len(latents), 1) if cache is not None else 0.0,
        "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "labelled_images": int(len(latents)),
    }
    return branch, stats


@torch.no_grad()
def segment(generator: Generator, branch: SegmentationBranch, w_plus: torch.Tensor) -> torch.Tensor:
    """W+ [B, n_latent, w_dim] -> class ids [B, R, R]."""
    return branch(generator.synthesis(w_plus).features).argmax(1)


def _export_part(module: torch.nn.Module, model_dir: str | Path, name: str, file: str, config: dict[str, Any],
                 training: dict[str, Any]) -> None:  # fmt: skip
    """Write ``module`` (float16) into a model folder, and its config and training record into config.json."""
    model_dir = Path(model_dir)
    save_file(compact_state_dict(module), str(model_dir / file))
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg[name] = config
    cfg[f"{name}_training"] = training
    cfg["classes"] = list(CLASS_NAMES)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def export_branch(branch: SegmentationBranch, model_dir: str | Path, training: dict[str, Any]) -> None:
    _export_part(branch, model_dir, "branch", BRANCH_FILE, branch.config.to_dict(), training)


def export_reader(teachers: Sequence[UNetSegmenter], model_dir: str | Path, training: dict[str, Any]) -> ImageReader:
    """Write the teachers as the bundle's image reader (reader.safetensors + config.json "reader")."""
    reader = ImageReader.from_members(teachers)
    _export_part(reader, model_dir, "reader", READER_FILE, reader.config.to_dict(), training)
    return reader


def _int_tuple(text: str) -> tuple[int, ...]:
    """'128,32' -> (128, 32) for the --hidden and --layers options."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _bool(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no) for the boolean options: argparse's bool() would read 'False' as True."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def main(argv: Optional[list[str]] = None) -> None:
    from core.editgan import EditGAN

    ap = argparse.ArgumentParser(description="Train the segmentation branch from a few labelled images.")
    ap.add_argument("--model", required=True, help="model folder with generator + encoder")
    ap.add_argument("--export", action="store_true", help="write branch.safetensors and the image reader "
                    "(reader.safetensors) into --model")
    ap.add_argument("--reader-only", action="store_true", help="train only the image reader (which embeddings and mask "
                    "edits read the pixels with), beside the bundle's branch; not the branch")  # fmt: skip
    ap.add_argument("--threads", type=int)
    for f in dataclasses.fields(BranchTrainConfig):
        kind = _int_tuple if f.name in ("hidden", "layers") else _bool if isinstance(f.default, bool) else type(f.default)
        ap.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(BranchTrainConfig)
            if getattr(args, f.name) is not None}  # fmt: skip
    cfg = BranchTrainConfig(**over)
    model = EditGAN.load(args.model, require=() if args.reader_only else ("encoder",))
    images, masks = labelled_set(model.resolution, cfg.n_images)
    labelled = (images, masks)  # masks grows by the teachers' samples below; the reader learns these

    def reader_record(members: Sequence[UNetSegmenter], seconds: float) -> dict[str, Any]:
        return {"labelled_images": cfg.n_images, "labelled_seed": LABELLED_SEED, "steps": cfg.teacher_steps,
                "affine": cfg.teacher_affine, "seed": cfg.seed, "members": len(members),
                "branch_labelled_samples": cfg.reader_samples, "labelled_image_repeat": cfg.reader_real_repeat,
                "sample_seed": cfg.reader_seed, "seconds": round(seconds, 1)}  # fmt: skip

    if args.reader_only:  # beside the bundle's branch
        t = time.time()
        members = train_reader(model.generator, model.branch, *labelled, cfg)
        record = reader_record(members, time.time() - t)
        print(json.dumps(record, indent=2))
        if args.export:
            export_reader(members, args.model, record)
        return
    t0 = time.time()
    teachers = train_teachers(images, masks, cfg)
    teacher_train_s = time.time() - t0
    t_embed = time.time()
    latents = embed_labelled(model.generator, model.encoder, images, masks, cfg, model.perceptual,
                             reader=ImageReader.from_members(teachers))  # fmt: skip
    embed_s = time.time() - t_embed
    valid = trusted_pixels(model.generator, latents, images, cfg.max_recon_error)
    trusted = round(valid.float().mean().item(), 4)
    teacher_s, confident, soft = 0.0, None, None
    if cfg.teacher_samples > 0:
        t1 = time.time()
        t_lat, t_masks, t_valid, t_prob = teacher_labelled_samples(model.generator, images, masks, cfg, teachers=teachers)
        if cfg.teacher_soft:
            soft = torch.cat([one_hot_targets(masks), t_prob])
        latents, masks, valid = torch.cat([latents, t_lat]), torch.cat([masks, t_masks]), torch.cat([valid, t_valid])
        teacher_s, confident = round(teacher_train_s + time.time() - t1, 1), round(t_valid.float().mean().item(), 4)
    branch, stats = train_branch(model.generator, latents, masks, cfg, valid=valid, soft=soft)
    stats["trusted_pixel_fraction"] = trusted
    stats["teacher_seconds"], stats["teacher_confident_pixel_fraction"] = teacher_s, confident
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    stats = {**cfg.to_dict(), **stats, "embed_seconds": round(embed_s, 1), "labelled_seed": LABELLED_SEED,
             "total_seconds": round(time.time() - t0, 1), "peak_rss_mb": round(peak_mb, 1),
             "torch_threads": torch.get_num_threads(), "perceptual_backend": model.perceptual.backend,
             "generator_model_id": model.model_id}  # fmt: skip
    members, reader_s = teachers, teacher_train_s  # the reader is the teachers, or comes after the branch's clock
    if cfg.reader_samples > 0:
        t = time.time()
        members = train_reader(model.generator, branch, *labelled, cfg)
        reader_s = time.time() - t
    record = reader_record(members, reader_s)
    print(json.dumps({"branch": stats, "reader": record}, indent=2))
    if args.export:
        export_branch(branch, args.model, stats)
        export_reader(members, args.model, record)


if __name__ == "__main__":
    main()
