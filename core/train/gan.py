"""StyleGAN2 training on the procedural face domain (or any image stream).

Non-saturating logistic loss, lazy R1 on D, style mixing, random noise inputs
(the fixed buffers are for inference), an EMA generator,
optional DiffAugment, resumable checkpoints, a tqdm bar with the losses, and
DistributedDataParallel when started under ``torchrun`` (gloo on CPU, nccl on
CUDA)::

    python -m core.train.gan --out runs/faces64 --resolution 64 --iterations 20000
    torchrun --nproc_per_node 2 -m core.train.gan --out runs/ddp --iterations 100

Everything a run needs to continue is in ``--out``; starting the same command
again resumes where it stopped. ``--export`` also writes a compact training
state into the model folder, and ``--init-from MODEL_DIR`` continues from it on
another machine (this is how the shipped model is trained across sittings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from core.augment import diff_augment
from core.checkpoint import check_state_dict, compact_state_dict, save_generator
from core.config import ConfigMixin
from core.data.faces import ProceduralFaces
from core.discriminator import Discriminator
from core.generator import Generator, GeneratorConfig
from core.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss

TRAINING_DIR = "training"


@dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    generator: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(resolution=64))
    iterations: int = 20000
    batch_size: int = 16  # per process
    lr: float = 0.002
    r1_gamma: float = 1.0
    d_reg_every: int = 16
    mixing_prob: float = 0.9
    ema_half_life_kimg: float = 10.0
    augment: bool = False
    data_seed: int = 0
    seed: int = 0
    num_workers: int = 1
    ckpt_every: int = 500
    sample_every: int = 1000
    log_every: int = 25
    device: str = "auto"

class FaceBatches(IterableDataset):
    """Batches of procedural faces; each (rank, worker) renders its own disjoint indices."""

    def __init__(self, resolution: int, seed: int, batch_size: int, start_batch: int, rank: int, world: int):
        self.faces = ProceduralFaces(resolution, seed)
        self.batch_size, self.start_batch, self.rank, self.world = batch_size, start_batch, rank, world

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        k = self.start_batch + wid
        while True:
            g = k * self.world + self.rank
            yield self.faces.batch(g * self.batch_size, self.batch_size)[0]
            k += nw


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _mixed_w_plus(g: Generator, batch: int, prob: float, device, gen: torch.Generator) -> torch.Tensor:
    """Style mixing: with probability ``prob`` two w's split at a random layer."""
    z = torch.randn(2, batch, g.config.style_dim, generator=gen).to(device)
    w1, w2 = g.mapping(z[0]), g.mapping(z[1])
    wp = g.to_w_plus(w1)
    if torch.rand((), generator=gen).item() < prob:
        cut = int(torch.randint(1, g.n_latent, (), generator=gen))
        wp = torch.cat([wp[:, :cut], g.to_w_plus(w2)[:, cut:]], 1)
    return wp


def shutdown_distributed() -> None:
    """Leave the process group cleanly: every rank waits for the others first.

    Without the barrier a rank that finishes early (rank 1 while rank 0 still
    exports) can tear gloo down under a peer and abort the process.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if isinstance(m, DDP) else m


@dataclass
class TrainState:
    step: int
    log: list[dict[str, float]]


class GANTrainer:
    def __init__(self, config: TrainConfig, out_dir: str | Path, init_from: Optional[str | Path] = None):
        self.config = config
        self.out = Path(out_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = _resolve_device(config.device)
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        gc = config.generator
        self.g = Generator(gc).to(self.device)
        self.d = Discriminator(gc).to(self.device)
        self.g_ema = Generator(gc).to(self.device).eval()
        self.g_ema.load_state_dict(self.g.state_dict())
        self.g_ema.requires_grad_(False)
        ratio = config.d_reg_every / (config.d_reg_every + 1)
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=config.lr, betas=(0.0, 0.99))
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=config.lr * ratio, betas=(0.0, 0.99**ratio))
        self.state = TrainState(step=0, log=[])
        self._steps_batch = config.batch_size * self.world  # images per step of the steps already done (a guess
        # for logs older than the per-record image count: the batch of the run they came from)
        self._resume()
        if self.state.step == 0 and init_from is not None:
            self._warm_start(Path(init_from))
        if self.world > 1:
            self.g = DDP(self.g, broadcast_buffers=False)
            self.d = DDP(self.d, broadcast_buffers=False)
        self.rng = torch.Generator().manual_seed(config.seed * 1000 + self.rank + 7919 * self.state.step)

    # -- persistence --------------------------------------------------------------------------------
    def _paths(self) -> dict[str, Path]:
        return {n: self.out / f"{n}.safetensors" for n in ("g", "d", "g_ema")} | {
            "optim": self.out / "optim.pt",
            "config": self.out / "train_config.json",
            "log": self.out / "log.jsonl",
        }

    def _resume(self) -> None:
        p = self._paths()
        if not p["optim"].exists():
            return
        saved = TrainConfig.from_dict(json.loads(p["config"].read_text()))
        if saved.generator != self.config.generator:
            raise ValueError(f"{self.out} holds a run of another architecture: {saved.generator} != {self.config.generator}")
        for name, model in (("g", self.g), ("d", self.d), ("g_ema", self.g_ema)):
            sd = load_file(str(p[name]), device=str(self.device))
            check_state_dict(model, sd, what=str(p[name]))
            model.load_state_dict(sd)
        opt = torch.load(p["optim"], map_location=self.device, weights_only=True)
        self.g_opt.load_state_dict(opt["g_opt"])
        self.d_opt.load_state_dict(opt["d_opt"])
        self.state.step = int(opt["step"])
        self._steps_batch = saved.batch_size * self.world
        if p["log"].exists():
            self.state.log = [json.loads(line) for line in p["log"].read_text().splitlines() if line.strip()]
            self.state.log = [r for r in self.state.log if r["step"] <= self.state.step]

    def _warm_start(self, model_dir: Path) -> None:
        """Continue from a model folder's compact training state (weights only, see export)."""
        state_path = model_dir / TRAINING_DIR / "state.json"
        if not state_path.exists():
            raise ValueError(f"{model_dir} has no {TRAINING_DIR}/state.json to continue from")
        state = json.loads(state_path.read_text())
        saved = TrainConfig.from_dict(state["train_config"])
        if saved.generator != self.config.generator:
            raise ValueError(f"{model_dir} was trained with another architecture: {saved.generator}")
        parts = (("g", self.g, model_dir / TRAINING_DIR / "g.safetensors"),
                 ("d", self.d, model_dir / TRAINING_DIR / "d.safetensors"),
                 ("g_ema", self.g_ema, model_dir / "generator.safetensors"))  # fmt: skip
        for _, model, path in parts:
            sd = load_file(str(path), device=str(self.device))
            check_state_dict(model, sd, what=str(path))
            model.load_state_dict(sd)  # float16 files upcast into the float32 modules
        self.state.step = int(state["step"])
        self._steps_batch = saved.batch_size
        log = model_dir / TRAINING_DIR / "log.jsonl"
        if log.exists():
            self.state.log = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]

    def save(self) -> None:
        if self.rank != 0:
            return
        p = self._paths()
        self.out.mkdir(parents=True, exist_ok=True)
        for name, model in (("g", _unwrap(self.g)), ("d", _unwrap(self.d)), ("g_ema", self.g_ema)):
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(p[name]) + ".tmp")
            os.replace(str(p[name]) + ".tmp", p[name])
        torch.save(
            {"g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(), "step": self.state.step},
            str(p["optim"]) + ".tmp",
        )
        os.replace(str(p["optim"]) + ".tmp", p["optim"])
        p["config"].write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        p["log"].write_text("".join(json.dumps(r) + "\n" for r in self.state.log))

    def export(self, folder: str | Path, extra: Optional[dict[str, Any]] = None, training_state: bool = True) -> str:
        """Write the EMA generator as a model folder (float16 safetensors, see core.checkpoint).

        With ``training_state``, ``<folder>/training/`` also gets G and D (float16), the step and
        the log: enough for ``--init-from`` to continue training in a later sitting. Adam's
        moments are not shipped (they would triple the size); they rebuild within a few hundred steps.
        """
        folder = Path(folder)
        self.g_ema.compute_w_avg()
        mid = save_generator(self.g_ema, folder, extra, dtype=torch.float16)
        if training_state:
            tdir = folder / TRAINING_DIR
            tdir.mkdir(parents=True, exist_ok=True)
            for name, model in (("g", _unwrap(self.g)), ("d", _unwrap(self.d))):
                save_file(compact_state_dict(model), str(tdir / f"{name}.safetensors"))
            state = {"step": self.state.step, "train_config": self.config.to_dict(), "generator_model_id": mid}
            (tdir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
            (tdir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.state.log))
        return mid

    # -- training -------------------------------------------------------------------------------
    def _accumulate(self) -> None:
        c = self.config
        beta = 0.5 ** (c.batch_size * self.world / (c.ema_half_life_kimg * 1000))
        with torch.no_grad():
            for pe, p in zip(self.g_ema.parameters(), _unwrap(self.g).parameters()):
                pe.lerp_(p, 1 - beta)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.rng) if self.config.augment else x

    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        c, g, d = self.config, self.g, self.d
        g_core = _unwrap(g)
        real = real.to(self.device)
        b = real.shape[0]
        # D step
        g.requires_grad_(False)
        d.requires_grad_(True)
        with torch.no_grad():
            fake = g(_mixed_w_plus(g_core, b, c.mixing_prob, self.device, self.rng), noise_mode="random").image
        real_pred, fake_pred = d(self._aug(real)), d(self._aug(fake))
        d_loss = d_logistic_loss(real_pred, fake_pred)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        stats = {
            "d_loss": d_loss.item(),
            "real_score": real_pred.mean().item(),
            "fake_score": fake_pred.mean().item(),
        }
        if self.state.step % c.d_reg_every == 0:
            real.requires_grad_(True)
            reg_pred = d(self._aug(real))
            r1 = d_r1_loss(reg_pred, real)
            self.d_opt.zero_grad(set_to_none=True)
            # the 0 * pred term keeps every D output in the graph (DDP needs all params used)
            (c.r1_gamma / 2 * r1 * c.d_reg_every + 0 * reg_pred[0, 0]).backward()
            self.d_opt.step()
            stats["r1"] = r1.item()
        # G step
        g.requires_grad_(True)
        d.requires_grad_(False)
        fake = g(_mixed_w_plus(g_core, b, c.mixing_prob, self.device, self.rng), noise_mode="random").image
        g_loss = g_nonsaturating_loss(d(self._aug(fake)))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        stats["g_loss"] = g_loss.item()
        self._accumulate()
        return stats

    def samples(self, n: int = 16, seed: int = 123) -> np.ndarray:
        """A grid of EMA samples (uint8 [H, W, 3]) from fixed seeds."""
        with torch.no_grad():
            w = self.g_ema.sample_w_plus(seed, n)
            img = self.g_ema(w.to(self.device)).image.clamp(-1, 1).add(1).mul(127.5).byte().cpu()
        rows = int(math.sqrt(n))
        img = img[: rows * (n // rows)].view(rows, n // rows, 3, *img.shape[-2:])
        return img.permute(0, 3, 1, 4, 2).reshape(rows * img.shape[-2], -1, 3).numpy()

    def fit(self, data: Optional[Iterator[torch.Tensor]] = None, progress: bool = True,
            max_seconds: Optional[float] = None) -> TrainState:  # fmt: skip
        """Train up to ``config.iterations`` steps or, with ``max_seconds``, until that much wall time has passed
        (a sitting on a lent machine); either way the run folder ends with a checkpoint of the last step."""
        c = self.config
        if data is None:
            ds = FaceBatches(c.generator.resolution, c.data_seed, c.batch_size,
                             self.state.step, self.rank, self.world)  # fmt: skip
            loader = DataLoader(ds, batch_size=None, num_workers=c.num_workers,
                                persistent_workers=c.num_workers > 0)  # fmt: skip
            data = iter(loader)
        bar = tqdm(total=c.iterations, initial=self.state.step, disable=not progress or self.rank != 0,
                   dynamic_ncols=True, desc="gan")  # fmt: skip
        t0, done = time.time(), 0
        batch = c.batch_size * self.world  # images per step, all ranks together
        # images seen so far: each log record counts them, since a sitting may change the batch size
        images = next((int(r["images"]) for r in reversed(self.state.log) if "images" in r),
                      self.state.step * self._steps_batch)  # fmt: skip
        while self.state.step < c.iterations:
            stats = self.train_step(next(data))
            self.state.step += 1
            done += 1
            images += batch
            out_of_time = max_seconds is not None and self._agree(time.time() - t0 >= max_seconds)
            if self.state.step % c.log_every == 0 or self.state.step == c.iterations or out_of_time:
                rec = {"step": self.state.step, **{k: round(v, 5) for k, v in stats.items()},
                       "it_s": round(done / (time.time() - t0), 3), "time": round(time.time(), 1),
                       "batch": batch, "images": images}  # fmt: skip
                self.state.log.append(rec)
                bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
            bar.update(1)
            if self.state.step % c.ckpt_every == 0 or self.state.step == c.iterations or out_of_time:
                self.save()
            if self.rank == 0 and c.sample_every and self.state.step % c.sample_every == 0:
                from PIL import Image

                self.out.mkdir(parents=True, exist_ok=True)
                Image.fromarray(self.samples()).save(self.out / f"samples_{self.state.step:07d}.png")
            if out_of_time:
                break
        bar.close()
        return self.state

    def _agree(self, flag: bool) -> bool:
        """``flag`` on any rank -> True on every rank (so that all ranks stop at the same step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def parse_args(argv: Optional[list[str]] = None) -> tuple[TrainConfig, argparse.Namespace]:
    ap = argparse.ArgumentParser(description="Train a StyleGAN2 on procedural faces.")
    ap.add_argument("--out", required=True, help="run folder (resumes if it holds a run)")
    ap.add_argument("--config", help="JSON file with a TrainConfig (other flags override it)")
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--style-dim", type=int)
    ap.add_argument("--n-mlp", type=int)
    ap.add_argument("--channel-base", type=int)
    ap.add_argument("--channel-max", type=int)
    ap.add_argument("--channel-multiplier", type=int)
    for f in dataclasses.fields(TrainConfig):
        if f.name != "generator":
            typ = {"bool": lambda s: s.lower() in ("1", "true", "yes")}.get(str(f.type), None)
            typ = typ or {"int": int, "float": float, "str": str}[str(f.type)]
            ap.add_argument("--" + f.name.replace("_", "-"), type=typ, dest=f.name)
    ap.add_argument("--export", help="after training, write the EMA generator (+ training state) to this model folder")
    ap.add_argument("--init-from", help="when --out holds no run: continue from this model folder's training state")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--max-minutes", type=float,
                    help="stop (with a checkpoint, and the export) after this much wall time, before --iterations")
    args = ap.parse_args(argv)
    if args.max_minutes is not None and not args.max_minutes > 0:
        ap.error("--max-minutes must be > 0")
    base = json.loads(Path(args.config).read_text()) if args.config else {}
    cfg = TrainConfig.from_dict(base) if base else TrainConfig()
    gen_over = {k: getattr(args, a) for k, a in [("resolution", "resolution"), ("style_dim", "style_dim"),
                ("n_mlp", "n_mlp"), ("channel_base", "channel_base"), ("channel_max", "channel_max"),
                ("channel_multiplier", "channel_multiplier")] if getattr(args, a) is not None}  # fmt: skip
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if f.name != "generator" and getattr(args, f.name) is not None}  # fmt: skip
    if gen_over:
        over["generator"] = dataclasses.replace(cfg.generator, **gen_over)
    return dataclasses.replace(cfg, **over), args


def main(argv: Optional[list[str]] = None) -> None:
    cfg, args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = GANTrainer(cfg, args.out, init_from=args.init_from)
    trainer.fit(max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    if args.export and trainer.rank == 0:
        mid = trainer.export(args.export)
        print(json.dumps({"exported": args.export, "model_id": mid}))
    shutdown_distributed()


if __name__ == "__main__":
    main()
