"""Saving and loading generators: our safetensors folders and rosinality ``.pt`` files.

Our format (diffusers-style ``save_pretrained``)::

    checkpoints/<name>/generator.safetensors   weights
    checkpoints/<name>/config.json             {"generator": GeneratorConfig.to_dict(), "model_id": ...}

A model's id is a content hash of its generator weights, so a vector made for
one set of weights is never applied to another by mistake.

Loading validates every key and shape before touching the model: a mismatched
file raises ``ValueError`` naming what is wrong and leaves nothing half-loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from safetensors.torch import load_file, save_file

from core.generator import Generator, GeneratorConfig

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
# Buffers we keep that rosinality's Generator does not have.
_NOT_IN_ROSINALITY = ("w_avg",)


def model_id_of(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Content hash (16 hex chars of SHA-256) over names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()[:16]


def check_state_dict(
    model: torch.nn.Module, state_dict: Mapping[str, Any], ignore: tuple[str, ...] = (), what: str = "checkpoint"
) -> None:
    """Raise ValueError listing missing keys, unexpected keys and shape mismatches (none -> returns)."""
    expected = {k: v for k, v in model.state_dict().items() if k not in ignore}
    problems: list[str] = []
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(k for k in set(state_dict) - set(expected) if k not in ignore)
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''} ({len(missing)} in all)")
    if unexpected:
        problems.append(
            f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''} ({len(unexpected)} in all)"
        )
    for k in sorted(set(expected) & set(state_dict)):
        v = state_dict[k]
        if not isinstance(v, torch.Tensor):
            problems.append(f"{k}: expected a tensor, got {type(v).__name__}")
        elif tuple(v.shape) != tuple(expected[k].shape):
            problems.append(f"{k}: shape {list(v.shape)} does not match the model's {list(expected[k].shape)}")
        elif v.dtype.is_floating_point != expected[k].dtype.is_floating_point:
            problems.append(f"{k}: dtype {v.dtype} does not match the model's {expected[k].dtype}")
    if problems:
        raise ValueError(f"{what} does not fit the model: " + "; ".join(problems))


def save_generator(
    generator: Generator,
    folder: str | Path,
    extra: Optional[dict[str, Any]] = None,
    dtype: Optional[torch.dtype] = None,
) -> str:
    """Write weights + config.json into ``folder``; returns the model id.

    ``dtype=torch.float16`` halves the file (the shipped model does this); loading upcasts
    to the model's float32, and the id is the hash of what is stored.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().to(dtype or v.dtype).contiguous() for k, v in generator.state_dict().items()}
    mid = model_id_of(sd)
    save_file(sd, str(folder / GENERATOR_FILE), metadata={"model_id": mid})
    cfg_path = folder / CONFIG_FILE
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    if config.get("model_id") not in (None, mid):
        _retire_dependent_parts(folder, config)
    config.update(extra or {})
    config["generator"] = generator.config.to_dict()
    config["model_id"] = mid
    cfg_path.write_text(json.dumps(config, indent=2) + "\n")
    return mid


def compact_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state on the CPU with floating tensors as float16 (how model folders store parts);
    loading copies them back into the module's float32 parameters."""
    return {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in module.state_dict().items()}  # fmt: skip


# Parts trained on one generator's features or images, with their weights file. config.json holds
# each part's config under its name and its training record under "<name>_training".
DEPENDENT_PARTS = {"encoder": "encoder.safetensors", "branch": "branch.safetensors"}


def _retire_dependent_parts(folder: Path, config: dict[str, Any]) -> None:
    """A new generator invalidates the encoder and branch trained on the old one.

    Their files are renamed ``<part>.for-<old model id>.safetensors`` (kept, not
    deleted) and their entries leave config.json, so the folder never pairs the
    new generator with parts that learned another one.
    """
    old = config["model_id"]
    for part, file in DEPENDENT_PARTS.items():
        present = (folder / file).exists() or part in config or f"{part}_training" in config
        if (folder / file).exists():
            (folder / file).rename(folder / f"{part}.for-{old}.safetensors")
        config.pop(part, None)
        config.pop(f"{part}_training", None)
        if present:
            log.warning("%s: the generator changed (%s); the %s trained for it was set aside as %s.for-%s.safetensors",
                        folder, old, part, part, old)  # fmt: skip


def load_generator(folder: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load a folder written by :func:`save_generator`."""
    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_FILE, folder / GENERATOR_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise ValueError(f"{folder} is not a model folder: it needs {CONFIG_FILE} and {GENERATOR_FILE}")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
    if "generator" not in config:
        raise ValueError(f"{cfg_path}: no 'generator' section")
    gen = Generator(GeneratorConfig.from_dict(config["generator"]))
    try:
        sd = load_file(str(w_path))
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"{w_path}: not a readable safetensors file ({e})") from None
    check_state_dict(gen, sd, what=str(w_path))
    gen.load_state_dict(sd)
    return gen.to(device).eval()


# -- rosinality/stylegan2-pytorch ---------------------------------------------------------------


def _read_pt(path: str | Path) -> Any:
    """torch.load with weights_only=True; argparse.Namespace (rosinality stores its args) is allowed."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a loadable PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]})") from None


def infer_rosinality_config(state_dict: Mapping[str, torch.Tensor]) -> GeneratorConfig:
    """Recover size, style_dim, n_mlp and channel_multiplier from a rosinality g_ema state dict."""
    try:
        style_dim = state_dict["style.1.weight"].shape[1]
        n_mlp = len([k for k in state_dict if re.fullmatch(r"style\.\d+\.weight", k)])
        n_rgbs = len([k for k in state_dict if re.fullmatch(r"to_rgbs\.\d+\.bias", k)])
        size = 2 ** (n_rgbs + 2)
        top = state_dict[f"convs.{2 * n_rgbs - 1}.conv.weight"].shape[1]
    except KeyError as e:
        raise ValueError(f"not a rosinality StyleGAN2 generator state dict: missing key {e}") from None
    cm = top * size / 16384
    if size <= 32 or cm != int(cm) or cm < 1:
        raise ValueError(
            f"cannot infer channel_multiplier from {top} channels at {size} px; pass a GeneratorConfig explicitly"
        )
    return GeneratorConfig(resolution=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=int(cm))


def load_rosinality(
    path_or_state: str | Path | Mapping[str, Any],
    config: Optional[GeneratorConfig] = None,
    key: str = "g_ema",
    device: str | torch.device = "cpu",
) -> Generator:
    """Load a rosinality stylegan2-pytorch generator (``torch.load(path)['g_ema']``)."""
    obj = path_or_state if isinstance(path_or_state, Mapping) else _read_pt(path_or_state)
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a dict checkpoint, got {type(obj).__name__}")
    sd = obj[key] if key in obj else obj
    if not isinstance(sd, Mapping) or not sd:
        raise ValueError(f"checkpoint has no generator state dict under {key!r}; keys: {sorted(obj)[:10]}")
    config = config or infer_rosinality_config(sd)
    gen = Generator(config)
    check_state_dict(gen, sd, ignore=_NOT_IN_ROSINALITY, what=f"rosinality checkpoint ({key})")
    gen.load_state_dict(dict(sd), strict=False)
    gen.compute_w_avg()
    return gen.to(device).eval()


def rosinality_state_dict(generator: Generator) -> dict[str, torch.Tensor]:
    """Our generator's weights under rosinality's keys (for exporting back to that code)."""
    return {k: v for k, v in generator.state_dict().items() if k not in _NOT_IN_ROSINALITY}
