"""Training the image -> W+ encoder against a frozen generator.

Each step mixes two kinds of batch (EditGAN, Sec. 3.3):

* real images (the procedural stream): L2 + perceptual reconstruction loss of G(E(x)) against x;
* GAN samples x = G(w) with known W+ (style-mixed, so all of W+ is covered):
  the same reconstruction loss plus latent regression MSE(E(x), w).

    python -m core.train.encoder --model checkpoints/faces64 --out runs/encoder64 --iterations 3000

Resumable from ``--out``, tqdm progress, DDP under torchrun like the GAN trainer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from core.checkpoint import check_state_dict, compact_state_dict, load_generator
from core.config import ConfigMixin
from core.data.faces import ProceduralFaces
from core.encoder import Encoder, EncoderConfig
from core.generator import Generator
from core.perceptual import PerceptualLoss
from core.train.gan import shutdown_distributed

ENCODER_FILE = "encoder.safetensors"


@dataclass(frozen=True)
class EncoderTrainConfig(ConfigMixin):
    iterations: int = 3000
    batch_size: int = 8  # per kind (real and GAN), per process
    lr: float = 1e-4
    w_l2: float = 1.0
    w_perceptual: float = 0.8
    w_latent: float = 1.0
    mixing_prob: float = 0.9
    base_channels: int = 32
    max_channels: int = 256
    pyramid_channels: int = 128
    data_seed: int = 7
    seed: int = 0
    ckpt_every: int = 250
    log_every: int = 25
    device: str = "auto"

def encoder_config_for(g: Generator, c: EncoderTrainConfig) -> EncoderConfig:
    return EncoderConfig(resolution=g.config.resolution, n_latent=g.n_latent, w_dim=g.config.style_dim,
                         base_channels=c.base_channels, max_channels=c.max_channels,
                         pyramid_channels=c.pyramid_channels)  # fmt: skip


@torch.no_grad()
def random_w_plus(g: Generator, batch: int, mixing_prob: float, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(2, batch, g.config.style_dim, generator=gen).to(g.w_avg.device)
    wp = g.to_w_plus(g.mapping(z[0]))
    mix = torch.rand(batch, generator=gen) < mixing_prob
    cut = torch.randint(1, g.n_latent, (batch,), generator=gen)
    w2 = g.to_w_plus(g.mapping(z[1]))
    layer = torch.arange(g.n_latent)[None, :]
    use2 = (mix[:, None] & (layer >= cut[:, None])).to(wp.device)
    return torch.where(use2[..., None], w2, wp)


class EncoderTrainer:
    def __init__(self, generator: Generator, config: EncoderTrainConfig, out_dir: str | Path,
                 perceptual: Optional[PerceptualLoss] = None):  # fmt: skip
        self.config, self.out = config, Path(out_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        dev = config.device
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if dev == "auto" else dev)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        torch.manual_seed(config.seed)
        self.g = generator.to(self.device).eval().requires_grad_(False)
        self.encoder = Encoder(encoder_config_for(generator, config)).to(self.device)
        self.encoder.w_avg.copy_(self.g.w_avg)
        self.opt = torch.optim.Adam(self.encoder.parameters(), lr=config.lr)
        self.perceptual = (perceptual or PerceptualLoss()).to(self.device)
        self.step, self.log = 0, []
        self._resume()
        self.model = DDP(self.encoder) if self.world > 1 else self.encoder
        self.faces = ProceduralFaces(generator.config.resolution, config.data_seed)
        self.gen = torch.Generator().manual_seed(config.seed * 7 + self.rank + 104729 * self.step)

    def _resume(self) -> None:
        state = self.out / "encoder_state.pt"
        if not state.exists():
            return
        sd = load_file(str(self.out / ENCODER_FILE), device=str(self.device))
        check_state_dict(self.encoder, sd, what=str(self.out / ENCODER_FILE))
        self.encoder.load_state_dict(sd)
        st = torch.load(state, map_location=self.device, weights_only=True)
        self.opt.load_state_dict(st["opt"])
        self.step = int(st["step"])
        log_path = self.out / "encoder_log.jsonl"
        if log_path.exists():
            self.log = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]

    def save(self) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        sd = {k: v.detach().cpu().contiguous() for k, v in self.encoder.state_dict().items()}
        save_file(sd, str(self.out / ENCODER_FILE))
        torch.save({"opt": self.opt.state_dict(), "step": self.step}, self.out / "encoder_state.pt")
        (self.out / "encoder_train_config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        (self.out / "encoder_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.log))

    def _recon(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img = self.g(w).image
        l2 = F.mse_loss(img, x)
        perc = self.perceptual(img, x).mean()
        return l2, perc, img

    def train_step(self) -> dict[str, float]:
        c, b = self.config, self.config.batch_size
        start = ((self.step * self.world + self.rank) * b)
        real = self.faces.batch(start, b)[0].to(self.device)
        w_true = random_w_plus(self.g, b, c.mixing_prob, self.gen)
        with torch.no_grad():
            fake = self.g(w_true).image
        x = torch.cat([real, fake])
        w = self.model(x)
        l2, perc, _ = self._recon(x, w)
        lat = F.mse_loss(w[b:], w_true)
        loss = c.w_l2 * l2 + c.w_perceptual * perc + c.w_latent * lat
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "l2": l2.item(), "perceptual": perc.item(), "latent": lat.item()}

    def fit(self, progress: bool = True) -> int:
        c = self.config
        bar = tqdm(total=c.iterations, initial=self.step, desc="encoder", dynamic_ncols=True,
                   disable=not progress or self.rank != 0)  # fmt: skip
        t0, done = time.time(), 0
        while self.step < c.iterations:
            stats = self.train_step()
            self.step += 1
            done += 1
            if self.step % c.log_every == 0 or self.step == c.iterations:
                self.log.append({"step": self.step, **{k: round(v, 5) for k, v in stats.items()},
                                 "it_s": round(done / (time.time() - t0), 3)})  # fmt: skip
                bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items()})
            bar.update(1)
            if self.step % c.ckpt_every == 0 or self.step == c.iterations:
                self.save()
        bar.close()
        return self.step

    def export(self, model_dir: str | Path) -> None:
        """Write the encoder into a model folder beside the generator, with its config."""
        model_dir = Path(model_dir)
        save_file(compact_state_dict(self.encoder), str(model_dir / ENCODER_FILE))
        cfg_path = model_dir / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["encoder"] = self.encoder.config.to_dict()
        cfg["encoder_training"] = {**self.config.to_dict(), "iterations_done": self.step,
                                   "perceptual_backend": self.perceptual.backend,
                                   "generator_model_id": cfg["model_id"]}  # fmt: skip
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="Train the image -> W+ encoder for a model folder.")
    ap.add_argument("--model", required=True, help="model folder with generator.safetensors")
    ap.add_argument("--out", required=True)
    ap.add_argument("--export", action="store_true", help="write the encoder into --model when done")
    ap.add_argument("--threads", type=int)
    for f in dataclasses.fields(EncoderTrainConfig):
        ap.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(f.default))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(EncoderTrainConfig)
            if getattr(args, f.name) is not None}  # fmt: skip
    cfg = EncoderTrainConfig(**over)
    trainer = EncoderTrainer(load_generator(args.model), cfg, args.out)
    trainer.fit()
    if args.export and trainer.rank == 0:
        trainer.export(args.model)
    shutdown_distributed()


if __name__ == "__main__":
    main()
