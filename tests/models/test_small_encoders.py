"""small_encoders: small3d's output grid for each stride and temporal mode, and its checks."""

from __future__ import annotations

import pytest
import torch

from acga_lightning.models.small_encoders import Small3DEncoder


@pytest.mark.parametrize("temporal", ["3d", "early"])
@pytest.mark.parametrize(("stride", "widths"), [(8, (4, 8, 8)), (16, (4, 8, 8, 16))])
def test_output_grid_is_the_frame_over_the_stride(stride, widths, temporal) -> None:
    torch.manual_seed(0)
    encoder = Small3DEncoder(widths=widths, stride=stride, extra_blocks=0, temporal=temporal,
                             num_frames=4, frame_size=32)  # fmt: skip
    out = encoder(frames=torch.rand(2, 3, 4, 32, 32) * 2 - 1)
    assert out.shape == (2, widths[-1], 32 // stride, 32 // stride)
    # L2-normalised per pixel over channels (a pixel whose ReLU features are all 0 stays 0)
    norms = out.norm(dim=1)
    assert (((norms - 1).abs() < 1e-5) | (norms == 0)).all() and (norms > 0).any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stride": 4}, "stride"),
        ({"stride": 8, "widths": (4, 8)}, "widths"),
        ({"extra_blocks": -1}, "extra_blocks"),
        ({"temporal": "2d"}, "temporal"),
        ({"frame_size": 40}, "frame_size"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Small3DEncoder(**kwargs)
