"""scripts/gpu_train128.sh's CPU dry run (tiny budget): a faces128 sitting from scratch, a second one continuing
it, both packed within the device's return limits; refused starting points leave nothing behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20
DRY = {"DEVICE": "cpu", "THREADS": "1", "GAN_MINUTES": "0.01", "BATCH": "2", "HOST_WORKERS": "1", "ORACLE_IMAGES": "64",
       "ORACLE_WIDTH": "4", "ORACLE_EPOCHS": "1", "ORACLE_TEST": "8", "ORACLE_S": "120", "BENCH_SIZES": "16",
       "BENCH_BATCHES": "2", "BENCH_STEPS": "1", "BENCH_S": "120",
       "BENCH_WORKERS": "1", "BENCH_HOST_WORKERS": "1"}  # fmt: skip


def _sitting(out: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, **DRY, "PYTHON": sys.executable, "OUT": str(out), **env}
    return subprocess.run(["bash", "scripts/gpu_train128.sh"], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _unpack(out: Path, into: Path) -> Path:
    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * MIB for f in files), [(f.name, f.stat().st_size) for f in files]
    assert sum(f.stat().st_size for f in files) <= 64 * MIB
    parts = sorted(str(p) for p in out.glob("sitting.tar.part-*"))
    assert parts, [f.name for f in files]
    into.mkdir()
    subprocess.run(f"cat {' '.join(parts)} | tar -x -C {into}", shell=True, check=True)
    return into


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp("out1")
    proc = _sitting(out, ORACLE="always", BENCH="always")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _unpack(out, tmp_path_factory.mktemp("s1") / "pack")


def test_sitting_from_scratch_exports_a_faces128_model_and_an_oracle(first):
    from benchmarks.oracle import load_oracle
    from core.editgan import EditGAN
    from core.train.recipes import ARCHITECTURES

    model = EditGAN.load(first / "faces128")
    assert model.resolution == 128 and model.branch is None
    assert model.generator.config == ARCHITECTURES["faces128"]
    state = json.loads((first / "faces128" / "training" / "state.json").read_text())
    assert state["kind"] == "compact" and state["step"] >= 1 and state["train_config"]["batch_size"] == 2
    oracle = load_oracle(128, first / "oracle", resample=False)
    assert oracle.config.resolution == 128 and oracle.description == "oracle128"
    assert json.loads((first / "oracle" / "oracle128_eval.json").read_text())["eval"]["test_images"] == 8
    bench = json.loads((first / "bench_train_cuda.json").read_text())
    assert [(r["resolution"], r["batch"], r["new_host_workers"]) for r in bench["train"]] == [(16, 2, 1)]


def test_second_sitting_continues_the_first(first, tmp_path):
    out = tmp_path / "out2"
    proc = _sitting(out, ORACLE="never", BENCH="never", INIT=str(first / "faces128"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pack = _unpack(out, tmp_path / "s2")
    before = json.loads((first / "faces128" / "training" / "state.json").read_text())["step"]
    after = json.loads((pack / "faces128" / "training" / "state.json").read_text())["step"]
    assert after > before
    assert not (pack / "oracle").exists()


def test_refused_starting_points_leave_no_result(tmp_path):
    from core.testing import TINY_GENERATOR
    from core.train.gan import GANTrainer, TrainConfig

    other = tmp_path / "other"
    tiny = GANTrainer(TrainConfig(generator=TINY_GENERATOR, batch_size=2, device="cpu"), tmp_path / "run")
    tiny.export(other)
    for init, says in ((other, "another architecture"), (tmp_path / "empty", "no training/state.json")):
        out = tmp_path / f"out-{init.name}"
        proc = _sitting(out, ORACLE="never", BENCH="never", INIT=str(init))
        assert proc.returncode != 0 and says in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert not list(out.glob("sitting.tar.part-*"))
    proc = _sitting(tmp_path / "out-bad", ORACLE="sometimes")
    assert proc.returncode == 2 and "ORACLE must be" in proc.stdout + proc.stderr
