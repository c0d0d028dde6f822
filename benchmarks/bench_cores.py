"""Do concurrent slider updates scale with the cores the app is given? (issue #20, point 11)

The slider benchmarks so far (bench_app, bench_soak) drive the app with gradio_client, whose client processes
cost the machine more per update than the app does: on two cores the clients, not the app, were what saturated
it. Here the clients are cheap: each session is set up once with gradio_client (a sample, so the session has an
image), the request it sends for ``/apply`` is recorded, and then replayed by hand over plain HTTP (stdlib
``http.client``: the queue's join POST, its event stream read up to the completion, the result image fetched as
a browser would). Their CPU time per update is measured and reported beside the app's.

Each run gives the app a set of cores (``taskset``) in one of two layouts (``--layouts``): one process on
them ("0-1"), or one replica per core ("0|1": separate processes, the sessions spread over them and each
kept on its own, as a load balancer with session affinity keeps a browser tab on its replica; the
balancer's own cost is not included). ``--clients`` concurrent sessions each send ``--updates`` slider
moves back to back; throughput (updates/s), latency (p50, p95) and the app's CPU per update are recorded.
Scaling with cores means the throughput grows with them while the CPU per update stays put.

    python -m benchmarks.bench_cores --model checkpoints/faces64      # 0, 0-1, 0|1 with 8 clients

Writes benchmarks/results/cores_<label>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.testing import free_port  # noqa: E402
from benchmarks.results_io import write_result  # noqa: E402
from core.vector_format import VectorFile  # noqa: E402

MARK = 0.123456  # the scale the recorded request carries, found again in its payload and replaced


def _pcts(xs: list[float]) -> dict:
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "p50_ms": round(q(0.5) * 1e3, 1), "p95_ms": round(q(0.95) * 1e3, 1),
            "mean_ms": round(statistics.mean(xs) * 1e3, 1)}  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime of the process


class SliderSession:
    """One browser-like session: a gradio_client sets it up and records the /apply request; replays are raw HTTP."""

    def __init__(self, url: str, vector_id: int, seed: int) -> None:
        from gradio_client import Client

        self.host, self.port = re.match(r"http://([^:/]+):(\d+)", url).groups()
        client = Client(url, verbose=False, download_files=False)
        client.predict(seed, api_name="/sample")
        recorded = {}
        send = client.send_data

        def record(data, hash_data, protocol, request_headers):
            recorded.update(data=data, hash_data=hash_data)
            return send(data, hash_data, protocol, request_headers)

        client.send_data = record
        client.predict(vector_id, MARK, api_name="/apply")
        client.send_data = send
        self.payload = {**recorded["data"], **recorded["hash_data"]}
        self.scale_at = [i for i, v in enumerate(self.payload["data"]) if v == MARK]
        if len(self.scale_at) != 1:
            raise RuntimeError(f"could not find the slider value in the recorded request: {self.payload['data']}")
        self.session_hash = self.payload["session_hash"]
        self.client = client  # kept: closing it would end the session on the server

    def update(self, scale: float) -> float:
        """One slider move: join, wait for the completion on the event stream, fetch the image. Returns seconds."""
        t = time.perf_counter()
        body = dict(self.payload, data=list(self.payload["data"]))
        body["data"][self.scale_at[0]] = scale
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=120)
        conn.request("POST", "/gradio_api/queue/join", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"join: HTTP {resp.status} {resp.read()[:200]!r}")
        event_id = json.loads(resp.read())["event_id"]
        conn.request("GET", f"/gradio_api/queue/data?session_hash={self.session_hash}")
        stream = conn.getresponse()
        output = None
        while output is None:
            line = stream.fp.readline()
            if not line:
                raise RuntimeError("the event stream ended before the update completed")
            if not line.startswith(b"data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                if not msg.get("success", False):
                    raise RuntimeError(f"update failed: {msg.get('output')}")
                output = msg["output"]
        conn.close()
        image = next((v for v in output["data"] if isinstance(v, dict) and v.get("url")), None)
        if image is not None:  # the browser fetches the new image
            with urllib.request.urlopen(image["url"], timeout=60) as r:
                r.read()
        return time.perf_counter() - t


def _start_app(bundle: str, cores: str, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, EDITGAN_MODEL=bundle, EDITGAN_DATA_DIR=str(work / "data"), GRADIO_ANALYTICS_ENABLED="False",
               EDITGAN_QUEUE_SIZE="256")  # fmt: skip
    env.pop("EDITGAN_DATABASE_URL", None)
    cmd = ["taskset", "-c", cores, sys.executable, "app.py", "--port", str(port), "--local-user", "bench"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise SystemExit(f"the app did not start (exit {proc.poll()})")
            time.sleep(0.3)


def _publish(url: str, bundle: str, work: Path) -> int:
    from gradio_client import Client, handle_file

    from core.editgan import EditGAN

    model = EditGAN.load(bundle)
    rng = np.random.default_rng(0)
    vf = VectorFile(delta=(0.3 * rng.standard_normal(model.latent_shape)).astype(np.float32),
                    model_id=model.model_id, edited_classes=("hair",), name="bench direction")  # fmt: skip
    path = work / "bench.safetensors"
    vf.save(path)
    c = Client(url, verbose=False)
    _, vid = c.predict(handle_file(str(path)), "", "bench", "public", api_name="/upload_vector")
    return int(vid)


def _n_cores(cpus: str) -> int:
    """How many cores a taskset list names: "0" -> 1, "0-3" -> 4, "0,2" -> 2."""
    n = 0
    for part in cpus.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def run_layout(bundle: str, layout: str, clients: int, updates: int, work: Path) -> dict:
    """One run: ``layout`` is the app's cores ("0-1": one process on cores 0 and 1) or several replicas, one
    process each, "|"-separated ("0|1": two processes, one core each). Sessions are spread over the replicas
    round robin and stay on theirs, as a load balancer with session affinity would keep them."""
    apps = [_start_app(bundle, cpus, work / f"app-{i}-{cpus}") for i, cpus in enumerate(layout.split("|"))]
    try:
        vids = [_publish(url, bundle, work) for _, url in apps]
        sessions = [SliderSession(apps[i % len(apps)][1], vids[i % len(apps)], 100 + i) for i in range(clients)]
        for s in sessions:  # warm every session (and the apps' pools) untimed
            s.update(0.5)
        times: list[list[float]] = [[] for _ in sessions]
        errors: list[str] = []

        def drive(i: int) -> None:
            try:
                for scale in np.linspace(-1.0, 1.5, updates):
                    times[i].append(sessions[i].update(float(round(scale, 3))))
            except Exception as e:  # reported in the result
                errors.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(clients)]
        app0, me0, t0 = sum(_cpu_seconds(p.pid) for p, _ in apps), time.process_time(), time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        app_cpu, client_cpu = sum(_cpu_seconds(p.pid) for p, _ in apps) - app0, time.process_time() - me0
    finally:
        for p, _ in apps:
            p.terminate()
        for p, _ in apps:
            p.wait(timeout=30)
    done = [x for t in times for x in t]
    return {
        "layout": layout, "replicas": len(apps), "n_cores": sum(_n_cores(c) for c in layout.split("|")),
        "clients": clients, "updates": len(done), "errors": errors,
        **_pcts(done),
        "throughput_per_s": round(len(done) / wall, 2),
        "app_cpu_ms_per_update": round(1e3 * app_cpu / max(len(done), 1), 1),
        "app_cores_busy": round(app_cpu / wall, 2),
        "client_cpu_ms_per_update": round(1e3 * client_cpu / max(len(done), 1), 1),
    }  # fmt: skip


def main(argv: Optional[list[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="checkpoints/faces64")
    ap.add_argument("--layouts", nargs="*",
                    help="one run each: the app's taskset cores ('0-1'), or one replica per '|'-separated core list "
                         "('0|1'); default: 0, 0-1, 0|1 (and 0-3, 0|1|2|3 ... where the machine has the cores)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--updates", type=int, default=25, help="slider moves per client")
    ap.add_argument("--label")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    n = os.cpu_count() or 1
    layouts = args.layouts or ["0"] + [x for k in (2, 4, 8, 16) if k <= n
                                       for x in (f"0-{k - 1}", "|".join(str(i) for i in range(k)))]  # fmt: skip
    label = args.label or Path(args.model).name
    result = {
        "benchmark": "cores", "model": args.model,
        "command": "python -m benchmarks.bench_cores " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": n, "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": list(os.getloadavg())},
        "runs": [],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-cores-") as tmp:
        for layout in layouts:
            row = run_layout(args.model, layout, args.clients, args.updates, Path(tmp))
            result["runs"].append(row)
            print(json.dumps(row), flush=True)
    base = result["runs"][0]["throughput_per_s"]
    for row in result["runs"]:
        row["throughput_vs_first"] = round(row["throughput_per_s"] / base, 2) if base else None
    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    write_result(args.out / f"cores_{label}.json", result)
    return result


if __name__ == "__main__":
    main()
