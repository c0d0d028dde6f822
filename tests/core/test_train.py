import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from core.train.gan import GANTrainer, TrainConfig, parse_args

from .conftest import TINY  # noqa: F401  (importlib mode resolves the package-relative import)

ROOT = Path(__file__).resolve().parents[2]


def tiny_train_config(**kw) -> TrainConfig:
    base = dict(generator=TINY, iterations=4, batch_size=4, num_workers=0, ckpt_every=2, sample_every=0,
                log_every=1, d_reg_every=2)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_training_runs_logs_and_resumes(tmp_path):
    t = GANTrainer(tiny_train_config(), tmp_path)
    state = t.fit(progress=False)
    assert state.step == 4
    assert len(state.log) == 4 and all(torch.isfinite(torch.tensor(r["d_loss"])) for r in state.log)
    assert ["r1" in r for r in state.log] == [True, False, True, False]  # lazy R1 every 2nd step
    t2 = GANTrainer(tiny_train_config(iterations=6), tmp_path)
    assert t2.state.step == 4
    for a, b in zip(t.g_ema.parameters(), t2.g_ema.parameters()):
        assert torch.equal(a.cpu(), b.cpu())
    assert t2.fit(progress=False).step == 6


def test_a_time_budget_stops_early_with_a_checkpoint_that_resumes(tmp_path):
    t = GANTrainer(tiny_train_config(iterations=1000, ckpt_every=500, log_every=500), tmp_path)
    state = t.fit(progress=False, max_seconds=0.0)  # out of time after the first step
    assert state.step == 1 and [r["step"] for r in state.log] == [1]
    t2 = GANTrainer(tiny_train_config(iterations=3), tmp_path)  # the stop left a checkpoint
    assert t2.state.step == 1
    for a, b in zip(t.g.parameters(), t2.g.parameters()):
        assert torch.equal(a.cpu(), b.cpu())
    assert t2.fit(progress=False, max_seconds=3600).step == 3  # a budget not reached: the iterations end it
    assert [r["images"] for r in t2.state.log] == [4, 8, 12]
    t3 = GANTrainer(tiny_train_config(iterations=4, batch_size=2), tmp_path)  # a later sitting, another batch
    assert t3.fit(progress=False).log[-1] == {**t3.state.log[-1], "images": 14, "batch": 2}
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path), "--max-minutes", "0"])


def test_a_second_process_training_the_same_folder_is_refused_while_the_first_trains(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, sys, time
        f = open({str(tmp_path / ".train.lock")!r}, "a+")
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("pid 4242 (a stand-in sitting)\\n"); f.flush()
        print("held", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        t = GANTrainer(tiny_train_config(iterations=2), tmp_path)
        with pytest.raises(RuntimeError, match=r"being trained by another process \(pid 4242"):
            t.fit(progress=False)
        assert not (tmp_path / "optim.pt").exists()  # it wrote nothing
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert t.fit(progress=False).step == 2  # the folder is free again
    assert GANTrainer(tiny_train_config(iterations=3), tmp_path).fit(progress=False).step == 3  # and after a fit


def test_ema_generator_moves_towards_g(tmp_path):
    t = GANTrainer(tiny_train_config(iterations=2), tmp_path)
    before = [p.clone() for p in t.g_ema.parameters()]
    t.fit(progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, t.g_ema.parameters()))


def test_resume_refuses_another_architecture(tmp_path):
    GANTrainer(tiny_train_config(iterations=2), tmp_path).fit(progress=False)
    other = tiny_train_config(generator=TINY.__class__(**{**TINY.to_dict(), "style_dim": 16}))
    with pytest.raises(ValueError, match="another architecture"):
        GANTrainer(other, tmp_path)


def test_export_writes_a_loadable_model(tmp_path):
    from core.checkpoint import load_generator

    t = GANTrainer(tiny_train_config(iterations=1), tmp_path / "run")
    t.fit(progress=False)
    mid = t.export(tmp_path / "model")
    g = load_generator(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_id"] == mid
    assert g.config == TINY


def test_cli_flags_override_and_unknown_config_keys_fail(tmp_path):
    cfg, _ = parse_args(["--out", str(tmp_path), "--resolution", "32", "--batch-size", "8", "--augment", "true"])
    assert cfg.generator.resolution == 32 and cfg.batch_size == 8 and cfg.augment
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"iteratons": 3}))
    with pytest.raises(ValueError, match="iteratons"):
        parse_args(["--out", str(tmp_path), "--config", str(bad)])


def test_augmented_training_step_runs(tmp_path):
    t = GANTrainer(tiny_train_config(iterations=2, augment=True), tmp_path)
    assert t.fit(progress=False).step == 2


DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch, torch.distributed as dist
    from core.generator import GeneratorConfig
    from core.train.gan import GANTrainer, TrainConfig, shutdown_distributed
    gc = GeneratorConfig(resolution=16, style_dim=32, n_mlp=2, channel_base=256, channel_max=32, channel_multiplier=1)
    cfg = TrainConfig(generator=gc, iterations=3, batch_size=4, num_workers=0, ckpt_every=100, sample_every=0,
                      log_every=1, d_reg_every=2, device="cpu")
    t = GANTrainer(cfg, sys.argv[1])
    t.fit(progress=False)
    flat = torch.cat([p.detach().flatten() for p in list(t.g.parameters()) + list(t.d.parameters())])
    out = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(out, flat)
    # a time budget that runs out on rank 0 only: every rank stops at the same step
    import dataclasses
    t2 = GANTrainer(dataclasses.replace(cfg, iterations=50), sys.argv[1])
    t2.fit(progress=False, max_seconds=0.0 if dist.get_rank() == 0 else 3600.0)
    if dist.get_rank() == 0:
        json.dump({"world": dist.get_world_size(), "max_diff": max(float((o - out[0]).abs().max()) for o in out),
                   "step": t.state.step, "budget_step": t2.state.step}, open(sys.argv[2], "w"))
    shutdown_distributed()
    """
)


def test_ddp_two_cpu_ranks_agree(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    result = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(script), str(tmp_path / "run"), str(result)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(result.read_text())
    assert r["world"] == 2 and r["step"] == 3
    assert r["budget_step"] == 4  # rank 1 stopped with rank 0 (else the job would hang or fail)
    assert r["max_diff"] == 0.0
    assert (tmp_path / "run" / "g_ema.safetensors").exists()


def test_core_imports_no_web_or_db_framework():
    code = "import sys, core, core.generator, core.checkpoint, core.train.gan, core.data.faces, core.losses\n" \
           "bad = [m for m in ('gradio', 'sqlalchemy', 'fastapi') if m in sys.modules]\nassert not bad, bad"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_compact_export_and_warm_start(tmp_path):
    from core.checkpoint import load_generator

    t = GANTrainer(tiny_train_config(iterations=3), tmp_path / "run")
    t.fit(progress=False)
    mid = t.export(tmp_path / "model")
    files = {p.name for p in (tmp_path / "model" / "training").iterdir()}
    assert files == {"g.safetensors", "d.safetensors", "state.json", "log.jsonl"}
    g = load_generator(tmp_path / "model")
    assert g.style[1].weight.dtype == torch.float32  # stored as float16, loaded as float32
    torch.testing.assert_close(g.style[1].weight, t.g_ema.style[1].weight.cpu(), rtol=1e-3, atol=1e-3)
    t2 = GANTrainer(tiny_train_config(iterations=5, batch_size=2), tmp_path / "fresh_run", init_from=tmp_path / "model")
    assert t2.state.step == 3 and len(t2.state.log) == 3
    for r in t2.state.log:  # a log from before records counted images: the sitting counts on from 3 steps of 4
        r.pop("images"), r.pop("batch")
    assert t2.fit(progress=False).step == 5 and t2.state.log[-1]["images"] == 3 * 4 + 2 * 2
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model_id"] == mid
    with pytest.raises(ValueError, match="state.json"):
        GANTrainer(tiny_train_config(), tmp_path / "other", init_from=tmp_path / "run")


def _weights(t: GANTrainer) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.detach().cpu().clone() for name, m in (("g", t.g), ("d", t.d), ("g_ema", t.g_ema))
            for k, v in m.state_dict().items()}  # fmt: skip


def test_two_half_sittings_through_an_exact_export_equal_one_whole_run(tmp_path):
    """Exact training state: float32 G, D and EMA, both Adam optimisers and the random states, so a sitting
    continued with --init-from ends with the same weights, bit for bit, as one run of all the steps."""
    whole = GANTrainer(tiny_train_config(iterations=6), tmp_path / "whole")
    whole.fit(progress=False)
    first = GANTrainer(tiny_train_config(iterations=3), tmp_path / "first")
    first.fit(progress=False)
    first.export(tmp_path / "model", training_state="exact")
    files = {p.name for p in (tmp_path / "model" / "training").iterdir()}
    assert files == {"g.safetensors", "d.safetensors", "g_ema.safetensors", "g_opt.safetensors", "d_opt.safetensors",
                     "rng.safetensors", "state.json", "log.jsonl"}  # fmt: skip
    second = GANTrainer(tiny_train_config(iterations=6), tmp_path / "second", init_from=tmp_path / "model")
    assert second.state.step == 3
    second.fit(progress=False)
    a, b = _weights(whole), _weights(second)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    # the compact state (float16, no moments) continues too, but not exactly: the test can tell them apart
    first.export(tmp_path / "compact", training_state="compact")
    approx = GANTrainer(tiny_train_config(iterations=6), tmp_path / "approx", init_from=tmp_path / "compact")
    approx.fit(progress=False)
    assert any(not torch.equal(a[k], v) for k, v in _weights(approx).items())


def test_a_resumed_run_folder_continues_exactly(tmp_path):
    whole = GANTrainer(tiny_train_config(iterations=4, ckpt_every=100), tmp_path / "whole")
    whole.fit(progress=False)
    half = GANTrainer(tiny_train_config(iterations=2, ckpt_every=100), tmp_path / "half")
    half.fit(progress=False)  # ends with a checkpoint of step 2
    rest = GANTrainer(tiny_train_config(iterations=4, ckpt_every=100), tmp_path / "half")
    rest.fit(progress=False)
    a, b = _weights(whole), _weights(rest)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_exact_state_with_a_missing_part_is_refused_before_any_work(tmp_path):
    t = GANTrainer(tiny_train_config(iterations=1), tmp_path / "run")
    t.fit(progress=False)
    t.export(tmp_path / "model", training_state="exact")
    (tmp_path / "model" / "training" / "d_opt.safetensors").unlink()
    with pytest.raises(ValueError, match="without d_opt.safetensors"):
        GANTrainer(tiny_train_config(), tmp_path / "other", init_from=tmp_path / "model")
    with pytest.raises(ValueError, match="training_state must be"):
        t.export(tmp_path / "x", training_state="full")


def test_device_data_draws_the_loaders_faces_and_resumes_on_the_same_batch():
    from core.train.gan import FaceBatches, device_batches

    loader = iter(FaceBatches(16, 3, 4, start_batch=1, rank=0, world=1))
    dev = device_batches(16, 3, 4, start_batch=1, rank=0, world=1, device=torch.device("cpu"))
    a, b = next(loader), next(dev)
    assert a.shape == b.shape == (4, 3, 16, 16)
    diff = (a - b).abs().mul(127.5)  # the same faces; only the film grain is drawn differently
    assert diff.mean() < 8 and diff.max() > 0
    again = next(device_batches(16, 3, 4, start_batch=1, rank=0, world=1, device=torch.device("cpu")))
    assert torch.equal(b, again)


def test_device_data_path_trains_and_resumes_exactly_and_bad_data_settings_are_refused(tmp_path):
    import threading

    from core.data.prefetch import THREAD_NAME

    whole = GANTrainer(tiny_train_config(iterations=3, data="device", ckpt_every=100), tmp_path / "whole")
    whole.fit(progress=False)
    assert not any(t.name == THREAD_NAME for t in threading.enumerate())  # fit's stream closed its prefetch thread
    GANTrainer(tiny_train_config(iterations=2, data="device", ckpt_every=100), tmp_path / "half").fit(progress=False)
    rest = GANTrainer(tiny_train_config(iterations=3, data="device", ckpt_every=100), tmp_path / "half")
    rest.fit(progress=False)
    a, b = _weights(whole), _weights(rest)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="data must be one of"):
        GANTrainer(tiny_train_config(data="gpu"), tmp_path / "x")
    with pytest.raises(ValueError, match="16 px or more"):
        GANTrainer(tiny_train_config(generator=TINY.__class__(**{**TINY.to_dict(), "resolution": 8})), tmp_path / "y")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            GANTrainer(tiny_train_config(device="cuda"), tmp_path / "z")
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()


def test_prefetched_device_batches_are_the_same_batches_across_a_resume_and_the_thread_ends_on_close():
    import threading

    from core.data.prefetch import THREAD_NAME
    from core.train.gan import device_batches

    cpu = torch.device("cpu")
    plain = device_batches(16, 3, 4, start_batch=0, rank=0, world=1, device=cpu, prefetch=0)
    ahead = device_batches(16, 3, 4, start_batch=0, rank=0, world=1, device=cpu, prefetch=2)
    expected = [next(plain) for _ in range(5)]
    assert all(torch.equal(e, next(ahead)) for e in expected)
    resumed = device_batches(16, 3, 4, start_batch=2, rank=0, world=1, device=cpu, prefetch=2)
    assert all(torch.equal(e, next(resumed)) for e in expected[2:])
    assert sum(t.name == THREAD_NAME for t in threading.enumerate()) == 2
    ahead.close()
    resumed.close()
    assert not any(t.name == THREAD_NAME for t in threading.enumerate())


def test_a_prefetcher_keeps_order_raises_the_threads_error_and_stops():
    from core.data.prefetch import Prefetcher

    assert list(Prefetcher(iter(range(7)), depth=2)) == list(range(7))

    def failing():
        yield 1
        raise RuntimeError("bad draw")

    p = Prefetcher(failing())
    assert next(p) == 1
    with pytest.raises(RuntimeError, match="bad draw"):
        next(p)
    endless = Prefetcher(iter(lambda: 0, None), depth=1)
    assert next(endless) == 0
    endless.close()
    assert not endless.alive
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(iter(()), depth=0)
    import gc
    import threading

    from core.data.prefetch import THREAD_NAME

    dropped = Prefetcher(iter(lambda: 0, None), depth=1)
    thread = next(t for t in threading.enumerate() if t.name == THREAD_NAME)
    del dropped
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_named_recipes_and_the_recipe_flag():
    from core.train.recipes import ARCHITECTURES, RECIPES, recipe

    assert RECIPES["faces128"].generator == ARCHITECTURES["faces128"]
    assert ARCHITECTURES["faces128"].resolution == 128 and ARCHITECTURES["faces128"].channels(128) == 16
    # the faces64 recipe is the shipped model's own training config
    shipped = json.loads((Path(__file__).resolve().parents[2] / "checkpoints/faces64/training/state.json").read_text())
    assert RECIPES["faces64"].generator == TrainConfig.from_dict(shipped["train_config"]).generator
    assert recipe("faces128", batch_size=4).batch_size == 4 and RECIPES["faces128"].batch_size == 64
    with pytest.raises(ValueError, match="unknown recipe 'faces256'"):
        recipe("faces256")
    cfg, _ = parse_args(["--out", "x", "--recipe", "faces128", "--batch-size", "3"])
    assert cfg.generator == ARCHITECTURES["faces128"] and cfg.batch_size == 3
    for bad in (["--recipe", "faces256"], ["--recipe", "faces64", "--config", "c.json"]):
        with pytest.raises(SystemExit):
            parse_args(["--out", "x", *bad])


def test_host_worker_processes_make_the_same_batches_in_order_and_end_on_close(tmp_path):
    import multiprocessing

    from core.train.gan import device_batches

    cpu = torch.device("cpu")
    plain = device_batches(16, 3, 4, start_batch=0, rank=0, world=1, device=cpu, prefetch=0)
    expected = [next(plain) for _ in range(7)]
    workers = device_batches(16, 3, 4, start_batch=0, rank=0, world=1, device=cpu, host_workers=3)
    assert all(torch.equal(e, next(workers)) for e in expected)  # three workers taken in turn: still in order
    resumed = device_batches(16, 3, 4, start_batch=3, rank=0, world=1, device=cpu, host_workers=2)
    assert all(torch.equal(e, next(resumed)) for e in expected[3:])
    assert len(multiprocessing.active_children()) >= 5
    workers.close()
    resumed.close()
    deadline = __import__("time").time() + 10
    while multiprocessing.active_children() and __import__("time").time() < deadline:
        __import__("time").sleep(0.1)
    assert not multiprocessing.active_children()
    with pytest.raises(ValueError, match="host_workers and prefetch must be >= 0"):
        next(device_batches(16, 3, 4, 0, 0, 1, cpu, host_workers=-1))
    with pytest.raises(ValueError, match="host_workers and num_workers must be >= 0"):
        GANTrainer(TrainConfig(generator=TINY, host_workers=-2, device="cpu"), tmp_path / "run")
    # a run with host workers trains and resumes on the batches one thread would give
    cfg = TrainConfig(generator=TINY, batch_size=2, iterations=2, data="device", host_workers=2, device="cpu",
                      sample_every=0, ckpt_every=1, log_every=1)  # fmt: skip
    GANTrainer(cfg, tmp_path / "hw").fit(progress=False)
    assert json.loads((tmp_path / "hw" / "log.jsonl").read_text().splitlines()[-1])["step"] == 2
