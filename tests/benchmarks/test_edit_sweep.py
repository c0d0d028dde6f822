"""benchmarks/edit_sweep.py on faces64, one face and two steps: settings over the model's defaults, paired verdicts."""

import json

import pytest

from benchmarks.edit_sweep import main


def test_each_setting_edits_the_same_faces_over_the_models_defaults(tmp_path):
    out = tmp_path / "sweep.json"
    r = main(["--kinds", "shorten_hair", "--n", "1", "--steps", "2", "--threads", "1", "--out", str(out),
              "--settings", '{"change_share": 0}', '{"change_share": 0.5, "lr": 0.05}'])  # fmt: skip
    a, b = r["settings"]
    assert a["setting"] == {"change_share": 0} and b["edit_config"]["lr"] == 0.05
    assert a["edit_config"]["w_kept"] == 10.0 and a["edit_config"]["steps"] == 2  # faces64's own default kept
    assert [e["seed"] for e in a["edits"]] == [e["seed"] for e in b["edits"]] and len(a["edits"]) == 1
    assert "paired" not in a and b["paired"]["edits"] == 1 and b["paired"]["gained"] + b["paired"]["lost"] <= 1
    assert json.loads(out.read_text())["settings"][1]["per_kind"]["shorten_hair"]["n"] == 1
    assert out.with_suffix(".png").exists()
    # a later run of one more setting, paired with the first run's reference setting
    later = main(["--kinds", "shorten_hair", "--n", "1", "--steps", "2", "--threads", "1", "--reference", str(out),
                  "--out", str(tmp_path / "later.json"), "--settings", '{"change_share": 0.5, "lr": 0.05}'])  # fmt: skip
    (c,) = later["settings"]
    assert c["paired"] == {"with": {"change_share": 0}, **{k: b["paired"][k] for k in ("edits", "gained", "lost")}}


@pytest.mark.parametrize("bad", ['{"no_such_field": 1}', "[1, 2]", "not json"])
def test_a_setting_that_is_not_editconfig_fields_is_refused(bad, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--settings", bad, "--out", str(tmp_path / "x.json")])
    assert "EditConfig" in capsys.readouterr().err
