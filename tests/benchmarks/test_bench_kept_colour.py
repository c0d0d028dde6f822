"""benchmarks/bench_kept_colour.py on faces64, one face and two steps: each weight's verdicts, summary and picture."""

import json

from benchmarks.bench_kept_colour import main


def test_each_weight_is_judged_on_the_same_faces(tmp_path):
    out = tmp_path / "kept.json"
    r = main(["--kinds", "shorten_hair", "--n", "1", "--steps", "2", "--weights", "0,10", "--out", str(out)])
    runs = r["per_kind"]["shorten_hair"]
    assert list(runs) == ["w_kept=0", "w_kept=10"]
    seeds = [[e["seed"] for e in v["edits"]] for v in runs.values()]
    assert seeds[0] == seeds[1] and len(seeds[0]) == 1
    for v in runs.values():
        e = v["edits"][0]
        assert {"success", "changed_accuracy", "psnr_kept"} <= set(e) and v["n"] == 1
        assert (v["median_psnr_kept_db"] is None) == (e["psnr_kept"] is None)
    assert r["totals"]["w_kept=0"]["n"] == 1 and json.loads(out.read_text())["weights"] == [0.0, 10.0]
    assert out.with_suffix(".png").exists()
