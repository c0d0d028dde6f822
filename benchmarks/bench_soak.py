"""Soak benchmark of the editor app: does its memory level off, and how do slider updates hold up under load?

Starts the real entry point (``python app.py``) on a model bundle with a fresh SQLite library, then:

1. **soak**: ``--clients`` gradio_client sessions (threads) run ``--actions`` mixed actions between them, as
   people do: new samples, mask edits (an uploaded painted mask, ``--edit-steps`` steps), vector slider
   moves, compositions, searches, vector pages, undo, share links, saves. The app process's resident memory
   (VmRSS) is sampled every ``--every`` seconds throughout; reported with the RSS after start, after the
   first and the second half of the actions, and the peak. "Levels off" means the second half grew by less
   than ``--level-mib``.
2. **saving**: how long a save with a bad tag takes to be refused, and a save made transferable (after a
   40-step edit, as the app's defaults), alone on the app;
3. **slider under load**: 8 and 32 concurrent clients (each its own session) move a vector slider
   ``--slider-requests`` times each; p50/p95/max latency and throughput, and the same while one other client
   runs mask edits back to back (the slider must not wait behind edits).

    python -m benchmarks.bench_soak --model checkpoints/faces64
    python -m benchmarks.bench_soak --model checkpoints/faces64 --actions 40 --slider-clients 8   # quick

Writes benchmarks/results/soak_<label>.json and a picture of RSS over time, soak_<label>.png (PIL).
Never part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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

from app.testing import free_port, write_target_mask  # noqa: E402
from benchmarks.bench_app import _mem_kib, _pcts  # noqa: E402
from benchmarks.results_io import write_result  # noqa: E402
from core.vector_format import VectorFile  # noqa: E402

ACTIONS = {"sample": 3, "edit": 2, "slider": 6, "compose": 2, "search": 2, "page": 2, "undo": 1, "share": 1, "save": 1}


class RssSampler(threading.Thread):
    """VmRSS of ``pid`` every ``every`` seconds: [(seconds since start, MiB)]."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.t0 = pid, every, [], time.perf_counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.samples.append((round(time.perf_counter() - self.t0, 2), _mem_kib(self.pid)["rss_mib"]))
            except OSError:
                return
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def start_app(bundle: Path, work: Path, extra_env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, EDITGAN_MODEL=str(bundle), EDITGAN_DATA_DIR=str(work / "data"),
               GRADIO_ANALYTICS_ENABLED="False", EDITGAN_QUEUE_SIZE="512", **extra_env)  # fmt: skip
    env.pop("EDITGAN_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--local-user", "bench"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "app.log", "w"))  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"app exited with {proc.returncode}; see {work / 'app.log'}")
            time.sleep(0.2)


def _client(url: str, download: str | bool = False):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=download)


def soak_client(url: str, i: int, n: int, vids: list[int], mask: str, steps: int, errors: list, counts: dict):
    from gradio_client import handle_file

    rng = random.Random(i)
    c = _client(url, tempfile.mkdtemp())
    c.predict(100 + i, api_name="/sample")
    kinds, weights = zip(*ACTIONS.items())
    for k in range(n):
        kind = rng.choices(kinds, weights)[0]
        try:
            if kind == "sample":
                c.predict(rng.randrange(10**6), api_name="/sample")
            elif kind == "edit":
                c.predict(None, handle_file(mask), "optimization", steps, api_name="/edit")
            elif kind == "slider":
                vid = rng.choice(vids)
                for s in np.linspace(-0.5, 1.5, 5):
                    c.predict(vid, float(round(s, 2)), api_name="/apply")
            elif kind == "compose":
                a, b = rng.sample(vids, 2)
                c.predict(str(a), str(b), None, None, rng.uniform(-1, 1.5), rng.uniform(-1, 1.5), 1.0, 1.0,
                          api_name="/compose")  # fmt: skip
            elif kind == "search":
                c.predict(rng.choice(["bench", "soak", "", "hair"]), "", "", "recent", api_name="/search")
            elif kind == "page":
                c.predict(rng.choice(vids), api_name="/vector")
            elif kind == "undo":
                c.predict(api_name="/undo")
            elif kind == "share":
                c.predict(api_name="/share")
            elif kind == "save":
                c.predict(None, handle_file(mask), "optimization", steps, api_name="/edit")
                c.predict(f"soak {i}-{k}", "", "soak", "private", False, api_name="/save_edit")
            counts[kind] = counts.get(kind, 0) + 1
        except Exception as e:  # "nothing to undo" and the like are answers, not failures; others are counted
            if "nothing to undo" not in str(e):
                errors.append(f"{kind}: {str(e)[:160]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _slider_client(url: str, vid: int, seed: int, requests: int, ready, go, out, download: bool = True) -> None:
    """One person moving a slider, in a process of its own (so that the clients do not share one GIL); without
    ``download`` the client does not fetch the image (a lighter client, to see the app's own limit)."""
    c = _client(url, tempfile.mkdtemp() if download else False)
    c.predict(seed, api_name="/sample")
    c.predict(vid, 0.0, api_name="/apply")  # this session is warm
    ready.release()
    go.wait()
    times, errors = [], []
    for s in np.linspace(-1.0, 1.5, requests):
        t = time.perf_counter()
        try:
            c.predict(vid, float(round(s, 3)), api_name="/apply")
            times.append(time.perf_counter() - t)
        except Exception as e:
            errors.append(str(e)[:160])
    out.put((times, errors, cpu_seconds(os.getpid())))


def _edit_loop(url: str, mask: str, steps: int, go, stop) -> None:
    from gradio_client import handle_file

    c = _client(url)
    c.predict(7, api_name="/sample")
    go.wait()
    while not stop.is_set():
        try:
            c.predict(None, handle_file(mask), "optimization", steps, api_name="/edit")
        except Exception:
            return  # the app went away at the end of the run


def slider_load(url: str, app_pid: int, vid: int, clients: int, requests: int, edits_beside: int, mask: str,
                steps: int, download: bool = True) -> dict:  # fmt: skip
    """``clients`` processes move a slider ``requests`` times each, at once; optionally beside running edits."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, go, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_slider_client, args=(url, vid, 200 + i, requests, ready, go, out, download))
             for i in range(clients)]  # fmt: skip
    editors = [ctx.Process(target=_edit_loop, args=(url, mask, steps, go, stop)) for _ in range(edits_beside)]
    for p in procs + editors:
        p.start()
    for _ in procs:
        ready.acquire()  # every session is made and warm: the timed part is the slider alone
    app_cpu, t = cpu_seconds(app_pid), time.perf_counter()
    go.set()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - t
    app_cpu = cpu_seconds(app_pid) - app_cpu
    stop.set()
    for p in procs + editors:
        p.join(timeout=120)
    allt = [x for r in results for x in r[0]]
    errors = [e for r in results for e in r[1]]
    n = max(1, len(allt))
    # where the time goes: the app's CPU per update (handler + web stack; the edit's too when one runs beside),
    # against the wall time per update; the clients' own CPU (whole client processes, set-up included) is apart
    return {"clients": clients, "edits_running_beside": edits_beside, "clients_fetch_images": download, **_pcts(allt),
            "throughput_per_s": round(len(allt) / wall, 1), "app_cpu_ms_per_update": round(1e3 * app_cpu / n, 1),
            "app_cores_busy": round(app_cpu / wall, 2), "wall_ms_per_update": round(1e3 * wall / n, 1),
            "errors": len(errors), "error_examples": errors[:3]}  # fmt: skip


def plot(samples, marks: dict, path: Path, title: str, size=(760, 300)) -> None:
    """RSS over time as a PNG (PIL only), dashed lines where each phase ended."""
    from PIL import Image, ImageDraw

    w, h, pad = size[0], size[1], 46
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    ts, ms = [t for t, _ in samples], [m for _, m in samples]
    if len(ts) < 2:
        img.save(path)
        return
    lo, hi = 0.0, max(ms) * 1.1
    x = lambda t: pad + t / max(ts[-1], 1e-9) * (w - pad - 10)  # noqa: E731
    y = lambda m: h - pad - (m - lo) / (hi - lo) * (h - pad - 24)  # noqa: E731
    d.rectangle([pad, 24, w - 10, h - pad], outline=(0, 0, 0))
    for label, t in marks.items():
        for yy in range(24, h - pad, 6):
            d.line([(x(t), yy), (x(t), yy + 3)], fill=(150, 150, 150))
        d.text((x(t) + 2, h - pad - 12), label, fill=(90, 90, 90))
    d.line([(x(t), y(m)) for t, m in samples], fill=(40, 90, 200), width=2)
    d.text((pad, 6), title, fill=(0, 0, 0))
    d.text((2, 24), f"{hi:.0f}", fill=(0, 0, 0))
    d.text((2, h - pad - 10), "0 MiB", fill=(0, 0, 0))
    d.text((pad, h - pad + 6), "0 s", fill=(0, 0, 0))
    d.text((w - 70, h - pad + 6), f"{ts[-1]:.0f} s", fill=(0, 0, 0))
    img.save(path)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--actions", type=int, default=200, help="mixed actions, shared between the clients")
    ap.add_argument("--edit-steps", type=int, default=10)
    ap.add_argument("--slider-clients", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--slider-requests", type=int, default=20, help="per client")
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--no-download", action="store_true", help="slider clients do not fetch the images")
    ap.add_argument("--level-mib", type=float, default=50.0)
    ap.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for the app process")
    ap.add_argument("--label")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    bundle = Path(args.model)
    if not bundle.is_dir():
        bundle = ROOT / "checkpoints" / args.model
    label = args.label or bundle.name
    cfg = json.loads((bundle / "config.json").read_text())
    res = cfg["generator"]["resolution"]
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    extra = dict(kv.split("=", 1) for kv in args.env)
    mask = str(write_target_mask(work / "mask.png", res, (res // 4, res // 2, 3 * res // 4, 3 * res // 4),
                                 (0, 200, 60)))  # fmt: skip

    proc, url = start_app(bundle, work, extra)
    sampler = RssSampler(proc.pid, args.every)
    sampler.start()
    marks = {"start": 0.0}
    try:
        mem_start = _mem_kib(proc.pid)
        from gradio_client import handle_file

        from core.editgan import EditGAN

        shape = EditGAN.load(bundle).latent_shape
        c = _client(url)
        vids = []
        for k in range(4):
            rng = np.random.default_rng(k)
            vf = VectorFile(delta=(0.3 * rng.standard_normal(shape)).astype(np.float32), model_id=cfg["model_id"],
                            edited_classes=(["hair", "lips", "glasses", "skin"][k],), name=f"bench direction {k}")  # fmt: skip
            path = work / f"v{k}.safetensors"
            vf.save(path)
            vids.append(int(c.predict(handle_file(str(path)), "", "bench", "public", api_name="/upload_vector")[1]))

        errors: list[str] = []
        counts: dict = {}
        per = [args.actions // args.clients + (1 if i < args.actions % args.clients else 0) for i in range(args.clients)]
        halves = []
        t_soak = time.perf_counter()
        for half in (0, 1):  # two halves, so that growth late in the run shows apart from warm-up
            share = [p // 2 + (p % 2 if half else 0) for p in per]
            threads = [threading.Thread(target=soak_client, args=(url, 10 * half + i, share[i], vids, mask,
                                                                   args.edit_steps, errors, counts))
                       for i in range(args.clients)]  # fmt: skip
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            halves.append(_mem_kib(proc.pid))
            marks[f"half {half + 1} done"] = round(time.perf_counter() - sampler.t0, 1)
        soak_s = time.perf_counter() - t_soak

        # what a person waits for when saving: a refusal (bad tag) and a save made transferable
        c.predict(5, api_name="/sample")
        c.predict(None, handle_file(mask), "optimization", 40, api_name="/edit")
        t = time.perf_counter()
        try:
            c.predict("bench save", "", "mouth, open mouth!", "public", True, api_name="/save_edit")
        except Exception:
            pass
        refused_s = time.perf_counter() - t
        t = time.perf_counter()
        c.predict("bench save", "", "mouth, open mouth", "public", True, api_name="/save_edit")
        save = {"refused_bad_tag_s": round(refused_s, 2), "transferable_save_s": round(time.perf_counter() - t, 1)}
        marks["save"] = round(time.perf_counter() - sampler.t0, 1)

        slider = {}
        for n in args.slider_clients:
            slider[f"{n}_clients"] = slider_load(url, proc.pid, vids[0], n, args.slider_requests, 0, mask,
                                                 args.edit_steps, not args.no_download)  # fmt: skip
            marks[f"slider {n}"] = round(time.perf_counter() - sampler.t0, 1)
        n = 8 if 8 in args.slider_clients else (args.slider_clients or [8])[-1]
        slider[f"{n}_clients_beside_an_edit"] = slider_load(url, proc.pid, vids[0], n, args.slider_requests, 1, mask,
                                                            args.edit_steps)  # fmt: skip
        marks["slider + edit"] = round(time.perf_counter() - sampler.t0, 1)
        mem_end = _mem_kib(proc.pid)
    finally:
        sampler.stop()
        proc.terminate()
        proc.wait(timeout=60)

    rss = [m for _, m in sampler.samples]
    growth_2nd = round(halves[1]["rss_mib"] - halves[0]["rss_mib"], 1)
    out = {
        "benchmark": "soak",
        "model": label,
        "model_id": cfg["model_id"],
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "app_env": extra,
        "soak": {"clients": args.clients, "actions": sum(counts.values()), "by_kind": counts,
                 "seconds": round(soak_s, 1), "errors": len(errors), "error_examples": errors[:5]},  # fmt: skip
        "rss_mib": {"after_start": mem_start["rss_mib"], "after_first_half": halves[0]["rss_mib"],
                    "after_second_half": halves[1]["rss_mib"], "end": mem_end["rss_mib"], "peak": max(rss),
                    "growth_in_second_half": growth_2nd,
                    "levels_off": growth_2nd < args.level_mib},  # fmt: skip
        "rss_over_time": sampler.samples[:: max(1, len(sampler.samples) // 400)],
        "save": save,
        "slider": slider,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(sampler.samples, marks, args.out / f"soak_{label}.png",
         f"{label}: {args.clients} clients, {out['soak']['actions']} actions, then slider load")  # fmt: skip
    write_result(args.out / f"soak_{label}.json", out)
    return out


if __name__ == "__main__":
    main()
