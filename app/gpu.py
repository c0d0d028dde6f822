"""Hugging Face ZeroGPU: the heavy handlers ask for a GPU only while they run.

On a ZeroGPU Space a process holds no GPU until a function decorated with ``spaces.GPU`` runs; the
platform attaches one for at most ``duration`` seconds and takes it back after. Everywhere else (a CPU
Space, a dedicated-GPU Space, a laptop, the tests) :func:`gpu_task` returns the function unchanged and
the ``spaces`` package is never imported. docs/app.md, "Running on a GPU", compares the hardware choices.
"""

from __future__ import annotations

import importlib.util
from typing import Callable, TypeVar

from app.config import on_space

F = TypeVar("F", bound=Callable)

# Seconds a heavy handler may hold a ZeroGPU (the platform's default is 60; a shorter request queues sooner).
# Sized from benchmarks/results/gpu/: the default model's 30-step edit took 0.67 s on an H100
# (default_model_gpu.jsonl, 22 ms a step), so a 200-step edit (the app's most) needs ~5 s; embedding, tuning
# and make_transferable are not yet measured on a GPU, so theirs are their CPU times (docs/results.md:
# tuning 31.6 s, make_transferable 42-45 s) with room, an upper bound until scripts/gpu_edit_bench.sh runs.
EDIT_S = 30  # mask edit, vector + refinement
EMBED_S = 120  # upload: embed (<= 300 steps) then pivotal tuning (200 steps)
TUNE_S = 90  # pivotal tuning alone
SAVE_S = 90  # save an edit made transferable (16 faces x 60 steps)


def zero_gpu_available() -> bool:
    """On a Hugging Face Space with the ``spaces`` package installed (what ZeroGPU hardware needs)."""
    return on_space() and importlib.util.find_spec("spaces") is not None


def gpu_task(duration_s: int) -> Callable[[F], F]:
    """Decorator: ``spaces.GPU(duration=duration_s)`` on a ZeroGPU-capable Space, else the function as it is.

    ``spaces.GPU`` does nothing on a Space whose hardware is not ZeroGPU, so the one check is the package.
    """

    def wrap(fn: F) -> F:
        if not zero_gpu_available():
            return fn
        import spaces

        return spaces.GPU(duration=duration_s)(fn)

    return wrap
