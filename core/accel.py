"""Speed-ups of the edit's optimisation that apply on CUDA only (issue #25): TF32 and CUDA-graph replay.

On the CPU nothing here runs: :func:`core.edit.optimize_edit` takes its plain loop, as before.

UNMEASURED ON A GPU. Written and tested on a CPU-only machine; the CUDA paths have never run. Until
scripts/gpu_edit_bench.sh has run on a GPU (it times each switch and checks the graph's losses against the
eager loop's) the defaults stay conservative: TF32 on, graphs off.

* **TF32** (``AccelConfig.tf32``): float32 matrix products and cuDNN convolutions on the tensor cores with
  a 10-bit mantissa, set for the edit only and restored after. PyTorch's own default is TF32 for cuDNN
  convolutions but not for matrix products; the branch's projections and the perceptual network are mostly
  matrix products. ``None`` leaves the process's flags as they are.
* **CUDA graphs** (``AccelConfig.cuda_graphs``): the region is fixed for a whole edit, so every step runs the
  same kernels on the same shapes. After ``graph_warmup`` eager steps (real steps, on a side stream) the
  whole step -- forward, backward and Adam -- is captured once and replayed for the rest, one launch instead
  of the hundreds of small kernels the 512 px profile shows. One graph per edit: the region's pixel count and
  bounding box fix its shapes. Any error while capturing falls back to the eager loop, from where it was.
* **channels_last** is not offered: the generator's modulated convolutions reshape their input per sample
  (grouped convolution), so it is not a flag but a rewrite, to weigh after the graphs are measured.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch

from core.config import ConfigMixin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccelConfig(ConfigMixin):
    """CUDA-only switches of the edit loop; the CPU ignores them (docs/results.md, issue #25)."""

    tf32: Optional[bool] = True  # None: leave the process's TF32 flags as they are
    cuda_graphs: bool = False  # off until measured on a GPU (scripts/gpu_edit_bench.sh)
    graph_warmup: int = 3  # eager steps before the capture (cuDNN/cuBLAS choose their kernels, Adam's state exists)

    def __post_init__(self) -> None:
        if self.graph_warmup < 1:
            raise ValueError(f"graph_warmup must be >= 1, got {self.graph_warmup}")


def _flag_holders() -> list:
    """The objects whose ``fp32_precision`` (torch >= 2.9) or ``allow_tf32`` set TF32 for matmuls and convolutions."""
    return [torch.backends.cuda.matmul, torch.backends.cudnn.conv if hasattr(torch.backends.cudnn, "conv")
            else torch.backends.cudnn]  # fmt: skip


@contextmanager
def precision(device: torch.device, tf32: Optional[bool]) -> Iterator[None]:
    """TF32 on (True) or off (False) for matmuls and cuDNN convolutions while inside, on CUDA; restored after.

    Uses torch's newer ``fp32_precision`` flags where they exist: mixing them with the legacy ``allow_tf32``
    makes torch raise when the flags are read.
    """
    if device.type != "cuda" or tf32 is None:
        yield
        return
    holders = _flag_holders()
    new_api = all(hasattr(h, "fp32_precision") for h in holders)
    name = "fp32_precision" if new_api else "allow_tf32"
    value = ("tf32" if tf32 else "ieee") if new_api else tf32
    old = [getattr(h, name) for h in holders]
    try:
        for h in holders:
            setattr(h, name, value)
        yield
    finally:
        for h, v in zip(holders, old):
            setattr(h, name, v)


StepTerms = Callable[[torch.Tensor], tuple]  # w -> (loss, image, terms): EditObjective.terms


def optimize_graphed(
    terms: StepTerms,
    w_start: torch.Tensor,  # [1, n_latent, w_dim] on CUDA
    steps: int,
    lr: float,
    warmup: int,
    callback: Optional[Callable[[int, float, torch.Tensor], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> tuple[torch.Tensor, list[float], int, dict]:
    """Adam on W+ as :func:`core.edit.optimize_edit`, the step replayed as a CUDA graph after ``warmup`` steps.

    Same step semantics as the eager loop: the loss of step k is that of the latent before step k's update,
    the best latent is kept, ``callback`` sees each step's image (a copy), ``should_stop`` ends the loop before
    the update. Returns (best latent, losses, best step, info), info saying whether a graph ran and why not.
    UNTESTED ON A GPU (module docstring).
    """
    w = w_start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, capturable=True)
    best_w, best, best_step, losses = w_start.detach().clone(), float("inf"), 0, []
    info = {"cuda_graph": False}
    graph = static = None
    side = torch.cuda.Stream(device=w.device)
    side.wait_stream(torch.cuda.current_stream(w.device))
    step = 0
    while step < steps:
        if graph is None and step == warmup and steps - step > 1:
            torch.cuda.current_stream(w.device).wait_stream(side)
            try:
                graph, static = _capture(terms, w, opt)
                info["cuda_graph"] = True
                info["captured_at_step"] = step
            except Exception as e:  # any capture problem: carry on eagerly from here
                log.warning("CUDA graph capture failed (%s: %s); the edit continues without it", type(e).__name__, e)
                info["capture_error"] = f"{type(e).__name__}: {e}"[:300]
                graph = False
                opt.zero_grad(set_to_none=True)
                torch.cuda.synchronize(w.device)
        if graph:
            graph.replay()
            prev, loss, img = static
            value = loss.item()
            if value < best:
                best, best_w, best_step = value, prev.clone(), step
            losses.append(value)
            if callback:
                callback(step, value, img.detach().clone())
            if should_stop and should_stop():
                break
        else:
            with torch.cuda.stream(side) if graph is None else nullcontext():
                loss, img, _ = terms(w)
                value = loss.item()
                losses.append(value)
                if value < best:
                    best, best_w, best_step = value, w.detach().clone(), step
                if callback:
                    callback(step, value, img.detach())
                if should_stop and should_stop():
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        step += 1
    torch.cuda.current_stream(w.device).wait_stream(side)
    del graph, static
    return best_w, losses, best_step, info


def _capture(terms: StepTerms, w: torch.Tensor, opt: torch.optim.Optimizer):
    """Capture one whole step on ``w``: returns (graph, (latent before the update, loss, image))."""
    prev = torch.empty_like(w, requires_grad=False)
    opt.zero_grad(set_to_none=True)  # the graph allocates the gradient in its own pool and rewrites it each replay
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        prev.copy_(w.detach())
        loss, img, _ = terms(w)
        loss.backward()
        opt.step()
    return graph, (prev, loss.detach(), img.detach())
