"""Training a segmentation branch from a label set, in the app's background (the Label tab's Train button).

One job at a time per process, and one per label set and generator across replicas (the label store's
training lock, :meth:`vector_library.LabelStore.begin_training`). The job runs in a daemon thread owned by
:class:`BranchTrainer`, not by the request: closing the page does not stop it, the Stop button does, and
any page can watch its progress. The trained branch (and the image reader, when the recipe trains one) is
stored in the library's database as a new *branch version* of the generator
(:meth:`LabelStore.add_branch_version`), so every replica finds it; the process that trained it switches
to it at once (:meth:`app.runtime.Runtime.use_branch_version`), the others within a few seconds.

A branch version's payload is one safetensors file: the branch's weights under ``branch.``, the reader's
under ``reader.`` (float16, as model folders store them); its config (JSON, in the database row) holds
the parts' configs, the class names and colours. Nothing is unpickled when reading it back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from core.branch import BranchConfig, SegmentationBranch
from core.checkpoint import check_state_dict, compact_state_dict
from core.generator import Generator
from core.segmenter import ImageReader, ReaderConfig
from core.train.fewshot import FewShotConfig, TrainingStopped, train_branch_from_labels

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger(__name__)
MIN_MASKS = 2


def pack_branch(branch: SegmentationBranch, reader: Optional[ImageReader]) -> bytes:
    """The branch (+ reader) weights as one safetensors payload, float16."""
    tensors = {f"branch.{k}": v for k, v in compact_state_dict(branch).items()}
    if reader is not None:
        tensors.update({f"reader.{k}": v for k, v in compact_state_dict(reader).items()})
    return save_safetensors(tensors, metadata={"format": "editgan-branch/1"})


def branch_config(branch: SegmentationBranch, reader: Optional[ImageReader], class_names, palette, record: dict) -> dict:
    return {"branch": branch.config.to_dict(), "reader": reader.config.to_dict() if reader is not None else None,
            "classes": list(class_names), "palette": np.asarray(palette, np.uint8).tolist(), "record": record}  # fmt: skip


def unpack_branch(data: bytes, config: dict, generator: Generator):
    """(branch, reader or None, class names, palette [K, 3] uint8) of a stored branch version, validated against
    ``generator`` (its feature channels and resolution); ValueError when anything does not fit."""
    try:
        tensors = load_safetensors(bytes(data))
        names = tuple(config["classes"])
        palette = np.asarray(config["palette"], np.uint8)
        branch = SegmentationBranch(BranchConfig.from_dict(config["branch"]))
        reader = ImageReader(ReaderConfig.from_dict(config["reader"])) if config.get("reader") else None
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"this branch version's stored data is damaged ({type(e).__name__}: {str(e)[:120]})") from None
    if palette.shape != (len(names), 3) or branch.config.num_classes != len(names):
        raise ValueError("this branch version's classes, colours and weights do not agree")
    if (tuple(branch.config.feature_channels) != tuple(generator.feature_channels)
            or branch.config.resolution != generator.config.resolution):  # fmt: skip
        raise ValueError("this branch version was trained on another generator's features")
    parts = {"branch": branch, "reader": reader}
    for prefix, module in parts.items():
        if module is None:
            continue
        sd = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        check_state_dict(module, sd, what=f"stored {prefix}")
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        module.eval()
    return branch, reader, names, palette


@dataclass
class Job:
    """What a page shows of a training: progress in [0, 1], a line of text, and how it ended."""

    set_id: int
    user: str
    started: float = field(default_factory=time.monotonic)
    fraction: float = 0.0
    text: str = "starting"
    state: str = "running"  # running | done | stopped | failed
    message: str = ""
    version: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def eta_s(self) -> Optional[float]:
        spent = time.monotonic() - self.started
        return spent * (1 - self.fraction) / self.fraction if self.fraction > 0.02 else None


class BranchTrainer:
    """Runs one branch training at a time in a background thread (see the module doc)."""

    def __init__(self, runtime: "Runtime", config: FewShotConfig = FewShotConfig()) -> None:
        self.rt = runtime
        self.config = config
        self._lock = threading.Lock()
        self.jobs: dict[int, Job] = {}  # label set -> its latest job in this process

    def job(self, set_id: int) -> Optional[Job]:
        with self._lock:
            return self.jobs.get(int(set_id))

    def start(self, set_id: int, user: str) -> Job:
        """Check everything, take the label store's training lock and start the thread; ValueError or a library
        error (TrainingBusy, PermissionDenied) when it cannot start. Nothing is written before the thread ends."""
        base = self.rt.require_base()
        info = self.rt.labels.get_set(set_id)
        if info.model_id != base.model_id:
            raise ValueError(f"label set {set_id} belongs to generator {info.model_id}, this server runs {base.model_id}")
        labelled = self.rt.labels.training_masks(set_id)
        if len(labelled) < MIN_MASKS:
            raise ValueError(f"training needs at least {MIN_MASKS} labelled samples; this set has {len(labelled)}")
        with self._lock:
            current = next((j for j in self.jobs.values() if j.running), None)
            if current is not None:
                raise ValueError(f"a branch is already training on this server (label set {current.set_id}, started by "
                                 f"{current.user}); wait for it or stop it")  # fmt: skip
            token = self.rt.labels.begin_training(set_id, user)
            job = Job(int(set_id), user)
            self.jobs[int(set_id)] = job
        threading.Thread(target=self._run, args=(job, token, info, labelled), daemon=True,
                         name=f"train-branch-{set_id}").start()  # fmt: skip
        return job

    def stop(self, set_id: int) -> Optional[Job]:
        job = self.job(set_id)
        if job is not None and job.running:
            job.stop.set()
        return job

    def _run(self, job: Job, token: str, info, labelled) -> None:
        ok = False
        try:
            base = self.rt.require_base()
            w = torch.cat([base.sample(s.seed, s.truncation) for s, _ in labelled]).cpu()  # [N, n_latent, w_dim]
            masks = torch.from_numpy(np.stack([m.astype(np.int64) for _, m in labelled]))  # [N, R, R]
            names = [c.name for c in info.classes]
            palette = np.array([c.color for c in info.classes], np.uint8)

            def progress(fraction: float, text: str) -> None:
                job.fraction, job.text = max(job.fraction, min(1.0, float(fraction))), text

            result = train_branch_from_labels(base.generator, w, masks, names, self.config, progress,
                                              job.stop.is_set, model_id=base.model_id)  # fmt: skip
            job.text = "storing the branch"
            config = branch_config(result.branch, result.reader, names, palette, result.record)
            stored = self.rt.labels.add_branch_version(base.model_id, job.user, pack_branch(result.branch, result.reader),
                                                       config, result.record, info.id, len(labelled))  # fmt: skip
            self.rt.use_branch_version(stored.version)
            job.version, job.fraction, ok = stored.version, 1.0, True
            job.message = f"Branch version {stored.version} trained on {len(labelled)} masks; the Edit tab uses it now."
            job.state = "done"
        except TrainingStopped:
            job.state, job.message = "stopped", "Training stopped; nothing was stored."
        except Exception as e:  # any failure ends the job with its reason; the store keeps nothing half-written
            log.exception("branch training for label set %s failed", job.set_id)
            job.state, job.message = "failed", f"Training failed: {type(e).__name__}: {str(e)[:300]}"
        finally:
            try:
                self.rt.labels.end_training(token, ok)
            except Exception:  # the lock goes stale on its own
                log.exception("could not release the training lock of label set %s", job.set_id)
            from app.memory import trim

            trim()
