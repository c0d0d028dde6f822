from benchmarks.bench_edit import PSNR_OK, _pick_sources


def _edit(seed, success, iou, psnr):
    return ({"seed": seed, "success": success, "oracle_iou": iou, "psnr_outside": psnr}, f"vec{seed}", None)


def test_vector_sources_are_passing_edits_in_seed_order_then_the_closest():
    edits = [
        _edit(1000, False, 0.9, PSNR_OK - 1),  # high IoU but spoils the outside: after every clean miss
        _edit(1001, True, 0.75, 33.0),
        _edit(1002, False, 0.6, 34.0),
        _edit(1003, True, 0.95, 31.0),
        _edit(1004, False, 0.65, 31.0),
    ]
    assert [e[0]["seed"] for e in _pick_sources(edits, 2)] == [1001, 1003]
    assert [e[0]["seed"] for e in _pick_sources(edits, 5)] == [1001, 1003, 1004, 1002, 1000]
    assert _pick_sources([], 3) == []
