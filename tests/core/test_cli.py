import json

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.data.palette import PALETTE
from core.testing import make_tiny_bundle
from core.vector_format import VectorFile


@pytest.fixture
def bundle(tmp_path):
    return make_tiny_bundle(tmp_path / "model")


def test_sample_edit_apply_batch(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--model", str(bundle), "sample", "--seed", "1", "--out", str(out)]) == 0
    assert (out / "sample_1.png").exists() and (out / "sample_1_mask.png").exists()
    painted = np.zeros((16, 16, 4), np.uint8)
    painted[4:9, 4:9, :3] = PALETTE[9]  # lips
    painted[4:9, 4:9, 3] = 255
    Image.fromarray(painted, "RGBA").save(tmp_path / "paint.png")
    vec = tmp_path / "v.safetensors"
    rc = main(["--model", str(bundle), "edit", "--seed", "1", "--target-mask", str(tmp_path / "paint.png"),
               "--steps", "3", "--out", str(out), "--save-vector", str(vec), "--name", "lips",
               "--transfer-samples", "2", "--transfer-steps", "2"])  # fmt: skip
    assert rc == 0 and vec.exists() and (out / "after.png").exists() and (out / "target_mask.png").exists()
    saved = VectorFile.load(vec)
    assert saved.metrics["transfer_samples"] == 2  # made transferable before saving
    assert "calibrated_scale" in saved.metrics and saved.metrics["calibration_faces"] >= 0  # and its strength set
    raw = tmp_path / "raw.safetensors"
    assert main(["--model", str(bundle), "edit", "--seed", "1", "--target-mask", str(tmp_path / "paint.png"),
                 "--steps", "3", "--out", str(out), "--save-vector", str(raw), "--transfer-samples", "2",
                 "--transfer-steps", "2", "--no-calibrate"]) == 0  # fmt: skip
    unscaled = VectorFile.load(raw)
    assert "calibrated_scale" not in unscaled.metrics
    assert np.allclose(saved.delta, unscaled.delta * saved.metrics["calibrated_scale"], atol=1e-6)
    plain = tmp_path / "plain.safetensors"
    assert main(["--model", str(bundle), "edit", "--seed", "1", "--target-mask", str(tmp_path / "paint.png"),
                 "--steps", "3", "--out", str(out), "--save-vector", str(plain), "--transfer-samples", "0"]) == 0  # fmt: skip
    assert "transfer_samples" not in VectorFile.load(plain).metrics
    capsys.readouterr()
    assert main(["--model", str(bundle), "apply", "--seed", "2", "--vector", f"{vec}:0.5", "--refine", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    assert (out / "applied.png").exists()
    capsys.readouterr()  # --model after the command works too; a scale beyond the vector's range is warned about
    assert main(["apply", "--model", str(bundle), "--seed", "2", "--vector", f"{vec}:50", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "outside its range" in json.loads(captured.out)["warnings"][0] and "warning:" in captured.err
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(photos / "a.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert main(["--model", str(bundle), "batch", "--input-dir", str(photos), "--vector", str(vec),
                 "--embed-steps", "1", "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert res["edited"] == 1 and "broken.jpg" in res["failed"]
    assert Image.open(tmp_path / "b" / "a_edited.png").size == (40, 30)


def test_errors_are_messages_not_tracebacks(bundle, tmp_path, capsys):
    bad = np.zeros((16, 16, 3), np.uint8)
    bad[0, 0] = (128, 128, 0)
    Image.fromarray(bad).save(tmp_path / "bad.png")
    assert main(["--model", str(bundle), "edit", "--target-mask", str(tmp_path / "bad.png"), "--out", str(tmp_path)]) == 2
    assert "not in the class palette" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "nope"), "sample", "--out", str(tmp_path)]) == 2
    assert "no model folder" in capsys.readouterr().err
    (tmp_path / "nan.safetensors").write_bytes(b"\x00" * 20)
    assert main(["--model", str(bundle), "apply", "--vector", str(tmp_path / "nan.safetensors"), "--out", str(tmp_path)]) == 2


def test_reader_is_trained_exported_and_loaded(tmp_path, capsys):
    from core.editgan import EditGAN
    from core.train.branch import main as train_main

    folder = make_tiny_bundle(tmp_path / "m", reader=False)
    assert EditGAN.load(folder).reader is None
    train_main(["--model", str(folder), "--reader-only", "--export", "--n-images", "2", "--teacher-steps", "2",
                "--teacher-ensemble", "2", "--reader-samples", "3"])  # fmt: skip
    model = EditGAN.load(folder, require=("reader",))
    assert len(model.reader.members) == 2 and model.reader.config.unet.resolution == 16
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["reader_training"]["labelled_images"] == 2 and cfg["reader_training"]["branch_labelled_samples"] == 3
    cfg["reader"]["unet"]["num_classes"] = 5
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="into 5 classes"):
        EditGAN.load(folder)
    cfg["reader"] = {"members": 2}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="reader config must be"):
        EditGAN.load(folder)


def test_branch_trainer_exports_the_branch_and_a_reader_learnt_beside_it(tmp_path):
    from core.editgan import EditGAN
    from core.train.branch import main as train_main

    folder = make_tiny_bundle(tmp_path / "m", reader=False)
    before = (folder / "branch.safetensors").read_bytes()
    train_main(["--model", str(folder), "--export", "--n-images", "2", "--steps", "2", "--teacher-steps", "2",
                "--teacher-samples", "2", "--embed-steps", "1", "--ensemble", "1", "--hidden", "8",
                "--images-per-step", "1", "--pixels-per-image", "16", "--reader-samples", "3", "--max-recon-error", "0",
                "--teacher-min-confidence", "0"])  # fmt: skip
    model = EditGAN.load(folder, require=("branch", "reader"))
    assert (folder / "branch.safetensors").read_bytes() != before and len(model.reader.members) == 2
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["branch_training"]["labelled_images"] == 2 + 2  # the labelled images and the teachers' samples
    assert cfg["reader_training"]["labelled_images"] == 2 and cfg["reader_training"]["branch_labelled_samples"] == 3


def test_a_photo_is_edited_on_the_generator_tuned_to_it(bundle, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(photo)
    painted = np.zeros((16, 16, 4), np.uint8)
    painted[4:9, 4:9, :3] = PALETTE[9]
    painted[4:9, 4:9, 3] = 255
    Image.fromarray(painted, "RGBA").save(tmp_path / "paint.png")
    runs = {}
    for tune in ("0", "4"):
        out = tmp_path / f"tune{tune}"
        args = ["--model", str(bundle), "edit", "--image", str(photo), "--embed-steps", "2", "--tune-steps", tune,
                "--target-mask", str(tmp_path / "paint.png"), "--steps", "2", "--out", str(out),
                "--save-vector", str(out / "v.safetensors"), "--transfer-samples", "2", "--transfer-steps", "1"]
        assert main(args) == 0
        runs[tune] = capsys.readouterr().err
        assert Image.open(out / "after_in_original.png").size == (28, 20) and (out / "v.safetensors").exists()
    assert "generator tuned to it" in runs["4"] and "generator tuned to it" not in runs["0"]
    before_plain = np.asarray(Image.open(tmp_path / "tune0" / "before.png"))
    before_tuned = np.asarray(Image.open(tmp_path / "tune4" / "before.png"))
    assert not np.array_equal(before_plain, before_tuned)  # the same latent, drawn by the tuned generator
    assert main(["--model", str(bundle), "edit", "--image", str(photo), "--tune-steps", "-1", "--edit", "smile",
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "steps >= 0" in capsys.readouterr().err


def test_refine_alone_takes_the_default_step_count():
    from core.cli import build_parser
    from core.edit_vector import REFINE_STEPS

    p = build_parser()
    for cmd in (["apply", "--seed", "1"], ["batch", "--input-dir", "x"]):
        base = ["--model", "m", *cmd, "--vector", "v.safetensors"]
        assert p.parse_args([*base, "--out", "o"]).refine == 0  # mode 1 unless asked
        assert p.parse_args([*base, "--out", "o", "--refine"]).refine == REFINE_STEPS
        assert p.parse_args([*base, "--refine", "--out", "o"]).refine == REFINE_STEPS
        assert p.parse_args([*base, "--refine", "5", "--out", "o"]).refine == 5
        for bad in ("-1", "2.5", "many"):
            with pytest.raises(SystemExit):
                p.parse_args([*base, "--refine", bad, "--out", "o"])


def test_a_target_mask_of_another_size_is_resized_like_the_app_does(bundle, tmp_path, capsys):
    """A 512 px palette PNG (the size of the app's editor) edits a 16 px model: nearest-neighbour resizing."""
    painted = np.zeros((512, 512, 4), np.uint8)
    painted[128:288, 128:288] = (*PALETTE[9], 255)  # lips over a 5x5 cell block
    Image.fromarray(painted, "RGBA").save(tmp_path / "paint512.png")
    out = tmp_path / "out"
    rc = main(["--model", str(bundle), "edit", "--seed", "1", "--target-mask", str(tmp_path / "paint512.png"),
               "--steps", "2", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    target = np.asarray(Image.open(out / "target_mask.png").convert("RGB"))
    assert target.shape == (16, 16, 3) and (target[4:9, 4:9] == PALETTE[9]).all()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_unreadable_or_oversized_target_masks_are_refused_up_front(bundle, tmp_path, capsys):
    import time

    files = {"empty.png": b"", "text.png": b"plain text\n", "cut.png": None, "big.png": None, "wide.png": None}
    Image.new("RGBA", (32, 32)).save(tmp_path / "whole.png")
    files["cut.png"] = (tmp_path / "whole.png").read_bytes()[:50]
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    Image.new("RGBA", (9000, 6000)).save(tmp_path / "big.png")  # 54 MP
    Image.new("RGBA", (32, 16)).save(tmp_path / "wide.png")
    expected = {"empty.png": "empty", "text.png": "not a readable image", "cut.png": "not a readable image",
                "big.png": "50 MP", "wide.png": "must be square"}  # fmt: skip
    for name, message in expected.items():
        t0 = time.perf_counter()
        rc = main(["--model", str(bundle), "edit", "--target-mask", str(tmp_path / name), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err, (name, err)
        assert time.perf_counter() - t0 < 10  # refused before any model work (a 54 MP file used to run 95 s)


def test_sample_of_an_image_writes_its_embedding(bundle, tmp_path, capsys):
    Image.fromarray(np.full((24, 24, 3), 120, np.uint8)).save(tmp_path / "face.png")
    out = tmp_path / "out"
    rc = main(["--model", str(bundle), "sample", "--image", str(tmp_path / "face.png"), "--embed-steps", "1",
               "--tune-steps", "0", "--out", str(out)])  # fmt: skip
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["image"].endswith("face.png")
    assert Image.open(out / "embedded_face.png").size == (16, 16) and (out / "embedded_face_mask.png").exists()
    (tmp_path / "empty.png").write_bytes(b"")
    assert main(["--model", str(bundle), "sample", "--image", str(tmp_path / "empty.png"), "--out", str(out)]) == 2
    assert "empty" in capsys.readouterr().err


def test_apply_refuses_a_huge_finite_vector(bundle, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.numpy import load, save

    zero = VectorFile(delta=np.zeros((6, 32), np.float32), model_id="ab" * 8, edited_classes=("skin",))
    path = tmp_path / "huge.safetensors"
    zero.save(path)
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    tensors = load(path.read_bytes())
    tensors["delta"] = np.full_like(tensors["delta"], 1e30)
    path.write_bytes(save(tensors, metadata=metadata))
    assert main(["--model", str(bundle), "apply", "--seed", "1", "--vector", str(path), "--out", str(tmp_path)]) == 2
    assert "far larger than any edit" in capsys.readouterr().err
