"""The run-time speed switches change nothing in what the model computes."""

import pytest
import torch

from acga_lightning import ACGASegmenter
from acga_lightning.perf import compile_parts, segmenter_specs, to_channels_last

SMALL = {"num_frames": 8, "frame_size": 64}


def inputs():
    torch.manual_seed(0)
    return {
        "frames": torch.rand(2, 3, 8, 64, 64) * 2 - 1,
        "words": torch.randn(2, 6, 300),
        "word_mask": torch.tensor([[True] * 6, [True] * 3 + [False] * 3]),
    }


def test_plugin_switches_are_equivalent_end_to_end():
    torch.manual_seed(0)
    fast = ACGASegmenter(**SMALL).double().eval()
    plain = ACGASegmenter(**segmenter_specs(fast=False), **SMALL).double().eval()
    plain.load_state_dict(fast.state_dict())
    batch = {k: v.double() if v.is_floating_point() else v for k, v in inputs().items()}
    with torch.no_grad():
        for a, b in zip(fast(**batch)["logits"], plain(**batch)["logits"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_channels_last_is_equivalent():
    model = ACGASegmenter(**SMALL).eval()
    with torch.no_grad():
        reference = model(**inputs())["logits"][-1]
        to_channels_last(model)
        assert model.decoder.large.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        out = model(**inputs())["logits"][-1]
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compile_is_equivalent_and_keeps_checkpoint_keys():
    model = ACGASegmenter(
        video_encoder={"name": "precomputed", "endpoint": "final", "in_channels": 16}, **SMALL
    ).eval()
    keys = set(model.state_dict())
    batch = {
        "features": torch.randn(2, 16, 4, 4),
        **{k: v for k, v in inputs().items() if k != "frames"},
    }
    with torch.no_grad():
        reference = model(**batch)["logits"][-1]
        compile_parts(model)
        out = model(**batch)["logits"][-1]
    assert set(model.state_dict()) == keys
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)
