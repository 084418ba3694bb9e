"""sample: the helpers behind the sample contract every reader returns."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from acga_lightning.data.sample import frames_to_tensor, make_sample_id, normalise_query


def test_normalise_query() -> None:
    assert normalise_query("  The Dog\tON the   left \n") == "the dog on the left"


def test_sample_ids_are_stable_distinct_and_exact_in_float64() -> None:
    ids = {make_sample_id("vid", f, i) for f in range(1, 40) for i in range(3)}
    assert len(ids) == 39 * 3
    assert all(0 <= i < 2**53 and int(float(i)) == i for i in ids)
    # the same in another process, whatever its hash seed (the id never uses hash())
    code = "from acga_lightning.data.sample import make_sample_id as m; print(m('vid', 5, 1))"
    env = {**os.environ, "PYTHONHASHSEED": "123", "NO_ALBUMENTATIONS_UPDATE": "1"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env=env)  # fmt: skip
    assert int(other.stdout) == make_sample_id("vid", 5, 1)


def test_frames_to_tensor_is_the_model_layout_in_minus_one_one() -> None:
    frames = np.zeros((2, 3, 4, 3), np.uint8)
    frames[..., 0] = 255
    clip = frames_to_tensor(frames)
    assert clip.shape == (3, 2, 3, 4) and clip.dtype == torch.float32
    assert torch.equal(clip[0], torch.ones(2, 3, 4)) and torch.equal(clip[1], -torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="uint8"):
        frames_to_tensor(frames.astype(np.float32))
