"""Which device the model runs on: ``EDITGAN_DEVICE`` = ``auto`` (the default), ``cpu`` or ``cuda[:N]``.

    from core.device import resolve_device
    device = resolve_device("auto")        # cuda when torch sees a GPU, else cpu
    model = EditGAN.load("faces64", device=device)

Entry points (app.py through app/config.py, core/cli.py, the benchmarks) read the environment variable and
pass the spec here; library code takes an explicit device and never reads it.
"""

from __future__ import annotations

import os
import re
from typing import Optional

import torch

ENV_DEVICE = "EDITGAN_DEVICE"
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def device_spec_from_env() -> str:
    """``EDITGAN_DEVICE`` as set, or "auto" when unset or empty."""
    return os.environ.get(ENV_DEVICE, "").strip() or "auto"


def resolve_device(spec: Optional[str] = None) -> torch.device:
    """``auto`` (or None): CUDA when torch sees a GPU, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``.

    Raises ValueError for an unknown spec, or for ``cuda`` on a machine where torch sees no GPU
    (rather than falling back to the CPU unasked).
    """
    s = (spec or "auto").strip().lower()
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", s)
    if m is None:
        raise ValueError(f"unknown device {spec!r}: use one of {', '.join(DEVICE_CHOICES)} (or cuda:N); "
                         f"set {ENV_DEVICE} or --device")  # fmt: skip
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} was asked for, but torch sees no CUDA GPU on this machine "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
                         f"use {ENV_DEVICE}=cpu or auto")  # fmt: skip
    index = int(m.group(1)) if m.group(1) else None
    if index is not None and index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")
