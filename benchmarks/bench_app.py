"""Benchmark of the editor app: what a user feels when moving a vector slider, and what the process costs.

Starts the real entry point (``python app.py``) as a subprocess on a model bundle with a fresh SQLite
library, then measures through gradio_client:

* time to first page (process start -> GET / answers) and to the first rendered sample;
* latency of a vector-slider update (``/apply``: one generator pass, the image back to the client),
  p50/p95/max over ``--requests`` calls from one client, and the same with ``--clients`` concurrent
  clients (each its own session); with and without downloading the result image;
* the app process's resident memory (VmRSS, VmHWM) after the runs;
* for reference, the handler alone (``Handlers.apply`` in this process: library lookup + one
  generator pass, no Gradio), so the figures separate model cost from web-stack cost.

    python benchmarks/bench_app.py                          # tiny 16 px bundle (tests' model)
    python benchmarks/bench_app.py --model checkpoints/faces64
    python benchmarks/bench_app.py --shape faces64          # random weights with faces64's generator shape
    python benchmarks/bench_app.py --shape faces64 --generator-only --screenshot   # + what a user sees first

Prints JSON and writes benchmarks/results/app_<label>.json. Never part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.testing import free_port  # noqa: E402
from benchmarks.results_io import write_result
from core.vector_format import VectorFile  # noqa: E402

FACES64_SHAPE = dict(resolution=64, style_dim=256, n_mlp=4, channel_multiplier=1, channel_base=2048, channel_max=256)


def _pcts(xs: list[float]) -> dict:
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "p50_ms": round(q(0.5) * 1e3, 1), "p95_ms": round(q(0.95) * 1e3, 1),
            "max_ms": round(xs[-1] * 1e3, 1), "mean_ms": round(statistics.mean(xs) * 1e3, 1)}  # fmt: skip


def _mem_kib(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            k, v = line.split(":")
            out[k] = int(v.split()[0])
    return {"rss_mib": round(out.get("VmRSS", 0) / 1024, 1), "peak_rss_mib": round(out.get("VmHWM", 0) / 1024, 1)}


def make_bundle(shape: str, folder: Path, generator_only: bool = False) -> Path:
    from core.generator import GeneratorConfig
    from core.testing import TINY_GENERATOR, make_tiny_bundle

    config = TINY_GENERATOR if shape == "tiny" else GeneratorConfig(**FACES64_SHAPE)
    bundle = make_tiny_bundle(folder, config=config)
    if generator_only:  # what checkpoints/faces64 is until its branch and encoder are trained
        for part in ("branch.safetensors", "encoder.safetensors"):
            (bundle / part).unlink()
    return bundle


def screenshot(url: str, path: Path) -> str:
    """The first page as a new user sees it (Playwright + Debian's Chromium), or why not."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "playwright not installed"
    exe = "/usr/bin/chromium"
    if not Path(exe).exists():
        return f"no Chromium at {exe}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        page.wait_for_selector("#image img", timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(path), full_page=False)
        browser.close()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def slider_run(url: str, vid: int, requests: int, download: bool, seed: int) -> list[float]:
    from gradio_client import Client

    c = Client(url, verbose=False, download_files=tempfile.mkdtemp() if download else False)
    c.predict(seed, api_name="/sample")
    c.predict(vid, 0.0, api_name="/apply")  # warm this session
    times = []
    scales = np.linspace(-1.0, 1.5, requests)
    for s in scales:
        t = time.perf_counter()
        c.predict(vid, float(round(s, 3)), api_name="/apply")
        times.append(time.perf_counter() - t)
    return times


def handler_run(bundle: Path, folder: Path, vf: VectorFile, requests: int) -> dict:
    import torch

    from app.config import AppConfig
    from app.handlers import Handlers
    from app.identity import Identity
    from app.runtime import Runtime
    from app.session import EditSession

    torch.set_num_threads(AppConfig.from_env().torch_threads or torch.get_num_threads())
    folder.mkdir(parents=True, exist_ok=True)
    rt = Runtime.create(AppConfig(model=str(bundle), database_url=f"sqlite:///{folder / 'lib.sqlite3'}",
                                  data_dir=folder, example_seeds=()), Identity("single", local_user="bench"))  # fmt: skip
    rt.library.ensure_user("bench")
    vid = rt.library.publish("bench", vf).id
    h = Handlers(rt)
    state = h.sample(1, EditSession(), None)[-1]
    times = []
    for s in np.linspace(-1.0, 1.5, requests):
        t = time.perf_counter()
        h.apply(vid, float(s), state, None)
        times.append(time.perf_counter() - t)
    return {"torch_threads": torch.get_num_threads(), **_pcts(times)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a bundle folder or name (default: a tiny random bundle, see --shape)")
    ap.add_argument("--shape", choices=["tiny", "faces64"], default="tiny",
                    help="without --model: random weights with this generator shape")  # fmt: skip
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--concurrent-requests", type=int, default=40, help="per client")
    ap.add_argument("--generator-only", action="store_true", help="without --model: drop branch and encoder")
    ap.add_argument("--screenshot", action="store_true", help="also save the first page as app_<label>.png")
    ap.add_argument("--label", help="name of the result file (app_<label>.json)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    bundle = Path(args.model) if args.model else make_bundle(args.shape, work / "bundle", args.generator_only)
    if args.model and not bundle.is_dir():
        bundle = ROOT / "checkpoints" / args.model
    label = args.label or (bundle.name if args.model else
                           f"random-{args.shape}" + ("-generator-only" if args.generator_only else ""))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((bundle / "config.json").read_text())

    port = free_port()
    env = dict(os.environ, EDITGAN_MODEL=str(bundle), EDITGAN_DATA_DIR=str(work / "data"),
               GRADIO_ANALYTICS_ENABLED="False", EDITGAN_QUEUE_SIZE="256")  # fmt: skip
    env.pop("EDITGAN_DATABASE_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--local-user", "bench"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"app exited with {proc.returncode}")
                time.sleep(0.2)
        first_page = time.perf_counter() - t0
        mem_start = _mem_kib(proc.pid)
        shot = screenshot(url, args.out / f"app_{label}.png") if args.screenshot else None

        from gradio_client import Client, handle_file

        c = Client(url, verbose=False)
        t = time.perf_counter()
        c.predict(0, api_name="/sample")
        first_sample = time.perf_counter() - t
        first_sample_total = time.perf_counter() - t0

        # one vector of this model: a random direction, published through the API
        from core.editgan import EditGAN

        shape = EditGAN.load(bundle).latent_shape
        rng = np.random.default_rng(0)
        vf = VectorFile(delta=(0.3 * rng.standard_normal(shape)).astype(np.float32), model_id=cfg["model_id"],
                        edited_classes=("hair",), name="bench direction")  # fmt: skip
        path = work / "bench.safetensors"
        vf.save(path)
        _, vid = c.predict(handle_file(str(path)), "", "bench", "public", api_name="/upload_vector")
        vid = int(vid)

        single = {"with_image_download": _pcts(slider_run(url, vid, args.requests, True, 1)),
                  "without_download": _pcts(slider_run(url, vid, args.requests, False, 2))}  # fmt: skip

        results: list[list[float]] = [[] for _ in range(args.clients)]

        def worker(i: int) -> None:
            results[i] = slider_run(url, vid, args.concurrent_requests, True, 10 + i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        allt = [x for r in results for x in r]
        concurrent = {"clients": args.clients, **_pcts(allt), "throughput_per_s": round(len(allt) / wall, 1)}
        mem_end = _mem_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    handler = handler_run(bundle, work / "inproc", vf, args.requests)

    out = {
        "benchmark": "app",
        "model": label,
        "model_id": cfg["model_id"],
        "resolution": cfg["generator"]["resolution"],
        "latent_shape": list(shape),
        "parts": [p for p in ("branch", "encoder", "reader") if (bundle / f"{p}.safetensors").exists()],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": os.getloadavg()},  # fmt: skip
        "time_to_first_page_s": round(first_page, 2),
        "first_page_screenshot": shot,
        "first_sample_request_s": round(first_sample, 3),
        "time_to_first_sample_s": round(first_sample_total, 2),
        "slider_update_one_client": single,
        "slider_update_concurrent": concurrent,
        "slider_handler_in_process": handler,
        "memory_after_start": mem_start,
        "memory_after_runs": mem_end,
        "target": "slider update p95 < 150 ms on this CPU with the default model",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    write_result(args.out / f"app_{label}.json", out)
    return out


if __name__ == "__main__":
    main()
