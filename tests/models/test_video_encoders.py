"""Tests of models/video_encoders.py: the registered video encoders and their contract."""

from __future__ import annotations

import hashlib

import pytest
import torch

from acga_lightning.models.i3d import ENDPOINTS, WeightsMismatchError
from acga_lightning.models.video_encoders import I3DEncoder, I3DR50Encoder, PrecomputedEncoder
from acga_lightning.registry import VIDEO_ENCODERS

T, S, G = 4, 32, 2  # small clips: Mixed_4e (528, 1, 2, 2)


def clip(batch: int = 2, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(batch, 3, T, S, S) * 2 - 1


def small(name: str, **kwargs) -> torch.nn.Module:
    if name == "precomputed":
        return VIDEO_ENCODERS.build({"name": name, **kwargs})
    return VIDEO_ENCODERS.build({"name": name, "num_frames": T, "frame_size": S, **kwargs})


def bn_stats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


@pytest.fixture(scope="module")
def i3d_weights(tmp_path_factory) -> str:
    """A piergiaj-format checkpoint of a random I3D with non-trivial BatchNorm statistics."""
    torch.manual_seed(11)
    encoder = I3DEncoder(num_frames=T, frame_size=S)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("weights") / "rgb_imagenet.pt"
    torch.save(encoder.i3d.state_dict(), path)
    return str(path)


@pytest.mark.parametrize("name", VIDEO_ENCODERS.names())
def test_registered_encoder_honours_contract(name: str) -> None:
    encoder = small(name).eval()
    if name == "precomputed":
        out = encoder(features=torch.randn(2, 528, 1, G, G).relu())
    else:
        out = encoder(frames=clip())
    assert out.shape == (2, encoder.out_channels, G, G)
    assert encoder.stride == S // G
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, G, G))


def test_l2_normalize_off_keeps_raw_norms() -> None:
    out = small("i3d", l2_normalize=False).eval()(frames=clip())
    assert not torch.allclose(out.norm(dim=1), torch.ones(2, G, G))


def test_i3d_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        encoder = I3DEncoder()
        frames = torch.empty(1, 3, 16, 512, 512)
        features = encoder.extract_frozen(frames)
        out = encoder(frames=frames)
        from_cache = encoder(features=features)
    assert features.shape == (1, 528, 4, 32, 32)
    assert out.shape == from_cache.shape == (1, 832, 32, 32)
    assert encoder.cache_signature()["feature_shape"] == [528, 4, 32, 32]
    assert encoder.cache_signature()["prefix_sha256"] is None  # meta tensors have no values


def test_i3d_r50_shape_and_stride() -> None:
    encoder = small("i3d_r50").eval()
    assert encoder(frames=clip(batch=1)).shape == (1, 1024, G, G)
    assert (encoder.out_channels, encoder.stride) == (1024, 16)


def test_gradients_reach_mixed_4f_and_never_the_frozen_prefix() -> None:
    encoder = small("i3d").train()
    prefix = [p for n in ENDPOINTS[:-1] for p in getattr(encoder.i3d, n).parameters()]
    stats_before = bn_stats(encoder)
    out = encoder(frames=clip())
    (out * torch.randn_like(out)).sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in prefix)
    grads = [p.grad for p in encoder.i3d.Mixed_4f.parameters()]
    assert all(g is not None for g in grads) and all(g.abs().sum() > 0 for g in grads)
    # frozen BatchNorm statistics stay put in train mode; Mixed_4f's move
    stats_after = bn_stats(encoder)
    for key, before in stats_before.items():
        changed = not torch.equal(before, stats_after[key])
        assert changed == key.startswith("i3d.Mixed_4f."), key
    assert not encoder.i3d.Mixed_4e.training and encoder.i3d.Mixed_4f.training
    assert not encoder.eval().train().i3d.Conv3d_1a_7x7.bn.training


def test_frozen_through_none_trains_everything_but_refuses_cached_features() -> None:
    encoder = small("i3d", frozen_through=None).train()
    assert all(p.requires_grad for p in encoder.parameters())
    assert encoder.i3d.Conv3d_1a_7x7.training
    with pytest.raises(ValueError, match="frozen_through"):
        encoder(features=torch.zeros(1, 528, 1, G, G))
    with pytest.raises(ValueError, match="frozen_through"):
        encoder.extract_frozen(clip())
    with pytest.raises(ValueError, match="frozen_through"):
        small("i3d", frozen_through="Mixed_5b")


def test_cached_features_give_the_same_output_as_frames_and_as_precomputed(i3d_weights) -> None:
    encoder = small("i3d", weights=i3d_weights)
    precomputed = PrecomputedEncoder(weights=i3d_weights)
    frames = clip()
    features = encoder.extract_frozen(frames)
    assert features.shape == (2, 528, 1, G, G) and not features.requires_grad
    encoder.eval(), precomputed.eval()
    expected = encoder(frames=frames)
    torch.testing.assert_close(encoder(features=features), expected, rtol=0, atol=0)
    torch.testing.assert_close(precomputed(features=features), expected, rtol=0, atol=0)
    # in train mode Mixed_4f normalises with batch statistics in both
    encoder.train(), precomputed.train()
    torch.testing.assert_close(precomputed(features=features), encoder(features=features))
    # fp16 caches are accepted
    half = precomputed.eval()(features=features.half())
    assert half.dtype == torch.float32


def test_precomputed_final_features() -> None:
    encoder = PrecomputedEncoder(endpoint="final", in_channels=16)
    assert encoder.out_channels == 16
    maps = torch.randn(2, 16, G, G)
    torch.testing.assert_close(encoder(features=maps), maps / maps.norm(dim=1, keepdim=True))
    timed = torch.randn(2, 16, 3, G, G).half()
    assert encoder(features=timed).shape == (2, 16, G, G)
    with pytest.raises(ValueError, match="features"):
        encoder(features=torch.randn(2, 8, G, G))
    with pytest.raises(ValueError, match="endpoint"):
        PrecomputedEncoder(endpoint="mixed_5c")
    with pytest.raises(ValueError, match="in_channels"):
        PrecomputedEncoder(endpoint="mixed_4e", in_channels=16)


def test_bad_inputs_name_the_argument() -> None:
    encoder = small("i3d")
    with pytest.raises(ValueError, match="frames"):
        encoder(frames=torch.zeros(1, 3, S, S))
    with pytest.raises(ValueError, match="frames"):
        encoder(frames=torch.zeros(1, 1, T, S, S))
    with pytest.raises(ValueError, match="frames"):
        encoder(frames=torch.zeros(1, 3, T, S * 2, S * 2))
    with pytest.raises(ValueError, match="exactly one"):
        encoder()
    with pytest.raises(ValueError, match="features"):
        encoder(features=torch.zeros(1, 512, 1, G, G))
    with pytest.raises(ValueError, match="features"):
        PrecomputedEncoder()(frames=clip())
    with pytest.raises(ValueError, match="features"):
        small("i3d_r50")(features=torch.zeros(1, 1024, G, G))
    with pytest.raises(ValueError, match="frame_size"):
        small("i3d", frame_size=40)


def test_cache_signature_fingerprints_weights(i3d_weights) -> None:
    signature = small("i3d", weights=i3d_weights).cache_signature()
    with open(i3d_weights, "rb") as f:
        assert signature["weights_sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert signature["endpoint"] == "Mixed_4e" and signature["weights"] == i3d_weights
    torch.manual_seed(0)
    first = small("i3d").cache_signature()
    torch.manual_seed(0)
    same_seed = small("i3d")
    with torch.no_grad():
        same_seed.i3d.Mixed_4f.b0.conv3d.weight.add_(1)  # outside the cached prefix
    torch.manual_seed(1)
    other_seed = small("i3d").cache_signature()
    assert first["weights_sha256"] == "random-init"
    assert first["prefix_sha256"] == same_seed.cache_signature()["prefix_sha256"]
    assert first["prefix_sha256"] != other_seed["prefix_sha256"]


def test_i3d_r50_loads_pytorchvideo_checkpoint_and_freezes_stages(tmp_path) -> None:
    torch.manual_seed(3)
    source = small("i3d_r50").eval()
    state = dict(source.state_dict())
    state["blocks.6.proj.weight"] = torch.zeros(400, 2048)  # head: skipped
    path = tmp_path / "I3D_8x8_R50.pyth"
    torch.save({"model_state": state, "cfg": "x"}, path)
    encoder = small("i3d_r50", weights=str(path))
    assert encoder.load_report.ignored == ["blocks.6.proj.weight"]
    frames = clip(batch=1)
    torch.testing.assert_close(encoder.eval()(frames=frames), source(frames=frames))
    stats = bn_stats(encoder)
    encoder.train()(frames=clip(seed=1))
    after = bn_stats(encoder)
    for key, before in stats.items():
        assert torch.equal(before, after[key]) == (not key.startswith("blocks.4.")), key
    assert not any(p.requires_grad for p in encoder.blocks[3].parameters())
    state["blocks.4.res_blocks.0.branch1_conv.weight"] = torch.zeros(3)
    torch.save(state, path)
    with pytest.raises(WeightsMismatchError, match="blocks.4.res_blocks.0.branch1_conv.weight"):
        I3DR50Encoder(weights=str(path), num_frames=T, frame_size=S)


def test_outputs_are_temporal_means() -> None:
    torch.manual_seed(5)
    features = torch.randn(2, 528, 3, G, G).relu()  # T' = 3
    encoder = small("i3d", l2_normalize=False).eval()
    expected = encoder.i3d(features, start="Mixed_4f").mean(dim=2)
    torch.testing.assert_close(encoder(features=features), expected)
    final = PrecomputedEncoder(endpoint="final", in_channels=528, l2_normalize=False)
    torch.testing.assert_close(final(features=features), features.mean(dim=2))


def test_i3d_r50_maps_frames_to_pytorchvideo_normalisation() -> None:
    encoder = small("i3d_r50").eval()
    seen = []
    encoder.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    frames = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1, 1).expand(1, 3, T, S, S)
    encoder(frames=frames)
    expected = (torch.tensor([0.0, 0.5, 1.0]) - 0.45) / 0.225
    torch.testing.assert_close(seen[0][0, :, 0, 0, 0], expected)


@pytest.mark.parametrize("name", ["i3d", "precomputed"])
def test_batchnorm_follows_the_weights_unless_given(name: str, i3d_weights) -> None:
    def eps(encoder: torch.nn.Module) -> float:
        return encoder.i3d.Mixed_4f.b0.bn.eps

    assert eps(small(name)) == 1e-3  # piergiaj's without weights
    assert eps(small(name, weights=i3d_weights)) == 1e-3  # a piergiaj file
    assert eps(small(name, batchnorm="hassony2")) == 1e-5  # the official code's port
    assert eps(small(name, weights=i3d_weights, batchnorm="hassony2")) == 1e-5
    with pytest.raises(ValueError, match="batchnorm"):
        small(name, batchnorm="tensorflow")


def test_cache_signature_names_a_non_default_batchnorm() -> None:
    torch.manual_seed(0)
    piergiaj = small("i3d").cache_signature()
    torch.manual_seed(0)
    hassony2 = small("i3d", batchnorm="hassony2").cache_signature()
    assert "batchnorm" not in piergiaj  # fingerprints of existing caches stay as they were
    assert hassony2["batchnorm"] == "hassony2"
    assert hassony2["prefix_sha256"] == piergiaj["prefix_sha256"]  # eps is not in the state
