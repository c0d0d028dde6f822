"""StyleGAN2 training on the procedural face domain (or any image stream).

Non-saturating logistic loss, lazy R1 on D, style mixing, random noise inputs
(the fixed buffers are for inference), an EMA generator,
optional DiffAugment, resumable checkpoints, a tqdm bar with the losses, and
DistributedDataParallel when started under ``torchrun`` (gloo on CPU, nccl on
CUDA)::

    python -m core.train.gan --out runs/faces64 --resolution 64 --iterations 20000
    torchrun --nproc_per_node 2 -m core.train.gan --out runs/ddp --iterations 100

Everything a run needs to continue is in ``--out``; starting the same command
again resumes where it stopped. ``--export`` also writes a training state into
the model folder, and ``--init-from MODEL_DIR`` continues from it on another
machine (this is how the shipped model is trained across sittings). The state is
*compact* by default (G and D as float16, the step and the log: a few MB, what a
committed checkpoint holds) or, with ``--export-state exact``, everything a run
needs to continue as if it had never stopped: float32 G, D and EMA, both Adam
optimisers' moments and the random generators' states, so that two half
sittings end with the same weights as one whole (what a GPU sitting hands to the
next).

The step keeps its losses on the device and reads them only at log steps: a
per-step ``.item()`` would wait for the accelerator on every step. The training
images are drawn by the torch renderer on the training device, in the loop
(``--data device``, the default on CUDA; a background thread samples the next
batches' parameters meanwhile), or in DataLoader workers on the CPU
(``--data loader``, the default on a CPU); ``benchmarks/bench_train.py`` measures
both against the old numpy path (docs/results_train.md).
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
from core.data.prefetch import Prefetcher
from core.data.render import HostBatch, render_batch
from core.discriminator import Discriminator
from core.generator import Generator, GeneratorConfig
from core.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss

TRAINING_DIR = "training"
# what an exact training state holds besides state.json and log.jsonl (see GANTrainer.export)
EXACT_FILES = ("g.safetensors", "d.safetensors", "g_ema.safetensors", "g_opt.safetensors", "d_opt.safetensors",
               "rng.safetensors")  # fmt: skip
RNG_KEYS = ("train_rng", "torch_cpu", "torch_cuda")


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
    # where the training images are drawn: "device" (the torch renderer on the training device in the loop, no
    # loader), "loader" (the same renderer in num_workers DataLoader processes, overlapping the step) or "auto":
    # device on CUDA, loader on a CPU, where rendering in the loop would not overlap (docs/results_train.md)
    data: str = "auto"
    # the device path's host share (face parameters, noise grids) in this many processes; 0 = one thread. One
    # thread samples about 2,700 faces/s on this CPU (docs/results_train.md): a GPU past that pace needs more
    host_workers: int = 0


DATA_PATHS = ("auto", "device", "loader")


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


def _grain_seed(seed: int, g: int) -> int:
    return int(np.random.SeedSequence([seed, g]).generate_state(1)[0])


class HostBatches(IterableDataset):
    """The device path's host share in DataLoader worker processes: (HostBatch, grain seed) for batch k = start,
    start + 1, ...; worker w of n makes k = start + w, start + w + n, ..., and the loader takes the workers in
    turn, so the stream is in k order, the same as one thread makes it."""

    def __init__(self, resolution: int, seed: int, batch_size: int, start_batch: int, rank: int, world: int):
        self.faces = ProceduralFaces(resolution, seed)
        self.seed, self.batch_size, self.start_batch, self.rank, self.world = seed, batch_size, start_batch, rank, world

    def __iter__(self) -> Iterator[tuple[HostBatch, int]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        k = self.start_batch + wid
        while True:
            g = k * self.world + self.rank
            yield self.faces.host_batch(g * self.batch_size, self.batch_size), _grain_seed(self.seed, g)
            k += nw


def device_batches(resolution: int, seed: int, batch_size: int, start_batch: int, rank: int, world: int,
                   device: torch.device, prefetch: int = 2, host_workers: int = 0) -> Iterator[torch.Tensor]:  # fmt: skip
    """Batches [batch_size, 3, H, W] drawn on ``device``, the same faces as :class:`FaceBatches` (the film grain
    drawn there too, from a generator seeded by the batch's index, so a resumed run draws the same batches).

    The host's share (each face's parameters and noise grids, the grain's seed: numpy, in Python) is done ahead
    while the device draws and trains on the current batch: with ``host_workers`` > 0 by that many processes
    (:class:`HostBatches`, ``prefetch`` batches ahead each), for a device faster than one core can feed; else by
    one background thread ``prefetch`` batches ahead; ``prefetch`` 0 (and no workers) does it in the loop. The
    batches are the same every way (docs/results_train.md: what the loop waits for, with and without)."""
    if host_workers < 0 or prefetch < 0:
        raise ValueError(f"host_workers and prefetch must be >= 0, got {host_workers} and {prefetch}")
    faces = ProceduralFaces(resolution, seed)
    device = torch.device(device)
    pin = device.type == "cuda"

    def host() -> Iterator[tuple[HostBatch, int]]:
        k = start_batch
        while True:
            g = k * world + rank
            yield faces.host_batch(g * batch_size, batch_size, pin=pin), _grain_seed(seed, g)
            k += 1

    if host_workers:
        ds = HostBatches(resolution, seed, batch_size, start_batch, rank, world)
        loader = DataLoader(ds, batch_size=None, num_workers=host_workers, prefetch_factor=max(prefetch, 1),
                            generator=torch.Generator().manual_seed(seed))  # fmt: skip
        source = iter(loader)
    else:
        source = Prefetcher(host(), prefetch) if prefetch else host()
    try:
        for hb, grain_seed in source:
            grain = torch.Generator(device=device).manual_seed(grain_seed)
            yield render_batch(hb, resolution, device, grain).model_input()[0]
    finally:  # on close() or when dropped: no thread or worker outlives the stream
        if isinstance(source, Prefetcher):
            source.close()
        elif host_workers:
            source._shutdown_workers()


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here (use 'cpu' or 'auto')")
    return device


def _mixed_w_plus(g: Generator, batch: int, prob: float, device, gen: torch.Generator) -> torch.Tensor:
    """Style mixing: with probability ``prob`` two w's split at a random layer."""
    z = torch.randn(2, batch, g.config.style_dim, generator=gen).to(device)
    w1, w2 = g.mapping(z[0]), g.mapping(z[1])
    wp = g.to_w_plus(w1)
    if torch.rand((), generator=gen).item() < prob:
        cut = int(torch.randint(1, g.n_latent, (), generator=gen))
        wp = torch.cat([wp[:, :cut], g.to_w_plus(w2)[:, cut:]], 1)
    return wp


def _optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimiser's state as flat tensors ("<param index>.<name>") and its param groups as JSON-able dicts."""
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
               for i, st in sd["state"].items() for k, v in st.items()}  # fmt: skip
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def _optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list[dict], device) -> dict:
    """The inverse of :func:`_optimizer_to_tensors`: a state dict for ``Optimizer.load_state_dict``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": groups}


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
        if config.data not in DATA_PATHS:
            raise ValueError(f"data must be one of {', '.join(DATA_PATHS)}, got {config.data!r}")
        if config.generator.resolution < 16:
            raise ValueError(f"the face renderer draws at 16 px or more, got resolution {config.generator.resolution}")
        if config.host_workers < 0 or config.num_workers < 0:
            raise ValueError(f"host_workers and num_workers must be >= 0, got {config.host_workers} and "
                             f"{config.num_workers}")  # fmt: skip
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
        self._restore_rng: Optional[dict[str, torch.Tensor]] = None  # set by a resume that kept them
        self._steps_batch = config.batch_size * self.world  # images per step of the steps already done (a guess
        # for logs older than the per-record image count: the batch of the run they came from)
        self._resume()
        if self.state.step == 0 and init_from is not None:
            self._warm_start(Path(init_from))
        if self.world > 1:
            self.g = DDP(self.g, broadcast_buffers=False)
            self.d = DDP(self.d, broadcast_buffers=False)
        self.rng = torch.Generator().manual_seed(config.seed * 1000 + self.rank + 7919 * self.state.step)
        if self._restore_rng is not None and self.world == 1:  # per-rank states are not kept: DDP re-seeds
            self._apply_rng_states(self._restore_rng)

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
        if "train_rng" in opt:  # runs saved before the random states were kept re-seed from the step
            self._restore_rng = {k: opt[k] for k in RNG_KEYS if k in opt}
        if p["log"].exists():
            self.state.log = [json.loads(line) for line in p["log"].read_text().splitlines() if line.strip()]
            self.state.log = [r for r in self.state.log if r["step"] <= self.state.step]

    def _warm_start(self, model_dir: Path) -> None:
        """Continue from a model folder's training state (see export): compact (weights only) or exact."""
        tdir = model_dir / TRAINING_DIR
        state_path = tdir / "state.json"
        if not state_path.exists():
            raise ValueError(f"{model_dir} has no {TRAINING_DIR}/state.json to continue from")
        state = json.loads(state_path.read_text())
        saved = TrainConfig.from_dict(state["train_config"])
        if saved.generator != self.config.generator:
            raise ValueError(f"{model_dir} was trained with another architecture: {saved.generator}")
        exact = state.get("kind") == "exact"
        if exact:
            missing = [n for n in EXACT_FILES if not (tdir / n).exists()]
            if missing:
                raise ValueError(f"{tdir} is an exact training state without {', '.join(missing)}")
        parts = (("g", self.g, tdir / "g.safetensors"),
                 ("d", self.d, tdir / "d.safetensors"),
                 ("g_ema", self.g_ema, tdir / "g_ema.safetensors" if exact else model_dir / "generator.safetensors"))  # fmt: skip
        for _, model, path in parts:
            sd = load_file(str(path), device=str(self.device))
            check_state_dict(model, sd, what=str(path))
            model.load_state_dict(sd)  # float16 files upcast into the float32 modules
        self.state.step = int(state["step"])
        self._steps_batch = saved.batch_size
        if exact:
            for name, opt in (("g_opt", self.g_opt), ("d_opt", self.d_opt)):
                opt.load_state_dict(_optimizer_from_tensors(load_file(str(tdir / f"{name}.safetensors")),
                                                            state[f"{name}_param_groups"], self.device))  # fmt: skip
            self._restore_rng = load_file(str(tdir / "rng.safetensors"))
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
            {"g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(), "step": self.state.step,
             **self._rng_states()},
            str(p["optim"]) + ".tmp",
        )  # fmt: skip
        os.replace(str(p["optim"]) + ".tmp", p["optim"])
        p["config"].write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        p["log"].write_text("".join(json.dumps(r) + "\n" for r in self.state.log))

    def export(self, folder: str | Path, extra: Optional[dict[str, Any]] = None,
               training_state: bool | str = "compact") -> str:  # fmt: skip
        """Write the EMA generator as a model folder (float16 safetensors, see core.checkpoint).

        ``training_state`` "compact" (or True): ``<folder>/training/`` also gets G and D (float16), the step and
        the log, enough for ``--init-from`` to continue in a later sitting; Adam's moments are not kept (they
        would triple a committed checkpoint) and rebuild within a few hundred steps. "exact": float32 G, D and
        EMA, both optimisers' state and the random generators' states too (``EXACT_FILES``; about 7x the
        parameters in float32), so the next sitting continues exactly. "none" (or False): the generator only.
        """
        kind = {True: "compact", False: "none"}.get(training_state, training_state)
        if kind not in ("compact", "exact", "none"):
            raise ValueError(f"training_state must be 'compact', 'exact' or 'none', got {training_state!r}")
        folder = Path(folder)
        rng, w_avg = self._rng_states(), self.g_ema.w_avg.clone()  # as training left them, before the export's work
        self.g_ema.compute_w_avg()
        mid = save_generator(self.g_ema, folder, extra, dtype=torch.float16)
        if kind != "none":
            tdir = folder / TRAINING_DIR
            tdir.mkdir(parents=True, exist_ok=True)
            for old in tdir.glob("*.safetensors"):  # a state of the other kind must not be mixed with this one
                old.unlink()
            state = {"kind": kind, "step": self.state.step, "train_config": self.config.to_dict(),
                     "generator_model_id": mid}  # fmt: skip
            if kind == "compact":
                for name, model in (("g", _unwrap(self.g)), ("d", _unwrap(self.d))):
                    save_file(compact_state_dict(model), str(tdir / f"{name}.safetensors"))
            else:
                g_ema_state = {k: v.detach().cpu().contiguous() for k, v in self.g_ema.state_dict().items()}
                g_ema_state["w_avg"] = w_avg.cpu()  # as training left it (the export recomputes it for the model)
                for name, sd in (("g", _unwrap(self.g).state_dict()), ("d", _unwrap(self.d).state_dict()),
                                 ("g_ema", g_ema_state)):  # fmt: skip
                    save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(tdir / f"{name}.safetensors"))
                for name, opt in (("g_opt", self.g_opt), ("d_opt", self.d_opt)):
                    tensors, groups = _optimizer_to_tensors(opt)
                    save_file(tensors, str(tdir / f"{name}.safetensors"))
                    state[f"{name}_param_groups"] = groups
                save_file(rng, str(tdir / "rng.safetensors"))
            (tdir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
            (tdir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.state.log))
        return mid

    # -- random states (exact continuation) --------------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        """The training generator (mixing, augmentation) and torch's global ones (noise inputs)."""
        out = {"train_rng": self.rng.get_state(), "torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            out["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        return out

    def _apply_rng_states(self, states: dict[str, torch.Tensor]) -> None:
        self.rng.set_state(states["train_rng"])
        torch.set_rng_state(states["torch_cpu"])
        if self.device.type == "cuda" and "torch_cuda" in states:
            torch.cuda.set_rng_state(states["torch_cuda"], self.device)

    # -- training -------------------------------------------------------------------------------
    def _accumulate(self) -> None:
        c = self.config
        beta = 0.5 ** (c.batch_size * self.world / (c.ema_half_life_kimg * 1000))
        with torch.no_grad():
            for pe, p in zip(self.g_ema.parameters(), _unwrap(self.g).parameters()):
                pe.lerp_(p, 1 - beta)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.rng) if self.config.augment else x

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D step (with lazy R1) and one G step. Returns the losses as detached device tensors: reading them
        (``float``) waits for the device, so :meth:`fit` does it at log steps only."""
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
            "d_loss": d_loss.detach(),
            "real_score": real_pred.detach().mean(),
            "fake_score": fake_pred.detach().mean(),
        }
        if self.state.step % c.d_reg_every == 0:
            real.requires_grad_(True)
            reg_pred = d(self._aug(real))
            r1 = d_r1_loss(reg_pred, real)
            self.d_opt.zero_grad(set_to_none=True)
            # the 0 * pred term keeps every D output in the graph (DDP needs all params used)
            (c.r1_gamma / 2 * r1 * c.d_reg_every + 0 * reg_pred[0, 0]).backward()
            self.d_opt.step()
            stats["r1"] = r1.detach()
        # G step
        g.requires_grad_(True)
        d.requires_grad_(False)
        fake = g(_mixed_w_plus(g_core, b, c.mixing_prob, self.device, self.rng), noise_mode="random").image
        g_loss = g_nonsaturating_loss(d(self._aug(fake)))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        stats["g_loss"] = g_loss.detach()
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
        lock = self._lock_run_folder()
        try:
            return self._fit(data, progress, max_seconds)
        finally:
            if lock is not None:
                lock.close()  # closing the file drops its lock

    def _lock_run_folder(self):
        """Hold an exclusive lock on the run folder while training (rank 0), so that a second sitting started
        on the same folder stops at once instead of interleaving its checkpoints with this one's."""
        if self.rank != 0:
            return None
        import fcntl

        self.out.mkdir(parents=True, exist_ok=True)
        f = open(self.out / ".train.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            raise RuntimeError(f"{self.out} is being trained by another process ({holder or 'unknown'}); "
                               "stop it first or train into another --out folder") from None  # fmt: skip
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        return f

    def _fit(self, data: Optional[Iterator[torch.Tensor]], progress: bool, max_seconds: Optional[float]) -> TrainState:
        c = self.config
        path = c.data if c.data != "auto" else ("device" if self.device.type == "cuda" else "loader")
        if data is None and path == "device":
            data = device_batches(c.generator.resolution, c.data_seed, c.batch_size, self.state.step, self.rank,
                                  self.world, self.device, host_workers=c.host_workers)  # fmt: skip
        elif data is None:
            ds = FaceBatches(c.generator.resolution, c.data_seed, c.batch_size,
                             self.state.step, self.rank, self.world)  # fmt: skip
            # its own generator: a loader draws a seed when it starts, which must not move torch's global one
            loader = DataLoader(ds, batch_size=None, num_workers=c.num_workers, persistent_workers=c.num_workers > 0,
                                generator=torch.Generator().manual_seed(c.data_seed))  # fmt: skip
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
                stats = {k: float(v) for k, v in stats.items()}  # the one wait for the device, at log steps
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
    ap.add_argument("--recipe", help="start from this named recipe instead (core/train/recipes.py: faces64, faces128)")
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
    ap.add_argument("--export-state", choices=("compact", "exact", "none"), default="compact",
                    help="the training state --export writes: compact (float16 G and D), exact (everything, to "
                         "continue as if never stopped) or none")  # fmt: skip
    ap.add_argument("--init-from", help="when --out holds no run: continue from this model folder's training state")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--max-minutes", type=float,
                    help="stop (with a checkpoint, and the export) after this much wall time, before --iterations")
    args = ap.parse_args(argv)
    if args.max_minutes is not None and not args.max_minutes > 0:
        ap.error("--max-minutes must be > 0")
    if args.config and args.recipe:
        ap.error("give --config or --recipe, not both")
    if args.recipe:
        from core.train.recipes import RECIPES  # here: the recipes module imports this one

        if args.recipe not in RECIPES:
            ap.error(f"unknown recipe {args.recipe!r}; known: {sorted(RECIPES)}")
        cfg = RECIPES[args.recipe]
    else:
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
        mid = trainer.export(args.export, training_state=args.export_state)
        print(json.dumps({"exported": args.export, "model_id": mid}))
    shutdown_distributed()


if __name__ == "__main__":
    main()
