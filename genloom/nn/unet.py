"""A small U-Net with time and class conditioning, for denoising diffusion in pixel space.

Blocks, small first: the sinusoidal time embedding (Vaswani et al. 2017, as used by Ho et al. 2020),
a residual block with GroupNorm and an additive time/class projection (DDPM's ResnetBlock, with the
scale-shift of Nichol & Dhariwal 2021 left out for plainness), strided-conv down and nearest-neighbour
up sampling, and the U-Net (Ronneberger et al. 2015) joining them with skip connections. Compare
diffusers' `UNet2DModel` and lucidrains' denoising-diffusion-pytorch `Unet`, which add attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps.

    Args:
        t: (B,) timesteps.
        dim: embedding width (even).
    Returns:
        (B, dim): [cos(t w_k), sin(t w_k)] with w_k = max_period^(-k / (dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _groups(channels: int) -> int:
    """The largest of 8, 4, 2, 1 groups that divides `channels` (GroupNorm needs a divisor)."""
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x))) + emb))): the residual unit of DDPM's U-Net."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)  # time (+ class) embedding, added per channel
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]  # (B, out_ch, 1, 1) broadcast over pixels
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class UNet(nn.Module):
    """Predicts a tensor the shape of its input from (x_t, t, class) — ε, v or x0 in diffusion.

    Each resolution level has `blocks_per_level` ResBlocks; between levels the width is
    `channels * mults[i]` and the resolution halves (a stride-2 conv) on the way down and doubles on
    the way up, where each block also reads the matching skip activation.

    Args:
        in_channels: image channels.
        channels: width of the first level.
        mults: width multiplier per level; len(mults) - 1 downsamplings (the side must divide by it).
        num_classes: 0 for unconditional; otherwise class ids 0..num_classes-1, and id num_classes is the
            learned "no class" token used by classifier-free guidance.
        patch: side of the pixel patches folded into channels before the first level (pixel unshuffle)
            and unfolded after the last: patch 2 runs the whole network at half the resolution, a quarter
            of the convolution cost, as "simple diffusion" (Hoogeboom et al. 2023) does for large images.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 32,
        mults: tuple[int, ...] = (1, 2),
        blocks_per_level: int = 1,
        num_classes: int = 0,
        dropout: float = 0.0,
        patch: int = 1,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.patch = patch
        in_channels = in_channels * patch * patch
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_widths = [channels]
        w = channels
        for i, width in enumerate(widths):
            for _ in range(blocks_per_level):
                self.down.append(ResBlock(w, width, emb_dim, dropout))
                w = width
                skip_widths.append(w)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
                skip_widths.append(w)
        self.mid1 = ResBlock(w, w, emb_dim, dropout)
        self.mid2 = ResBlock(w, w, emb_dim, dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, width in reversed(list(enumerate(widths))):
            for _ in range(blocks_per_level + 1):  # one more than down: it also reads the pre-downsample skip
                self.up.append(ResBlock(w + skip_widths.pop(), width, emb_dim, dropout))
                w = width
            if i > 0:
                self.upsample.append(nn.Conv2d(w, w, 3, padding=1))
        self.out_norm = nn.GroupNorm(_groups(w), w)
        self.out = nn.Conv2d(w, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start as the zero predictor: a stable first step
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]
        self.blocks_per_level = blocks_per_level
        self.levels = len(widths)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W); t: (B,) timesteps; labels: (B,) class ids or None. Returns (B, C, H, W)."""
        emb = self.time_mlp(timestep_embedding(t, self.channels))  # (B, 4 * channels)
        if self.class_emb is not None:
            assert labels is not None, "a class-conditional U-Net needs labels (num_classes means none)"
            emb = emb + self.class_emb(labels)
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)  # (B, C·p², H/p, W/p)
        h = self.stem(x)
        skips = [h]
        blocks = iter(self.down)
        for level in range(self.levels):
            for _ in range(self.blocks_per_level):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)  # (B, w, H/2, W/2)
                skips.append(h)
        h = self.mid2(self.mid1(h, emb), emb)
        blocks = iter(self.up)
        for level in range(self.levels):
            for _ in range(self.blocks_per_level + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level < self.levels - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, w, 2H, 2W)
                h = self.upsample[level](h)
        out = self.out(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
