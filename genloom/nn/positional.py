"""Positional information for attention: sinusoidal (Vaswani et al. 2017, §3.5), rotary (RoPE, Su et
al. 2021) and ALiBi (Press et al. 2022). Learned positions are a plain `nn.Embedding` in the model.

RoPE's frequencies can be rescaled to stretch a pretrained context, as released checkpoints do; each kind
is computed exactly as transformers' `modeling_rope_utils.py` computes it: "linear" (position
interpolation, Chen et al. 2023), "dynamic" (NTK-aware base growth once a pass exceeds the context),
"llama3" (Meta's wavelength-banded interpolation) and "yarn" (Peng et al. 2023, with its cos/sin scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

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


RopeKind = Literal["none", "linear", "dynamic", "llama3", "yarn"]


@dataclass(frozen=True)
class RopeScaling:
    """A rescaling of RoPE's frequencies (Hugging Face's `rope_parameters` without `rope_theta`)."""

    kind: RopeKind = "none"
    factor: float = 1.0  # context stretch
    original_context: int = 2048  # pretraining context (llama3, yarn); dynamic: the context beyond which it acts
    low_freq_factor: float = 1.0  # llama3: wavelengths above original_context / low_freq_factor are divided by factor
    high_freq_factor: float = 4.0  # llama3: wavelengths below original_context / high_freq_factor are kept
    beta_fast: float = 32.0  # yarn: rotations at which interpolation ends (eq. 17-18, Peng et al. 2023)
    beta_slow: float = 1.0  # yarn: rotations at which it begins
    attention_factor: float = 1.0  # yarn: cos/sin are multiplied by this (0.1·ln(factor) + 1 unless given)
    truncate: bool = True  # yarn: round the ramp's ends to whole dimensions


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling, seq_len: int = 0) -> torch.Tensor:
    """RoPE's inverse frequencies (head_dim/2,) under `scaling`; `seq_len` is the longest position + 1 of the
    pass (dynamic scaling grows the base beyond its original context)."""
    dim = head_dim
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim  # (hs/2,)
    s = scaling
    if s.kind == "dynamic" and seq_len > s.original_context:
        theta = theta * ((s.factor * seq_len / s.original_context) - (s.factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (theta**exponents)
    if s.kind == "linear":
        return inv_freq / s.factor
    if s.kind == "llama3":
        low_wavelen = s.original_context / s.low_freq_factor
        high_wavelen = s.original_context / s.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)  # long wavelengths: interpolate
        smooth = (s.original_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
        smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)
    if s.kind == "yarn":
        pos_freqs = theta**exponents

        def correction_dim(rotations: float) -> float:  # the dimension that turns `rotations` times in the context
            return (dim * math.log(s.original_context / (rotations * 2 * math.pi))) / (2 * math.log(theta))

        low, high = correction_dim(s.beta_fast), correction_dim(s.beta_slow)
        if s.truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001  # no zero-width ramp
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        extrapolation = 1 - ramp  # 1 where a dimension keeps its frequency, 0 where it is interpolated
        return (1.0 / (s.factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq


def rope_cache(
    max_len: int, head_dim: int, theta: float = 10000.0, scaling: RopeScaling | None = None, seq_len: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_len, head_dim), in the half-split layout Hugging Face Llama uses."""
    scaling = scaling or RopeScaling()
    inv_freq = rope_inv_freq(head_dim, theta, scaling, seq_len)  # (hs/2,)
    freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, hs/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, hs)
    if scaling.kind == "yarn" and scaling.attention_factor != 1.0:
        return emb.cos() * scaling.attention_factor, emb.sin() * scaling.attention_factor
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
