import json

import pytest
import torch
from safetensors.torch import save_file

from core.checkpoint import load_generator, model_id_of, save_generator
from core.generator import Generator


def test_round_trip_is_bit_identical(tiny_generator, tmp_path):
    mid = save_generator(tiny_generator, tmp_path / "m", extra={"name": "tiny"})
    g2 = load_generator(tmp_path / "m")
    w = tiny_generator.sample_w_plus(0)
    with torch.no_grad():
        assert torch.equal(tiny_generator(w).image, g2(w).image)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_id"] == mid and cfg["name"] == "tiny"
    assert torch.equal(g2.w_avg, tiny_generator.w_avg)


def test_model_id_is_a_content_hash(tiny_generator):
    sd = tiny_generator.state_dict()
    a = model_id_of(sd)
    assert a == model_id_of({k: v.clone() for k, v in sd.items()})
    sd2 = {k: v.clone() for k, v in sd.items()}
    sd2["style.1.bias"][0] += 1e-3
    assert model_id_of(sd2) != a
    assert len(a) == 16 and int(a, 16) >= 0


def test_unknown_config_key_is_named(tiny_generator, tmp_path):
    save_generator(tiny_generator, tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["generator"]["chanel_max"] = 3
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="chanel_max"):
        load_generator(tmp_path / "m")


def test_wrong_shapes_in_folder_are_named(tiny_generator, tmp_path):
    save_generator(tiny_generator, tmp_path / "m")
    sd = dict(tiny_generator.state_dict())
    sd["input.input"] = torch.zeros(1, 7, 4, 4)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "m" / "generator.safetensors"))
    with pytest.raises(ValueError, match=r"input\.input: shape \[1, 7, 4, 4\]"):
        load_generator(tmp_path / "m")


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ValueError, match="not a model folder"):
        load_generator(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "generator.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="generator"):
        load_generator(tmp_path)


def test_truncated_weights_file(tiny_generator, tmp_path):
    save_generator(tiny_generator, tmp_path / "m")
    f = tmp_path / "m" / "generator.safetensors"
    f.write_bytes(f.read_bytes()[:500])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_generator(tmp_path / "m")


def test_check_leaves_model_untouched_on_failure(tiny_generator):
    from core.checkpoint import check_state_dict

    before = {k: v.clone() for k, v in tiny_generator.state_dict().items()}
    bad = {k: torch.zeros_like(v) for k, v in before.items()}
    bad.pop("style.1.weight")
    with pytest.raises(ValueError, match=r"missing keys \['style\.1\.weight'\]"):
        check_state_dict(tiny_generator, bad)
    assert all(torch.equal(before[k], v) for k, v in tiny_generator.state_dict().items())
    assert isinstance(tiny_generator, Generator)
