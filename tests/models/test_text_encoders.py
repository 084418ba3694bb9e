"""text_encoders: word_cnn's shapes, its zero padding rows, and that padding changes nothing."""

from __future__ import annotations

import pytest
import torch

from acga_lightning.models.text_encoders import WordCNN


def test_real_words_do_not_depend_on_how_far_the_sentence_is_padded() -> None:
    torch.manual_seed(0)
    encoder = WordCNN(in_channels=12, out_channels=7)
    words = torch.randn(1, 4, 12)
    short = encoder(words, torch.ones(1, 4, dtype=torch.bool))  # (1, 4, 7)
    padded_words = torch.cat([words, torch.zeros(1, 6, 12)], dim=1)  # 10 slots, 4 real
    padded = encoder(padded_words, torch.arange(10)[None] < 4)
    assert padded.shape == (1, 10, 7)
    torch.testing.assert_close(padded[:, :4], short)
    assert torch.equal(padded[:, 4:], torch.zeros(1, 6, 7))  # padding rows are exactly zero
    assert short.abs().max() < 1  # tanh


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="odd"):
        WordCNN(kernel_size=2)
    with pytest.raises(ValueError, match="300 channels"):
        WordCNN()(torch.randn(1, 3, 5))
