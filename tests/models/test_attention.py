"""VGLA and LGVA against a direct float64 transcription of the paper's equations 3-8."""

import math

import pytest
import torch

from acga_lightning.models.attention import (
    ACGAAttention,
    LGVAOnly,
    NoAttention,
    VGLAOnly,
    sentence_feature,
)
from acga_lightning.models.coords import coordinate_map


def transcription(module: ACGAAttention, visual, text, word_mask):
    """Equations 3-8 written pixel by pixel and word by word, with loops, in float64."""
    b, c, h, w = visual.shape
    vgla, lgva = module.vgla, module.lgva
    coords = coordinate_map(h, w, dtype=torch.float64)
    out_text = torch.zeros(b, text.shape[2], h, w, dtype=torch.float64)
    out_visual = torch.zeros(b, c, h, w, dtype=torch.float64)
    weights_all = torch.zeros(b, h * w, text.shape[1], dtype=torch.float64)
    for n in range(b):
        words = [text[n, i] for i in range(text.shape[1]) if word_mask[n, i]]
        f_t = torch.stack(words)  # (n_real, D)
        pixels = [
            torch.cat([visual[n, :, y, x], coords[:, y, x]]) for y in range(h) for x in range(w)
        ]
        f_vc = torch.stack(pixels)  # (HW, C+8)
        # eq. 3-5: each pixel's query in text space, softmax over real words, weighted words
        for p in range(h * w):
            q = vgla.visual_to_text.weight @ f_vc[p] + vgla.visual_to_text.bias
            logits = torch.stack([q @ f_t[i] / math.sqrt(f_t.shape[1]) for i in range(len(f_t))])
            a = torch.exp(logits - logits.max()) / torch.exp(logits - logits.max()).sum()
            out_text[n, :, p // w, p % w] = sum(a[i] * f_t[i] for i in range(len(f_t)))
            real = [i for i in range(text.shape[1]) if word_mask[n, i]]
            weights_all[n, p, real] = a
        # eq. 6-8: sentence gate, gated query/key, softmax over pixels, first C channels
        s = f_t.max(dim=0).values
        g = lgva.sentence_gate.weight @ s + lgva.sentence_gate.bias
        qs = [(lgva.query.weight @ v + lgva.query.bias) * g for v in f_vc]
        ks = [(lgva.key.weight @ v + lgva.key.bias) * g for v in f_vc]
        vs = [lgva.value.weight @ v + lgva.value.bias for v in f_vc]
        for p in range(h * w):
            logits = torch.stack([qs[p] @ k / math.sqrt(len(g)) for k in ks])
            a = torch.softmax(logits, dim=0)
            out_visual[n, :, p // w, p % w] = sum(a[j] * vs[j] for j in range(h * w))[:c]
    return out_visual, out_text, weights_all


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_acga_attention_equals_equations(use_sdpa):
    torch.manual_seed(0)
    module = ACGAAttention(visual_channels=6, text_channels=5, use_sdpa=use_sdpa).double()
    for (
        p
    ) in module.parameters():  # larger weights than the official init, so softmaxes are not flat
        torch.nn.init.normal_(p, 0, 0.5)
    visual = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    text = torch.randn(2, 7, 5, dtype=torch.float64)
    word_mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out = module(visual, text, word_mask)
    ref_visual, ref_text, ref_weights = transcription(module, visual, text, word_mask)
    torch.testing.assert_close(out.visual, ref_visual, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.text, ref_text, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.word_attention, ref_weights, rtol=1e-10, atol=1e-12)
    assert torch.all(out.word_attention[0, :, 3:] == 0), "padding words must get no attention"


def test_padding_words_do_not_change_the_result():
    torch.manual_seed(1)
    module = ACGAAttention(visual_channels=4, text_channels=3).double()
    visual = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    text = torch.randn(1, 3, 3, dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    padded = torch.cat([text, 100 * torch.randn(1, 5, 3, dtype=torch.float64)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)], dim=1)
    a, b = module(visual, text, mask), module(visual, padded, padded_mask)
    torch.testing.assert_close(a.visual, b.visual)
    torch.testing.assert_close(a.text, b.text)


def test_variants_route_the_right_features():
    torch.manual_seed(2)
    visual = torch.randn(2, 4, 3, 3)
    text = torch.randn(2, 5, 3)
    mask = torch.ones(2, 5, dtype=torch.bool)
    sentence = sentence_feature(text, mask)
    none = NoAttention(visual_channels=4, text_channels=3)(visual, text, mask)
    assert none.visual is visual and none.word_attention is None
    torch.testing.assert_close(none.text, sentence[:, :, None, None].expand(-1, -1, 3, 3))
    vgla = VGLAOnly(visual_channels=4, text_channels=3)(visual, text, mask)
    assert vgla.visual is visual and vgla.word_attention.shape == (2, 9, 5)
    lgva = LGVAOnly(visual_channels=4, text_channels=3)(visual, text, mask)
    assert lgva.visual.shape == visual.shape and not torch.equal(lgva.visual, visual)
    torch.testing.assert_close(lgva.text, none.text)


def test_empty_sentence_is_an_error():
    with pytest.raises(ValueError, match="at least one real word"):
        sentence_feature(torch.randn(1, 3, 2), torch.zeros(1, 3, dtype=torch.bool))


def test_init_std_scales_the_linear_weights_only():
    torch.manual_seed(0)
    official = ACGAAttention(visual_channels=64, text_channels=32)
    wide = ACGAAttention(visual_channels=64, text_channels=32, init_std=0.2)
    assert official.lgva.query.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert wide.lgva.query.weight.std().item() == pytest.approx(0.2, rel=0.1)
    assert torch.all(wide.lgva.query.bias == 0)
    with pytest.raises(ValueError, match="init_std"):
        ACGAAttention(init_std=0.0)
