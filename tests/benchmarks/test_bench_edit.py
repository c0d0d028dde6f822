from benchmarks.bench_edit import PSNR_OK, _pick_sources


def _edit(seed, success, acc, psnr):
    return ({"seed": seed, "success": success, "changed_accuracy": acc, "psnr_outside": psnr}, f"vec{seed}", None)


def test_vector_sources_are_passing_edits_in_seed_order_then_the_closest():
    edits = [
        _edit(1000, False, 0.9, PSNR_OK - 1),  # high accuracy but spoils the outside: after every clean miss
        _edit(1001, True, 0.75, 33.0),
        _edit(1002, False, 0.6, 34.0),
        _edit(1003, True, 0.95, 31.0),
        _edit(1004, False, 0.65, 31.0),
    ]
    assert [e[0]["seed"] for e in _pick_sources(edits, 2)] == [1001, 1003]
    assert [e[0]["seed"] for e in _pick_sources(edits, 5)] == [1001, 1003, 1004, 1002, 1000]
    assert _pick_sources([], 3) == []


def test_every_rate_is_printed_beside_its_no_op_rate():
    from benchmarks.bench_edit import _summary, table

    def verdict(success, acc):
        return {"success": success, "changed_accuracy": acc, "kept_agreement": 1.0, "psnr_outside": 35.0,
                "oracle_iou": 0.8}  # fmt: skip

    s = _summary([verdict(True, 0.9), verdict(False, 0.2)], [verdict(False, 0.0)] * 2, [verdict(True, 0.6), verdict(False, 0.1)])
    assert (s["success_rate"], s["noop_success_rate"], s["random_step_success_rate"]) == (0.5, 0.0, 0.5)
    assert s["old_judge_noop_success_rate"] == 1.0  # the replaced judge passed these no-ops
    result = {"per_kind": {"smile": {"mode3": s, "transfer_mode1": s, "transfer_mode2": s}},
              **{f"overall_{k}_{r}": 0.5 for k in ("mode3", "transfer_mode1", "transfer_mode2")
                 for r in ("success_rate", "noop_success_rate")}}  # fmt: skip
    lines = table(result).splitlines()
    assert lines[0].count("no-op") == 3 and lines[2].startswith("| smile | 0.50 (2) | 0.00 | 0.50 |")


def test_vector_sources_are_the_clearest_passing_edits_not_the_first():
    """Issue #21: the first success in seed order can be a faint instance of the part (22 px of glasses)."""

    def edit(seed, success, clarity):
        return ({"seed": seed, "success": success, "changed_accuracy": 0.8, "psnr_outside": 33.0,
                 "clarity": clarity}, None, None)  # fmt: skip

    edits = [edit(1000, True, 22.0), edit(1001, False, 300.0), edit(1002, True, 180.5), edit(1003, True, 95.0)]
    assert [e[0]["seed"] for e in _pick_sources(edits, 2)] == [1002, 1003]
    assert [e[0]["seed"] for e in _pick_sources(edits, 4)] == [1002, 1003, 1000, 1001]  # a miss only after them
    assert [e[0]["seed"] for e in _pick_sources(edits, 2, by_clarity=False)] == [1000, 1002]  # before #21


def test_resume_keeps_the_kinds_of_a_run_with_the_same_settings_only(tmp_path):
    import json

    import pytest

    from benchmarks.bench_edit import RESUME_KEYS, _resumable

    settings = {k: f"value of {k}" for k in RESUME_KEYS}
    out = tmp_path / "edit.json"
    assert _resumable(out, settings) == {}  # nothing written yet
    out.write_text(json.dumps({**settings, "partial": "1 of 2 kinds", "per_kind": {"smile": {"mode3": {"n": 4}}}}))
    assert _resumable(out, settings) == {"smile": {"mode3": {"n": 4}}}
    with pytest.raises(SystemExit, match="faces"):
        _resumable(out, {**settings, "faces": {"n_edit": 20, "n_transfer": 50}})


def test_merge_combines_runs_of_the_same_settings_over_different_kinds(tmp_path):
    """Two processes, one per core, each over half the kinds: one result with the overall rates over both."""
    import json

    import pytest

    from benchmarks.bench_edit import RESUME_KEYS, main

    settings = {k: f"value of {k}" for k in RESUME_KEYS}

    def kind(n, rate):
        s = {"n": n, "success_rate": rate, "noop_success_rate": 0.0, "random_step_success_rate": 0.0}
        return {"mode3": s, "transfer_mode1": s, "transfer_mode2": {**s, "n": 0}}

    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "edit.json"
    a.write_text(json.dumps({**settings, "per_kind": {"smile": kind(4, 0.5)}, "overall_mode3_success_rate": 0.5}))
    b.write_text(json.dumps({**settings, "partial": "1 of 2 kinds", "per_kind": {"add_glasses": kind(2, 1.0)}}))
    merged = main(["--merge", str(a), str(b), "--out", str(out)])
    assert list(merged["per_kind"]) == ["smile", "add_glasses"]
    assert merged["overall_mode3_success_rate"] == round((4 * 0.5 + 2 * 1.0) / 6, 4)
    assert merged["overall_transfer_mode2_success_rate"] is None  # no case in either
    assert "b.json" in merged["partial"] and json.loads(out.read_text()) == merged
    with pytest.raises(SystemExit, match="more than one"):
        main(["--merge", str(a), str(a), "--out", str(out)])
    b.write_text(json.dumps({**settings, "faces": "other", "per_kind": {"add_glasses": kind(2, 1.0)}}))
    with pytest.raises(SystemExit, match="faces"):
        main(["--merge", str(a), str(b), "--out", str(out)])
    # PATH:KINDS takes only those kinds from a part
    b.write_text(json.dumps({**settings, "per_kind": {"add_glasses": kind(2, 1.0), "smile": kind(9, 0.0)}}))
    merged = main(["--merge", str(a), f"{b}:add_glasses", "--out", str(out)])
    assert list(merged["per_kind"]) == ["smile", "add_glasses"] and merged["per_kind"]["smile"]["mode3"]["n"] == 4
    with pytest.raises(SystemExit, match="holds no open_mouth"):
        main(["--merge", str(a), f"{b}:open_mouth", "--out", str(out)])


def test_merge_takes_kinds_judged_before_the_removal_rule_only_where_it_does_not_apply(tmp_path):
    import json

    import pytest

    from benchmarks.bench_edit import RESUME_KEYS, main

    old = {k: f"value of {k}" for k in RESUME_KEYS} | {"model_id": "m", "faces": {"n_edit": 2, "n_transfer": 3},
                                                        "criteria": {"changed_accuracy_min": 0.5}}  # fmt: skip
    new = old | {"criteria": {"changed_accuracy_min": 0.5, "removed_class_counts": True}}
    s = {"n": 2, "success_rate": 0.5, "noop_success_rate": 0.0, "random_step_success_rate": 0.0}
    kind = {"mode3": s, "transfer_mode1": s, "transfer_mode2": s}
    a, b, scope, out = (tmp_path / n for n in ("a.json", "b.json", "scope.json", "edit.json"))
    a.write_text(json.dumps(old | {"per_kind": {"smile": kind, "remove_glasses": kind}}))
    b.write_text(json.dumps(new | {"per_kind": {"remove_glasses": kind}}))
    none = {"cases": 2, "removing_a_class": 0, "classes_removed": []}
    some = {"cases": 2, "removing_a_class": 2, "classes_removed": ["glasses"]}
    scope.write_text(json.dumps({"model_id": "m", "n_edit": 2, "n_transfer": 3, "per_kind": {
        "smile": {"mode3_faces": none, "transfer_faces": none},
        "remove_glasses": {"mode3_faces": some, "transfer_faces": none}}}))  # fmt: skip
    with pytest.raises(SystemExit, match="removal-scope"):
        main(["--merge", str(b), f"{a}:smile", "--out", str(out)])
    merged = main(["--merge", str(b), f"{a}:smile", "--removal-scope", str(scope), "--out", str(out)])
    assert merged["criteria"]["removed_class_counts"] is True and list(merged["per_kind"]) == ["remove_glasses", "smile"]
    assert merged["judged_before_removal_rule"] == {"smile": str(a)}
    with pytest.raises(SystemExit, match="applies to remove_glasses"):  # the rule changes its verdicts
        main(["--merge", str(b), f"{a}:remove_glasses", "--removal-scope", str(scope), "--out", str(out)])
    scope.write_text(json.dumps({"model_id": "m", "n_edit": 20, "n_transfer": 3, "per_kind": {}}))
    with pytest.raises(SystemExit, match="not of"):
        main(["--merge", str(b), f"{a}:smile", "--removal-scope", str(scope), "--out", str(out)])


def test_a_small_run_records_the_edit_settings_it_used(tmp_path):
    """End to end on faces64 (one face per mode, two steps, plain vectors): the settings it reports are those it ran
    with, the model's edit defaults where no flag is given."""
    from benchmarks.bench_edit import main

    out = tmp_path / "edit.json"
    r = main(["--kinds", "open_mouth", "--n-edit", "1", "--n-transfer", "1", "--sources", "1", "--steps", "2",
              "--refine-steps", "1", "--transfer-samples", "0", "--skip-speed", "--threads", "1",
              "--change-share", "0.3", "--out", str(out)])  # fmt: skip
    assert r["edit_config"]["change_share"] == 0.3 and r["edit_config"]["w_kept"] == 10.0  # faces64's w_kept
    assert r["per_kind"]["open_mouth"]["mode3"]["n"] == 1
    assert r["per_kind"]["open_mouth"]["transfer_mode1"]["n"] == 1
