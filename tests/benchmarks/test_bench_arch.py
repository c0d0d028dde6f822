"""benchmarks/bench_arch.py on one architecture, tiny repetitions: every figure measured and judged."""

import json

from benchmarks.bench_arch import main


def test_one_architecture_is_timed_against_the_targets(tmp_path):
    out = tmp_path / "arch.json"
    res = main(["--archs", "faces64", "--runs", "1", "--reps", "3", "--steps", "2", "--out", str(out)])
    row = json.loads(out.read_text())["archs"]["faces64"]
    assert row == res["archs"]["faces64"]
    assert row["branch_layers"] == [6, 7, 8, 9]  # the shipped branch reads the 32 and 64 px maps
    for key in ("forward_ms_p50", "vector_apply_ms_p95", "render_with_mask_ms_p95", "edit_2_steps_seconds"):
        assert row[key] > 0, key
    assert row["region_pixels"] > 0 and row["meets_targets"] is None  # judged at 30 steps only
