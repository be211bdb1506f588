"""Masked convolutions for autoregressive image models, with no blind spot.

The plain masked convolution of PixelCNN (van den Oord et al. 2016a) cannot see a triangle of pixels
above and to the right. Gated PixelCNN (van den Oord et al. 2016b, "Conditional Image Generation with
PixelCNN Decoders") splits the receptive field in two stacks: a *vertical* stack that sees every pixel of
the rows above (at any column within reach), and a *horizontal* stack that sees the pixels to the left
in the current row. The first layer also masks the centre, so output (i, j) never depends on input
(i, j) or anything after it in raster order; tests/nn/test_image_layers.py checks this with gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VerticalStackConv(nn.Conv2d):
    """k×k convolution seeing rows above the centre (and the centre row unless `mask_center`).

    Stacked with `mask_center=True` on the first layer only, output row i depends on input rows < i.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, mask_center: bool) -> None:
        super().__init__(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        mask[kernel_size // 2 + 1 :, :] = 0  # rows below the centre
        if mask_center:
            mask[kernel_size // 2, :] = 0  # the centre row itself
        self.mask: torch.Tensor
        self.register_buffer("mask", mask[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class HorizontalStackConv(nn.Conv2d):
    """1×k convolution seeing pixels left of the centre (and the centre unless `mask_center`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, mask_center: bool) -> None:
        super().__init__(in_ch, out_ch, (1, kernel_size), padding=(0, kernel_size // 2))
        mask = torch.ones(1, kernel_size)
        mask[0, kernel_size // 2 + 1 :] = 0  # pixels to the right
        if mask_center:
            mask[0, kernel_size // 2] = 0
        self.mask: torch.Tensor
        self.register_buffer("mask", mask[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)
