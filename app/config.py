"""The app's settings: environment variables first, then app.py's flags override them.

    EDITGAN_MODEL          a name under checkpoints/ (default "faces64"), a folder, a rosinality .pt, or
                           hf://owner/repo[/subfolder] (fetched with huggingface_hub when online)
    EDITGAN_MODELS         more models signed-in users may switch the server to (comma separated, same forms);
                           only these: a user never names a path or URL of their own
    EDITGAN_DATABASE_URL   the library's database (read by db.Database.open; default SQLite)
    EDITGAN_DATA_DIR       where the SQLite file lives when EDITGAN_DATABASE_URL is not set (share links, kept
                           photos and tunings are in the library database, so replicas on one database share them)
    EDITGAN_USERS_FILE     local accounts ("username:password" per line) -> Gradio auth
    EDITGAN_LOCAL_USER     single-user mode: every visitor acts as this user (loopback only by default)
    EDITGAN_QUEUE_SIZE     how many events may wait in the queue (default 32)
    EDITGAN_HEAVY_WORKERS  how many edits / embeddings run at once (default 1)
    EDITGAN_TORCH_THREADS  intra-op threads of torch on the CPU (default 1 on machines with <= 4 cores,
                           where parallel requests, not parallel ops, use the cores; else torch's default)
    EDITGAN_DEVICE         where the model runs: auto (default: CUDA when torch sees a GPU, else the CPU), cpu,
                           cuda (refused with a clear error where there is none; core/device.py, docs/app.md)
    EDITGAN_MALLOC_ARENAS  glibc malloc arenas for the process (default 2, which keeps memory bounded; 0 leaves
                           glibc's default; app/memory.py)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from core.device import device_spec_from_env, resolve_device
from db import default_data_dir

ENV_MODEL = "EDITGAN_MODEL"
ENV_MODELS = "EDITGAN_MODELS"
ENV_USERS_FILE = "EDITGAN_USERS_FILE"
ENV_LOCAL_USER = "EDITGAN_LOCAL_USER"
ENV_QUEUE_SIZE = "EDITGAN_QUEUE_SIZE"
ENV_HEAVY_WORKERS = "EDITGAN_HEAVY_WORKERS"
ENV_TORCH_THREADS = "EDITGAN_TORCH_THREADS"
DEFAULT_MODEL = "faces64"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def on_space() -> bool:
    """Running on a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def oauth_enabled() -> bool:
    """A Space with ``hf_oauth: true`` gets OAUTH_CLIENT_ID and friends from the platform."""
    return on_space() and bool(os.environ.get("OAUTH_CLIENT_ID"))


@dataclass(frozen=True)
class AppConfig:
    model: str = DEFAULT_MODEL
    database_url: Optional[str] = None  # None: db.default_database_url(data dir) ($EDITGAN_DATABASE_URL, then data dir)
    data_dir: Optional[Path] = None  # None: db.default_data_dir()
    users_file: Optional[Path] = None
    local_user: Optional[str] = None
    queue_size: int = 32
    heavy_workers: int = 1
    light_workers: int = 4
    host: str = "127.0.0.1"
    port: Optional[int] = None
    share: bool = False
    example_seeds: tuple[int, ...] = tuple(range(8))
    max_edit_steps: int = 200
    max_embed_steps: int = 300
    tune_steps: int = 200  # pivotal tuning of the generator to an uploaded photo (when the user keeps it on)
    torch_threads: Optional[int] = None  # None: torch's default
    # the Label tab's training (core.train.fewshot.FewShotConfig): branch steps, and whether the image reader is
    # trained too (U-Nets on the labelled images; adds about a third more time, docs/results.md few-shot branch)
    branch_train_steps: int = 600
    branch_train_reader: bool = False
    model_choices: tuple[str, ...] = ()  # EDITGAN_MODELS: what the Label tab's model choice offers besides `model`
    device: str = "auto"  # EDITGAN_DEVICE: auto, cpu, cuda[:N] (core.device.resolve_device)

    @classmethod
    def from_env(cls, **overrides) -> "AppConfig":
        users = os.environ.get(ENV_USERS_FILE)
        cfg = cls(
            model=os.environ.get(ENV_MODEL) or DEFAULT_MODEL,
            model_choices=tuple(m.strip() for m in (os.environ.get(ENV_MODELS) or "").split(",") if m.strip()),
            users_file=Path(users) if users else None,
            local_user=os.environ.get(ENV_LOCAL_USER) or None,
            queue_size=_int_env(ENV_QUEUE_SIZE, 32),
            heavy_workers=_int_env(ENV_HEAVY_WORKERS, 1),
            torch_threads=(_int_env(ENV_TORCH_THREADS, 1) if os.environ.get(ENV_TORCH_THREADS)
                           else 1 if (os.cpu_count() or 1) <= 4 else None),  # fmt: skip
            device=device_spec_from_env(),
        )
        return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def models(self) -> tuple[str, ...]:
        """Every model this server may run: EDITGAN_MODEL first, then EDITGAN_MODELS."""
        return tuple(dict.fromkeys((self.model, *self.model_choices)))

    @property
    def torch_device(self):
        """The torch.device of :attr:`device`; ValueError for an unknown spec or cuda without a GPU."""
        return resolve_device(self.device)

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir is not None else default_data_dir()
