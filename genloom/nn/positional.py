"""Positional information for attention: sinusoidal (Vaswani et al. 2017, §3.5), rotary (RoPE, Su et
al. 2021) and ALiBi (Press et al. 2022). Learned positions are a plain `nn.Embedding` in the model.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPositions(nn.Module):
    """Fixed PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...); added to the embeddings."""

    pe: torch.Tensor

    def __init__(self, max_len: int, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (T, 1)
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(base) / dim))  # (d/2,)
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
        self.register_buffer("pe", pe, persistent=False)  # derived from the config: not saved

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.pe[positions]


def rope_cache(max_len: int, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_len, head_dim), in the half-split layout Hugging Face Llama uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (hs/2,)
    freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, hs/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, hs)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+hs/2}) by position-dependent angles (eq. 34, Su et al. 2021).

    x is (..., hs) with the time axis lined up with cos/sin, e.g. x (B, nh, T, hs) with cos (T, hs), or
    x (B, T, nh, hs) with cos (T, 1, hs)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Per-head slopes 2^(-8i/n); for a head count that is not a power of two, interleave as the paper does."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_head).is_integer():
        return torch.tensor(power_of_two(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    extra = power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(power_of_two(closest) + extra)


def alibi_bias(n_head: int, q_len: int, k_len: int | None = None) -> torch.Tensor:
    """Additive attention bias (1, nh, Tq, Tk): -slope·distance on the past, -inf on the future."""
    k_len = k_len or q_len
    q_pos = torch.arange(k_len - q_len, k_len)[:, None]  # queries are the last q_len positions
    k_pos = torch.arange(k_len)[None, :]
    distance = (q_pos - k_pos).float()  # (Tq, Tk), positive for the past
    bias = -alibi_slopes(n_head)[:, None, None] * distance  # (nh, Tq, Tk)
    bias = bias.masked_fill(distance < 0, float("-inf"))
    return bias[None]
