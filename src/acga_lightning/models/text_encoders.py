"""Text encoders: word vectors to contextual word features."""

from __future__ import annotations

import torch
from torch import nn

from acga_lightning.registry import TEXT_ENCODERS


@TEXT_ENCODERS.register("word_cnn")
class WordCNN(nn.Module):
    """ACGA's text encoder: a 1-D convolution over word2vec vectors, then tanh.

    ``(B, N, in_channels) -> (B, N, out_channels)``. Padding words (``word_mask`` False) come out
    as zero rows, so that they carry nothing into the attention even before masking.
    """

    def __init__(
        self, in_channels: int = 300, out_channels: int = 300, kernel_size: int = 3
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the word count, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, words: torch.Tensor, word_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = words.shape
        if d != self.in_channels:
            raise ValueError(
                f"words must have {self.in_channels} channels, got shape {tuple(words.shape)}"
            )
        features = torch.tanh(self.conv(words.transpose(1, 2))).transpose(1, 2)  # (B, N, D)
        if word_mask is not None:
            features = features * word_mask[..., None].to(features.dtype)
        return features
