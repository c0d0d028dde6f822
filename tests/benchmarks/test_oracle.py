"""The oracle at a resolution it was not trained at: the 64 px one read through resampling, or a clear error."""

import pytest
import torch

from benchmarks.oracle import (
    ResampledOracle,
    load_oracle,
    predict,
    render_set,
    to_input,
)


def test_the_64px_oracle_reads_128px_faces_through_resampling():
    oracle = load_oracle(128)
    assert isinstance(oracle, ResampledOracle) and oracle.description == "oracle64 resampled to 128 px"
    assert oracle.config.resolution == 128
    imgs, masks = render_set(128, 10_000_000, 8, progress=False)
    pred = predict(oracle, to_input(imgs))
    assert pred.shape == masks.shape == (8, 128, 128)
    # results/oracle128.json: 0.986 pixel accuracy over 1,000 test faces
    assert (pred == masks).float().mean() > 0.95
    assert oracle.features(to_input(imgs)).shape == (8, load_oracle(64).features(torch.zeros(1, 3, 64, 64)).shape[1])
    assert load_oracle(64).description == "oracle64"  # a trained oracle is used as it is


def test_no_usable_oracle_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no oracle for 128 px.*train --resolution 128"):
        load_oracle(128, resample=False)
    with pytest.raises(FileNotFoundError, match="no oracle for 32 px"):
        load_oracle(32)  # nothing trained below 32 px to resample
    with pytest.raises(FileNotFoundError, match="trained: none"):
        load_oracle(64, tmp_path)
