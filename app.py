"""Entry point of the editor (also the Hugging Face Space's app_file).

    python app.py                                  # http://127.0.0.1:7860, default model, local SQLite library
    python app.py --model /path/to/bundle --port 8000
    EDITGAN_MODEL=hf://owner/repo/faces64 python app.py --host 0.0.0.0

Settings come from the environment (app/config.py lists them) and these flags override them.
The model is loaded once per process; a missing or partial bundle still starts the app, with a
banner saying what is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python app.py", description="EditGAN-class semantic image editor (Gradio)")
    ap.add_argument("--model", help="name under checkpoints/, a folder, or hf://owner/repo[/subfolder] "
                                    "(default: $EDITGAN_MODEL, else faces64)")  # fmt: skip
    ap.add_argument("--database-url", help="SQLAlchemy URL of the library (default: $EDITGAN_DATABASE_URL, "
                                           "else SQLite in the data directory)")  # fmt: skip
    ap.add_argument("--data-dir", type=Path, help="data directory (default: $EDITGAN_DATA_DIR, /data on a Space, ./data)")
    ap.add_argument("--users-file", type=Path, help="local accounts, 'username:password' per line "
                                                    "(default: $EDITGAN_USERS_FILE)")  # fmt: skip
    ap.add_argument("--local-user", help="single-user mode: act as this user (default on a loopback host: 'local')")
    ap.add_argument("--anonymous", action="store_true", help="no sign-in and no single user: browse and apply only")
    ap.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 on a Space)")
    ap.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    ap.add_argument("--share", action="store_true", help="also open a public gradio.live tunnel")
    ap.add_argument("--queue-size", type=int, help="events that may wait in the queue (default 32)")
    ap.add_argument("--heavy-workers", type=int, help="edits/embeddings that run at once (default 1)")
    ap.add_argument("--torch-threads", type=int, help="torch intra-op CPU threads (default 1 on <= 4 cores)")
    return ap


def make_app(args: argparse.Namespace):
    """Load everything once and build the UI; returns (demo, runtime)."""
    import os

    from app.memory import limit_arenas

    arenas = os.environ.get("EDITGAN_MALLOC_ARENAS", "2")
    if arenas.strip() not in ("", "0"):  # before any worker thread exists (app/memory.py says why)
        limit_arenas(int(arenas))
    from app.config import AppConfig, oauth_enabled, on_space
    from app.identity import Identity
    from app.runtime import Runtime
    from app.ui import build_demo

    host = args.host or ("0.0.0.0" if on_space() else "127.0.0.1")
    config = AppConfig.from_env(model=args.model, database_url=args.database_url, data_dir=args.data_dir,
                                users_file=args.users_file, local_user=args.local_user, host=host, port=args.port,
                                share=args.share or None, queue_size=args.queue_size,
                                heavy_workers=args.heavy_workers, torch_threads=args.torch_threads)  # fmt: skip
    identity = Identity("anonymous") if args.anonymous else Identity.resolve(
        oauth=oauth_enabled(), users_file=config.users_file, local_user=config.local_user, host=host)
    if config.torch_threads:
        import torch

        torch.set_num_threads(config.torch_threads)  # once per process, before the model runs
    runtime = Runtime.create(config, identity)
    return build_demo(runtime), runtime


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        demo, runtime = make_app(args)
    except ValueError as e:  # bad settings (users file, env values): say so and stop
        print(f"error: {e}", file=sys.stderr)
        return 2
    from app.ui import launch_options, queue_options

    print(runtime.status_markdown().replace("**", ""), file=sys.stderr)
    demo.queue(**queue_options(runtime))
    demo.launch(server_name=runtime.config.host, server_port=runtime.config.port, share=runtime.config.share,
                **launch_options(runtime))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
