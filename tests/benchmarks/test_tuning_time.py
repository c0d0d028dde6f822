"""The tuning-time benchmark times every setting on every photo and writes what it timed."""

import json

import benchmarks.tuning_time as tt
from core.testing import make_tiny_bundle


def test_every_setting_is_timed_and_recorded(tmp_path):
    out = tmp_path / "t.json"
    result = tt.main(["--model", str(make_tiny_bundle(tmp_path / "m")), "--images", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert set(result["settings"]) == set(tt.SETTINGS)
    plain, full = result["settings"]["plain_200"], result["settings"]["locality_branch_200"]
    assert plain["tune_locality"] == 0 and full["tune_locality"] > 0 and full["tune_w_branch"] > 0
    assert all(len(s["tune_seconds_each"]) == 1 and s["tune_seconds_mean"] > 0 for s in result["settings"].values())
