"""Tests of models/i3d.py: the I3D architecture, its padding and its weight loaders."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from acga_lightning.models.i3d import (
    ENDPOINTS,
    InceptionI3d,
    MaxPool3dSame,
    WeightsMismatchError,
    detect_i3d_format,
    load_i3d_weights,
    same_padding,
)

SMALL_CLIP = (1, 3, 4, 32, 32)  # -> Mixed_4f (1, 832, 1, 2, 2)


def randomised_i3d(seed: int, **kwargs) -> InceptionI3d:
    """An I3D whose BatchNorm affine parameters and statistics are random too (not 1/0)."""
    torch.manual_seed(seed)
    model = InceptionI3d(**kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def to_hassony2(key: str) -> str:
    """piergiaj key -> hassony2 key, written independently of the loader's translation."""
    top, rest = key.split(".", 1)
    top = {"logits": "conv3d_0c_1x1"}.get(top, top.lower())
    branch = {"b0": "branch_0", "b1a": "branch_1.0", "b1b": "branch_1.1"}
    branch |= {"b2a": "branch_2.0", "b2b": "branch_2.1", "b3b": "branch_3.1"}
    head, tail = rest.split(".", 1)
    if head in branch:
        rest = f"{branch[head]}.{tail}"
    return f"{top}.{rest}".replace(".bn.", ".batch3d.")


@pytest.fixture(scope="module")
def source_model() -> InceptionI3d:
    return randomised_i3d(seed=1)


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.rand(SMALL_CLIP) * 2 - 1


@pytest.fixture(scope="module")
def source_output(source_model, clip) -> torch.Tensor:
    with torch.no_grad():
        return source_model(clip)


def full_checkpoint(model: InceptionI3d) -> dict[str, torch.Tensor]:
    """The state as an old piergiaj file has it: no num_batches_tracked, plus later layers."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["Mixed_5b.b0.conv3d.weight"] = torch.zeros(256, 832, 1, 1, 1)
    state["logits.conv3d.weight"] = torch.zeros(400, 1024, 1, 1, 1)
    state["logits.conv3d.bias"] = torch.zeros(400)
    return state


@pytest.mark.parametrize("kernel,stride", [(7, 2), (3, 2), (3, 1), (1, 1), (2, 2)])
def test_same_padding_gives_ceil_output_size(kernel: int, stride: int) -> None:
    for size in range(1, 40):
        front, back = same_padding(size, kernel, stride)
        assert 0 <= back - front <= 1
        assert (size + front + back - kernel) // stride + 1 == math.ceil(size / stride)


@pytest.mark.parametrize("kernel,stride", [(7, 2), (3, 2)])
def test_same_padding_equals_hassony2_rule_on_even_sizes(kernel: int, stride: int) -> None:
    # hassony2 pads max(k - s, 0), split smaller half first, whatever the size
    total = max(kernel - stride, 0)
    for size in range(2, 40, 2):
        assert same_padding(size, kernel, stride) == (total // 2, total - total // 2)


def test_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        model = InceptionI3d()
        clip = torch.empty(1, 3, 16, 512, 512)
        mixed_4e = model(clip, stop="Mixed_4e")
        mixed_4f = model(mixed_4e, start="Mixed_4f")
    assert mixed_4e.shape == (1, 528, 4, 32, 32)
    assert mixed_4f.shape == (1, 832, 4, 32, 32)
    assert model.out_channels == 832


def test_forward_flops_match_design_anchors() -> None:
    with torch.device("meta"):
        model = InceptionI3d()
        clip = torch.empty(1, 3, 16, 512, 512)
        with FlopCounterMode(display=False) as prefix:
            mixed_4e = model(clip, stop="Mixed_4e")
        with FlopCounterMode(display=False) as last:
            model(mixed_4e, start="Mixed_4f")
    assert prefix.get_total_flops() / 1e9 == pytest.approx(271, abs=1)
    assert last.get_total_flops() / 1e9 == pytest.approx(15, abs=0.5)


def test_state_dict_names_follow_piergiaj() -> None:
    state = InceptionI3d().state_dict()
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Conv3d_1a_7x7.bn.running_mean"].shape == (64,)
    assert state["Conv3d_2c_3x3.conv3d.weight"].shape == (192, 64, 3, 3, 3)
    assert state["Mixed_4f.b1b.conv3d.weight"].shape == (320, 160, 3, 3, 3)
    assert state["Mixed_4f.b2b.conv3d.weight"].shape == (128, 32, 3, 3, 3)
    assert state["Mixed_4f.b3b.bn.weight"].shape == (128,)
    assert state["Mixed_4b.b0.conv3d.weight"].shape == (192, 480, 1, 1, 1)
    assert not any(".b3a." in k or "Mixed_5" in k or "logits" in k for k in state)
    assert not any(k.endswith("conv3d.bias") for k in state)
    bn = InceptionI3d().Mixed_4f.b0.bn
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


def test_built_endpoints_and_bad_endpoint() -> None:
    assert InceptionI3d(final_endpoint="Mixed_4e").endpoints == ENDPOINTS[:-1]
    tail = InceptionI3d(first_endpoint="Mixed_4f")
    assert tail.endpoints == ("Mixed_4f",) and tail.in_channels == 528
    with pytest.raises(ValueError, match="final_endpoint"):
        InceptionI3d(final_endpoint="Mixed_5b")
    with pytest.raises(ValueError, match="first_endpoint"):
        InceptionI3d(first_endpoint="Mixed_4f", final_endpoint="Mixed_4e")


def test_max_pool_pads_like_tensorflow() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 9, 9)
    for kernel, stride in (((3, 3, 3), (2, 2, 2)), ((3, 3, 3), (1, 1, 1)), ((1, 3, 3), (1, 2, 2))):
        pool = MaxPool3dSame(kernel, stride)
        # negative inputs: padded cells never win (TensorFlow); output size ceil(n / s)
        out = pool(-x.abs() - 1)
        assert out.max() < -1
        assert out.shape[2:] == tuple(
            math.ceil(n / s) for n, s in zip(x.shape[2:], stride, strict=True)
        )
        # on ReLU outputs, the ports' zero padding gives the same result
        relu = x.relu()
        pads = [
            p
            for n, k, s in zip(x.shape[:1:-1], kernel[::-1], stride[::-1], strict=True)
            for p in same_padding(n, k, s)
        ]
        reference = F.max_pool3d(F.pad(relu, pads), kernel, stride)
        torch.testing.assert_close(pool(relu), reference, rtol=0, atol=0)


def test_load_piergiaj_file_skips_later_layers(source_model, clip, source_output, tmp_path) -> None:
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(full_checkpoint(source_model), path)
    model = randomised_i3d(seed=3)
    assert not torch.allclose(model(clip), source_output)
    report = load_i3d_weights(model, path)
    assert report.format == "piergiaj"
    assert sorted(report.ignored) == sorted(
        ["Mixed_5b.b0.conv3d.weight", "logits.conv3d.weight", "logits.conv3d.bias"]
    )
    torch.testing.assert_close(model(clip), source_output, rtol=0, atol=0)


def test_load_hassony2_wrapped_with_module_prefix(
    source_model, clip, source_output, tmp_path
) -> None:
    state = {f"module.{to_hassony2(k)}": v for k, v in full_checkpoint(source_model).items()}
    assert "module.mixed_4f.branch_1.1.batch3d.running_mean" in state
    assert "module.conv3d_0c_1x1.conv3d.bias" in state
    path = tmp_path / "i3d_rgb.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    model = randomised_i3d(seed=4)
    report = load_i3d_weights(model, path)
    assert report.format == "hassony2"
    assert "logits.conv3d.weight" in report.ignored
    # hassony2's port keeps PyTorch's BatchNorm defaults: the loader gives the module those
    bn = model.Mixed_4f.b1b.bn
    assert (bn.eps, bn.momentum, model.batchnorm) == (1e-5, 0.1, "hassony2")
    assert not torch.allclose(model(clip), source_output, rtol=0, atol=1e-5)
    source_model.set_batchnorm("hassony2")
    try:
        with torch.no_grad():
            expected = source_model(clip)
    finally:
        source_model.set_batchnorm("piergiaj")
    torch.testing.assert_close(model(clip), expected, rtol=0, atol=0)
    # an explicit convention wins over the file's
    load_i3d_weights(model, path, batchnorm="piergiaj")
    torch.testing.assert_close(model(clip), source_output, rtol=0, atol=0)
    with pytest.raises(ValueError, match="batchnorm"):
        load_i3d_weights(model, path, batchnorm="tf")


def test_mixed_4f_only_module_takes_its_block(source_model, tmp_path) -> None:
    tail = randomised_i3d(seed=5, first_endpoint="Mixed_4f")
    report = load_i3d_weights(tail, full_checkpoint(source_model))
    assert any(k.startswith("Mixed_4e.") for k in report.ignored)
    expected = {f"Mixed_4f.{k}": v for k, v in source_model.Mixed_4f.state_dict().items()}
    torch.testing.assert_close(tail.state_dict(), expected, rtol=0, atol=0)


def test_wrong_shape_missing_and_unexpected_keys_are_named(source_model) -> None:
    state = full_checkpoint(source_model)
    state["Mixed_4f.b0.conv3d.weight"] = torch.zeros(256, 512, 1, 1, 1)
    del state["Mixed_3b.b2a.bn.running_var"]
    state["Mixed_4f.b9.conv3d.weight"] = torch.zeros(1)
    model = InceptionI3d()
    with pytest.raises(WeightsMismatchError) as error:
        load_i3d_weights(model, state)
    message = str(error.value)
    assert (
        "Mixed_4f.b0.conv3d.weight: checkpoint (256, 512, 1, 1, 1) vs model (256, 528, 1, 1, 1)"
        in message
    )
    assert "missing (1): Mixed_3b.b2a.bn.running_var" in message
    assert "unexpected (1): Mixed_4f.b9.conv3d.weight" in message
    # not strict: everything that fits loads, the rest is reported
    report = load_i3d_weights(model, state, strict=False)
    assert report.missing == ["Mixed_3b.b2a.bn.running_var"]
    assert len(report.mismatched) == 1 and "Mixed_4f.b0.conv3d.weight" not in report.loaded
    torch.testing.assert_close(
        model.Mixed_4f.b1b.conv3d.weight, source_model.Mixed_4f.b1b.conv3d.weight
    )


def test_unknown_format_and_missing_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="neither piergiaj nor hassony2"):
        detect_i3d_format({"layer1.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_i3d_weights(InceptionI3d(), tmp_path / "nowhere.pt")
    with pytest.raises(TypeError, match="InceptionI3d"):
        load_i3d_weights(torch.nn.Linear(1, 1), {})
