"""The official ACGA checkpoint, converted: same logits as the official model, every key named.

``OfficialACGAHead`` below is the official ``model/acga.py`` ACGA network rebuilt from the paper
and the published module structure (module and parameter names as the official checkpoint has
them: ``txt_model.0``, ``attention_layer.video_linearK``, ``deconv_small.0``, ...). It is written
here, in its own way, as the reference the converted model must reproduce.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from acga_lightning.cli import main
from acga_lightning.convert import (
    ConversionError,
    convert_official_checkpoint,
    read_official_state,
)
from acga_lightning.models.i3d import InceptionI3d
from acga_lightning.models.video_encoders import PrecomputedEncoder
from acga_lightning.segmenter import ACGASegmenter

GRID = 8  # the release's grid is 32; 8 keeps the 16G decoder (128 x 128) cheap on a CPU
VISUAL, COORDS, SEMANTIC, SENTENCE = 832, 8, 300, 20


def official_coordinates(height: int, width: int) -> torch.Tensor:
    """The official 8-channel spatial feature of an H x W grid, cell by cell."""
    out = np.zeros((8, height, width), np.float64)
    for h in range(height):
        for w in range(width):
            x0, x1 = w / width * 2 - 1, (w + 1) / width * 2 - 1
            y0, y1 = h / height * 2 - 1, (h + 1) / height * 2 - 1
            out[:, h, w] = [x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2, 1 / width, 1 / height]
    return torch.from_numpy(out)


def hassony2_name(key: str) -> str:
    """Our (piergiaj) I3D key -> the hassony2 port's, as the official checkpoint stores it."""
    top, rest = key.split(".", 1)
    head, _, tail = rest.partition(".")
    branches = {"b0": "branch_0", "b1a": "branch_1.0", "b1b": "branch_1.1", "b2a": "branch_2.0"}
    branches |= {"b2b": "branch_2.1", "b3b": "branch_3.1"}
    return f"{top.lower()}.{branches.get(head, head)}.{tail}".replace(".bn.", ".batch3d.")


class OfficialAttention(nn.Module):
    """The official AttentionLayer: VGLA over all 20 word positions, LGVA as softmax(K Q^T)."""

    def __init__(self) -> None:
        super().__init__()
        joint = VISUAL + COORDS
        self.video_reduce = nn.Linear(joint, SEMANTIC)
        self.video_linearK = nn.Linear(joint, joint)
        self.video_linearQ = nn.Linear(joint, joint)
        self.video_linearV = nn.Linear(joint, joint)
        self.txt_pool = nn.MaxPool1d(SENTENCE)
        self.txt_increase = nn.Linear(SEMANTIC, joint)

    def forward(self, video: torch.Tensor, txt: torch.Tensor, spatial: torch.Tensor) -> tuple:
        n, _, h, w = video.shape
        pixels = torch.cat([video, spatial], 1).flatten(2).transpose(1, 2)  # (N, HW, 840)
        scores = self.video_reduce(pixels) @ txt / math.sqrt(SEMANTIC)  # (N, HW, 20)
        words = scores.softmax(-1) @ txt.transpose(1, 2)  # (N, HW, 300)
        gate = self.txt_increase(self.txt_pool(txt)[..., 0])[:, None]  # (N, 1, 840)
        k = self.video_linearK(pixels) * gate
        q = self.video_linearQ(pixels) * gate
        v = self.video_linearV(pixels)
        attended = (k @ q.transpose(1, 2) / math.sqrt(VISUAL + COORDS)).softmax(-1) @ v
        return (
            words.transpose(1, 2).reshape(n, SEMANTIC, h, w),
            attended.transpose(1, 2).reshape(n, VISUAL + COORDS, h, w),
        )


def fcn(in_channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 1, 1),
    )  # fmt: skip


def up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 8, stride=4, padding=2),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
    )


class OfficialVideo(nn.Module):
    """``video_model.model``: the I3D, of which the official forward runs ``mixed_4f`` only."""

    def __init__(self) -> None:
        super().__init__()
        self.model = InceptionI3d(final_endpoint="Mixed_4f", batchnorm="hassony2")


class OfficialACGAHead(nn.Module):
    """The official ACGA module: Mixed_4e features and 20-word sentences to three logit maps."""

    def __init__(self) -> None:
        super().__init__()
        self.video_model = OfficialVideo()
        self.txt_model = nn.Sequential(nn.Conv1d(SEMANTIC, SEMANTIC, 3, padding=1), nn.Tanh())
        self.attention_layer = OfficialAttention()
        self.deconv_small = up(VISUAL, 256)
        self.conv_mask_small = fcn(VISUAL + COORDS + SEMANTIC, 256)
        self.deconv_medium = up(256, 128)
        self.conv_mask_medium = fcn(256 + COORDS + SEMANTIC, 128)
        self.conv_mask_large = fcn(128 + COORDS + SEMANTIC, 64)
        self.conv_fusion = nn.Conv2d(3, 1, 3, padding=1)

    def official_state(self) -> dict[str, torch.Tensor]:
        """The state dict under the official names (I3D in the hassony2 port's names)."""
        state = {}
        for key, value in self.state_dict().items():
            if key.startswith("video_model.model."):
                key = "video_model.model." + hassony2_name(key[len("video_model.model.") :])
            state[key] = value
        return state

    def forward(self, video: torch.Tensor, txt: torch.Tensor) -> list[torch.Tensor]:
        video = self.video_model.model(video, start="Mixed_4f")  # (N, 832, T, G, G)
        video = F.normalize(video.mean(-3), p=2, dim=1)
        txt = self.txt_model(txt)  # (N, 300, 20)
        g = video.shape[-1]
        spatial = [
            official_coordinates(s, s).to(video).expand(video.shape[0], -1, -1, -1)
            for s in (g, 4 * g, 16 * g)
        ]
        txt_attn, video_attn = self.attention_layer(video, txt, spatial[0])
        video_attn = video_attn[:, :VISUAL]
        small = self.conv_mask_small(torch.cat([video_attn, txt_attn, spatial[0]], 1))
        medium_features = self.deconv_small(video_attn)
        size = medium_features.shape[-2:]
        text = F.interpolate(txt_attn, size=size, mode="bilinear")
        medium = self.conv_mask_medium(torch.cat([medium_features, text, spatial[1]], 1))
        large_features = self.deconv_medium(medium_features)
        size = large_features.shape[-2:]
        text = F.interpolate(txt_attn, size=size, mode="bilinear")
        large = self.conv_mask_large(torch.cat([large_features, text, spatial[2]], 1))
        maps = [F.interpolate(m, size=size, mode="bilinear") for m in (small, medium)]
        return [small, medium, self.conv_fusion(torch.cat([*maps, large], 1))]


def random_official_head(seed: int) -> OfficialACGAHead:
    """Random weights everywhere, BatchNorm statistics included (not the 0/1 of a fresh module)."""
    torch.manual_seed(seed)
    head = OfficialACGAHead()
    with torch.no_grad():
        for name, tensor in head.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var") or name.endswith("bn.weight"):
                tensor.uniform_(0.5, 1.5)
            else:
                tensor.normal_(0.0, 0.05 if tensor.ndim > 1 else 0.2)
    return head.double().eval()


def save_official(head: OfficialACGAHead, path, data_parallel: bool = True) -> None:
    prefix = "module." if data_parallel else ""
    state = {prefix + k: v.float() for k, v in head.official_state().items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1, 2]}]}
    torch.save({"epoch": 7, "state_dict": state, "optimizer": optimizer}, path)


def random_batch(seed: int, lengths: list[int]) -> dict[str, torch.Tensor]:
    """Mixed_4e features and word vectors padded to 20 with zero rows, as the release has them."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(len(lengths), 528, 2, GRID, GRID, generator=gen).double()
    words = torch.zeros(len(lengths), SENTENCE, SEMANTIC, dtype=torch.float64)
    for i, n in enumerate(lengths):
        words[i, :n] = torch.randn(n, SEMANTIC, generator=gen).double()
    return {"features": features, "words": words, "word_mask": words.ne(0).any(-1)}


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple:
    head = random_official_head(seed=0)
    # round through float32 like the saved checkpoint, so both sides hold the same weights
    head.load_state_dict({k: v.float().double() for k, v in head.state_dict().items()})
    path = tmp_path_factory.mktemp("official") / "model_best.pth.tar"
    save_official(head, path)
    return head, path


@pytest.mark.parametrize("seed", [0, 1])
def test_converted_checkpoint_gives_the_official_logits(official, tmp_path, seed) -> None:
    head, path = official
    out = tmp_path / "acga_official.ckpt"
    _, report = convert_official_checkpoint(path, out, frame_size=16 * GRID)
    assert report.epoch == 7 and report.mapped["attention_layer.video_linearK.weight"] == (
        "attention.lgva.query.weight"
    )
    assert any(".mixed_4e." in k for k in report.skipped)
    model = ACGASegmenter.load_from_checkpoint(out, map_location="cpu").double().eval()
    rng = np.random.default_rng(seed)
    lengths = [3, 20, *rng.integers(3, 21, size=2).tolist()]
    batch = random_batch(seed, lengths)
    with torch.no_grad():
        ours = model(words=batch["words"], word_mask=batch["word_mask"], features=batch["features"])
        expected = head(batch["features"], batch["words"].transpose(1, 2))
    assert len(ours["logits"]) == 3
    for got, want in zip(ours["logits"], expected, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert expected[-1].std() > 1e-2  # the maps are not flat: the comparison has teeth


@pytest.mark.parametrize(
    "departure",
    [{"mask_padding": True}, {"decoder": {"name": "multires", "up_activation": "relu"}}],
)
def test_our_departures_change_the_logits(official, departure) -> None:
    head, path = official
    model, _ = convert_official_checkpoint(path, frame_size=16 * GRID, **departure)
    batch = random_batch(0, [3, 7])
    with torch.no_grad():
        ours = model.double()(
            words=batch["words"], word_mask=batch["word_mask"], features=batch["features"]
        )
        expected = head(batch["features"], batch["words"].transpose(1, 2))
    assert (ours["logits"][-1] - expected[-1]).abs().max() > 1e-4


def test_unmapped_and_misshaped_keys_are_named(official, tmp_path) -> None:
    head, _ = official
    state = head.official_state()
    state["attention_layer.extra_gate.weight"] = torch.zeros(3)
    state["conv_fusion.weight"] = torch.zeros(1, 2, 3, 3)
    del state["deconv_small.1.bias"]
    path = tmp_path / "broken.pth.tar"
    torch.save({"epoch": 1, "state_dict": state}, path)
    with pytest.raises(ConversionError) as err:
        convert_official_checkpoint(path, frame_size=16 * GRID)
    message = str(err.value)
    assert "attention_layer.extra_gate.weight" in message
    assert "conv_fusion.weight (1, 2, 3, 3)" in message
    assert "decoder.up_medium.conv.bias" in message


def test_bare_i3d_is_refused_with_a_pointer(tmp_path) -> None:
    i3d = InceptionI3d(final_endpoint="Mixed_4f")
    path = tmp_path / "i3d_rgb.pth"
    state = {hassony2_name(k): v for k, v in i3d.state_dict().items() if k.startswith("Mixed_4f.")}
    torch.save(state, path)
    with pytest.raises(ConversionError, match="bare I3D"):
        convert_official_checkpoint(path)
    # ... and loads as the pointer says, with the port's BatchNorm settings
    encoder = PrecomputedEncoder(weights=str(path))
    assert encoder.load_report.format == "hassony2" and encoder.i3d.Mixed_4f.b0.bn.eps == 1e-5


def test_cli_converts_and_reads_module_prefix(official, tmp_path, capsys) -> None:
    _, path = official
    state, epoch = read_official_state(path)
    assert epoch == 7 and not any(k.startswith("module.") for k in state)
    out = tmp_path / "converted.ckpt"
    assert main(["convert-official", str(path), str(out)]) == 0
    assert "tensors mapped" in capsys.readouterr().out
    model = ACGASegmenter.load_from_checkpoint(out, map_location="cpu")
    assert model.hparams.evaluation == "official_release" and not model.hparams.mask_padding
    assert model.video_encoder.i3d.Mixed_4f.b0.bn.eps == 1e-5
    with pytest.raises(SystemExit, match="not found"):
        main(["convert-official", str(tmp_path / "missing.pth.tar"), str(out)])
