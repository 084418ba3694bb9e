"""Decoder shapes and the coordinate map, at paper settings and small sizes."""

import pytest
import torch

from acga_lightning.models.coords import coordinate_map
from acga_lightning.registry import DECODERS


def test_coordinate_map_matches_definition():
    coords = coordinate_map(2, 4, dtype=torch.float64)
    assert coords.shape == (8, 2, 4)
    # cell (h=1, w=2) of a 2x4 grid
    expected = [2 / 4 * 2 - 1, 1 / 2 * 2 - 1, 3 / 4 * 2 - 1, 2 / 2 * 2 - 1, 0.25, 0.5, 1 / 4, 1 / 2]
    torch.testing.assert_close(coords[:, 1, 2], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("name", DECODERS.names())
def test_decoder_shapes_small(name):
    decoder = DECODERS.build(name, visual_channels=16, text_channels=12)
    visual, text, sentence = torch.randn(2, 16, 4, 4), torch.randn(2, 12, 4, 4), torch.randn(2, 12)
    logits = decoder(visual, text, sentence)
    assert all(x.shape[:2] == (2, 1) for x in logits)
    sizes = [x.shape[-1] for x in logits]
    assert sizes == sorted(sizes) and sizes[0] == 4
    logits[-1].sum().backward()


def test_multires_shapes_at_paper_settings():
    decoder = DECODERS.build("multires").to("meta")
    visual = torch.empty(1, 832, 32, 32, device="meta")
    text = torch.empty(1, 300, 32, 32, device="meta")
    for factorized in (False, True):
        for head in (decoder.small, decoder.medium, decoder.large):
            head.factorized_text = factorized
        small, medium, large = decoder(visual, text)
        assert small.shape == (1, 1, 32, 32)
        assert medium.shape == (1, 1, 128, 128)
        assert large.shape == (1, 1, 512, 512)


def test_decoder_rejects_wrong_channels():
    decoder = DECODERS.build("single", visual_channels=8, text_channels=4)
    with pytest.raises(ValueError, match="visual must be"):
        decoder(torch.randn(1, 7, 4, 4), torch.randn(1, 4, 4, 4), torch.randn(1, 4))


def test_multires_up_factors_set_the_output_grid():
    """(4, 2) decodes a G=8 grid to 8, 32 and 64: the frame size of the demo, not 128."""
    decoder = DECODERS.build(
        "multires", visual_channels=16, text_channels=12, up_channels=(8, 4),
        head_widths=(8, 8, 4), up_factors=(4, 2),
    )  # fmt: skip
    visual, text = torch.randn(2, 16, 8, 8), torch.randn(2, 12, 8, 8)
    small, medium, large = decoder(visual, text)
    assert (small.shape[-1], medium.shape[-1], large.shape[-1]) == (8, 32, 64)
    assert decoder.up_large.deconv.kernel_size == (4, 4)
    assert decoder.up_large.deconv.stride == (2, 2)
    large.sum().backward()
    with pytest.raises(ValueError, match="factor"):
        DECODERS.build("multires", visual_channels=16, text_channels=12, up_factors=(4, 3))


def test_the_sentence_gate_scales_the_visual_features_by_the_sentence():
    """F_V * (1 + W s + b): the sentence alone changes every map; without the gate it cannot."""
    kw = dict(visual_channels=16, text_channels=12, up_channels=(8, 4), head_widths=(8, 8, 4),
              up_factors=(4, 2))  # fmt: skip
    torch.manual_seed(0)
    gated = DECODERS.build("multires", sentence_gate=True, **kw)
    torch.manual_seed(0)
    plain = DECODERS.build("multires", **kw)
    visual, text = torch.randn(2, 16, 8, 8), torch.randn(2, 12, 8, 8)
    a, b = torch.randn(2, 12), torch.randn(2, 12)
    for x, y in zip(plain(visual, text, a), plain(visual, text, b), strict=True):
        assert torch.equal(x, y)
    for x, y in zip(gated(visual, text, a), gated(visual, text, b), strict=True):
        assert not torch.allclose(x, y)
    # a zero gate (W = 0, b = 0) is the plain decoder: the gate only multiplies
    with torch.no_grad():
        gated.sentence_gate.weight.zero_()
        gated.sentence_gate.bias.zero_()
    gated.load_state_dict(
        {**plain.state_dict(), **{k: v for k, v in gated.state_dict().items() if "gate" in k}}
    )
    for x, y in zip(gated(visual, text, a), plain(visual, text, a), strict=True):
        torch.testing.assert_close(x, y)
    with torch.no_grad():
        gated.sentence_gate.weight.fill_(1.0)  # every channel scaled by 1 + sum(s)
    seen = {}

    def keep(module, args):
        seen["v"] = args[0]

    gated.small.register_forward_pre_hook(keep)
    gated(visual, text, a)
    torch.testing.assert_close(seen["v"], visual * (1 + a.sum(1)[:, None, None, None]))
    with pytest.raises(ValueError, match="sentence feature"):
        gated(visual, text)


def test_the_sentence_match_adds_a_bilinear_score_to_the_small_logits():
    """R_S + <F_V(x), W s>: the match is computed on the ungated features, at every cell."""
    kw = dict(visual_channels=16, text_channels=12, up_channels=(8, 4), head_widths=(8, 8, 4),
              up_factors=(4, 2), sentence_gate=True)  # fmt: skip
    torch.manual_seed(0)
    matched = DECODERS.build("multires", sentence_match=True, **kw)
    gated = DECODERS.build("multires", **kw)
    gated.load_state_dict(matched.state_dict(), strict=False)
    visual, text, sentence = torch.randn(2, 16, 8, 8), torch.randn(2, 12, 8, 8), torch.randn(2, 12)
    with_match, without = matched(visual, text, sentence), gated(visual, text, sentence)
    score = torch.einsum("bchw,bc->bhw", visual, matched.sentence_match(sentence))[:, None]
    torch.testing.assert_close(with_match[0], without[0] + score)
    assert not torch.allclose(with_match[-1], without[-1])  # the fused map sees it too


def test_gate_norm_standardises_the_gate_input_over_the_batch():
    """In training, what all sentences of a batch share does not reach the gate; what differs
    between them does. Without gate_norm a shared shift changes the maps."""
    kw = dict(visual_channels=16, text_channels=12, up_channels=(8, 4), head_widths=(8, 8, 4),
              up_factors=(4, 2), sentence_gate=True)  # fmt: skip
    visual, text, sentence = torch.randn(4, 16, 8, 8), torch.randn(4, 12, 8, 8), torch.randn(4, 12)
    shift = 3.0 * torch.randn(1, 12)
    for norm in (False, True):
        torch.manual_seed(0)
        decoder = DECODERS.build("multires", gate_norm=norm, sentence_match=True, **kw).train()
        a, b = decoder(visual, text, sentence), decoder(visual, text, sentence + shift)
        assert torch.allclose(a[-1], b[-1], atol=1e-4) == norm
    one = decoder(visual[:1], text[:1], sentence[:1])  # a last batch of one still trains
    torch.testing.assert_close(one[-1], decoder.eval()(visual[:1], text[:1], sentence[:1])[-1])
    with pytest.raises(ValueError, match="need sentence_gate"):
        DECODERS.build("multires", visual_channels=16, text_channels=12, gate_norm=True)
    with pytest.raises(ValueError, match="gate_source"):
        DECODERS.build("multires", visual_channels=16, text_channels=12, sentence_gate=True,
                       gate_source="max")  # fmt: skip
