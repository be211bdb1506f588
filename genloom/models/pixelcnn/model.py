"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders").

p(x) = prod_i p(x_i | x_<i) over pixels in raster order; each factor is a 256-way softmax over the grey
level (channels of an RGB pixel are predicted independently given the previous pixels, a simplification
of the paper's R -> G -> B ordering). The receptive field has no blind spot: a vertical stack sees the
rows above and a horizontal stack the pixels to the left (genloom/nn/masked_conv.py). Each gated layer:

    v = tanh(Wv_f * v + c_f) ⊙ sigmoid(Wv_g * v + c_g)                    (eq. 2, with class bias c)
    h = h + W_1x1 (tanh(Wh_f * h + V_f v + c_f) ⊙ sigmoid(Wh_g * h + V_g v + c_g))

The likelihood is exact: -log2 p(x) / D bits per dimension, the training loss. Sampling fills one
pixel at a time, computing each layer at the new pixel only (`raster_logits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genloom.data.images import to_levels
from genloom.nn.masked_conv import HorizontalStackConv, VerticalStackConv

LEVELS = 256  # grey levels per channel
# Sampling runs on one thread: each step is a one-pixel convolution over the batch, too small to split.
# Measured on the trained mnist-cpu model, 32 samples: 10.3-10.9 images/s on 1 thread, 0.5-0.8 on 2
# (the threads' synchronisation costs more than the work; 2 cores, load 2.8).
PER_PIXEL_THREADS = 1


@dataclass
class PixelCNNConfig:
    channels: int = 1  # image channels (set from the data)
    image_size: int = 28  # image side (set from the data)
    num_classes: int = 10  # classes in the data (set from the data)
    conditional: bool = True  # class-dependent gate biases
    hidden: int = 64  # channels of both stacks
    layers: int = 8  # gated layers after the first
    kernel_size: int = 5  # of the masked convolutions (odd)

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0 or self.kernel_size < 3:
            raise ValueError(f"kernel_size must be odd and >= 3, got {self.kernel_size}")
        if self.hidden <= 0 or self.layers < 0:
            raise ValueError("hidden must be positive and layers >= 0")
        if self.conditional and self.num_classes <= 0:
            raise ValueError("conditional needs labelled data (num_classes > 0); set model.conditional=false")


class GatedLayer(nn.Module):
    """One gated layer on the (vertical, horizontal) stacks; the first masks the centre pixel."""

    def __init__(self, in_ch: int, hidden: int, kernel_size: int, num_classes: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.v_conv = VerticalStackConv(in_ch, 2 * hidden, kernel_size, mask_center=first)
        self.h_conv = HorizontalStackConv(in_ch, 2 * hidden, kernel_size, mask_center=first)
        self.v_to_h = nn.Conv2d(2 * hidden, 2 * hidden, 1)  # the vertical stack feeds the horizontal one
        self.h_out = nn.Conv2d(hidden, hidden, 1)
        self.class_bias = nn.Embedding(num_classes, 2 * hidden) if num_classes > 0 else None

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.v_conv(v)  # (B, 2 hidden, H, W): rows above only
        return self.vertical_out(v_pre, labels), self.horizontal(h, self.v_to_h(v_pre), labels)

    def _bias(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return None if self.class_bias is None else self.class_bias(labels)[:, :, None, None]  # (B, 2 hidden, 1, 1)

    def vertical_out(self, v_pre: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The vertical stack's gated output from its convolution v_pre."""
        bias = self._bias(labels)
        v_f, v_g = (v_pre if bias is None else v_pre + bias).chunk(2, dim=1)
        return torch.tanh(v_f) * torch.sigmoid(v_g)

    def horizontal(self, h: torch.Tensor, from_v: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The horizontal stack's output from its input h and the vertical stack's contribution
        from_v = v_to_h(v_pre) at the same pixels."""
        return self._horizontal_out(self.h_conv(h) + from_v, h, labels)

    def horizontal_at(
        self, row: torch.Tensor, from_v: torch.Tensor, labels: torch.Tensor | None, j: int
    ) -> torch.Tensor:
        """`horizontal` at pixel j of a row (B, in, 1, W) alone: (B, hidden, 1, 1); from_v at that pixel."""
        return self._horizontal_out(self.h_conv.at(row, j) + from_v, row[:, :, :, j : j + 1], labels)

    def _horizontal_out(self, h_pre: torch.Tensor, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        bias = self._bias(labels)
        if bias is not None:
            h_pre = h_pre + bias
        h_f, h_g = h_pre.chunk(2, dim=1)
        h_out = self.h_out(torch.tanh(h_f) * torch.sigmoid(h_g))
        if not self.first:  # residual on the horizontal stack (the first layer changes width)
            h_out = h_out + h
        return h_out


class PixelCNN(nn.Module):
    def __init__(self, cfg: PixelCNNConfig) -> None:
        super().__init__()
        self.config = cfg
        n_cls = cfg.num_classes if cfg.conditional else 0
        self.first = GatedLayer(cfg.channels, cfg.hidden, cfg.kernel_size, n_cls, first=True)
        self.layers = nn.ModuleList(
            GatedLayer(cfg.hidden, cfg.hidden, cfg.kernel_size, n_cls, first=False) for _ in range(cfg.layers)
        )
        self.out1 = nn.Conv2d(cfg.hidden, cfg.hidden, 1)
        self.out2 = nn.Conv2d(cfg.hidden, cfg.channels * LEVELS, 1)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> logits (B, 256, C, H, W); logit (i, j) sees only pixels before (i, j)."""
        labels = labels if self.config.conditional else None
        v, h = self.first(x, x, labels)
        for layer in self.layers:
            v, h = layer(v, h, labels)
        return self._logits(h)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        out = self.out2(F.relu(self.out1(F.relu(h))))  # (B, C * 256, H, W)
        B, _, H, W = out.shape
        return out.view(B, self.config.channels, LEVELS, H, W).transpose(1, 2)  # (B, 256, C, H, W)

    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Exact -log2 p(x) / D per image (B,)."""
        logits = self(x, labels).float()
        nll = F.cross_entropy(logits, to_levels(x), reduction="none")  # (B, C, H, W) nats
        return nll.flatten(1).mean(1) / math.log(2)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, labels = batch
        bits = self.bits_per_dim(x, labels).mean()
        return bits, {"bits_per_dim": bits.detach()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """n images (n, C, S, S) in [-1, 1], one pixel at a time in raster order (`raster_logits`)."""
        cfg = self.config
        x = torch.zeros(n, cfg.channels, cfg.image_size, cfg.image_size)

        def draw(i: int, j: int, logits: torch.Tensor) -> None:
            probs = (logits.float() / temperature).softmax(dim=1).transpose(1, 2).reshape(-1, LEVELS)
            level = torch.multinomial(probs, 1, generator=generator).view(n, cfg.channels)
            x[:, :, i, j] = level.float() / 127.5 - 1

        threads = torch.get_num_threads()
        torch.set_num_threads(PER_PIXEL_THREADS)
        try:
            self.raster_logits(x, labels, draw)
        finally:
            torch.set_num_threads(threads)
        return x

    @torch.no_grad()
    def raster_logits(
        self, x: torch.Tensor, labels: torch.Tensor | None, fill: Callable[[int, int, torch.Tensor], None]
    ) -> None:
        """Walk the pixels of x (n, C, S, S) in raster order, calling `fill(i, j, logits (n, 256, C))` to
        set pixel (i, j) before moving on; the logits are those of `forward` on the image so far.

        Each layer's output at a pixel depends only on its input above (vertical stack) or to the left
        (horizontal stack), so once computed it never changes as later pixels are filled (Ramachandran et
        al. 2017, "Fast Generation for Convolutional Autoregressive Models"). Every layer's input is kept
        as it fills: at row i, each vertical layer computes row i alone from the rows above in its input;
        at pixel j, each horizontal layer computes pixel j alone from the pixels to its left, and the
        output layers run on that pixel only. That is S * S one-pixel passes and S one-row passes, instead
        of S * S passes of the whole network over the image so far (~1/3 S^2 times the work at side S;
        tests/models/test_image_families.py checks the logits against `forward`)."""
        cfg = self.config
        labels = labels if cfg.conditional else None
        n, S = x.shape[0], cfg.image_size
        layers = [self.first, *self.layers]
        v_in = [x] + [x.new_zeros(n, cfg.hidden, S, S) for _ in layers[1:]]  # each layer's vertical input
        for i in range(S):
            from_v = []  # v_to_h(v_pre) at row i, per layer: (n, 2 hidden, 1, S)
            for k, layer in enumerate(layers):
                v_pre = layer.v_conv.row(v_in[k], i)
                from_v.append(layer.v_to_h(v_pre))
                if k + 1 < len(layers):
                    v_in[k + 1][:, :, i : i + 1] = layer.vertical_out(v_pre, labels)
            h_in = [x[:, :, i : i + 1]] + [x.new_zeros(n, cfg.hidden, 1, S) for _ in layers[1:]]
            for j in range(S):
                for k, layer in enumerate(layers):
                    h = layer.horizontal_at(h_in[k], from_v[k][:, :, :, j : j + 1], labels, j)
                    if k + 1 < len(layers):
                        h_in[k + 1][:, :, :, j : j + 1] = h
                fill(i, j, self._logits(h)[:, :, :, 0, 0])
