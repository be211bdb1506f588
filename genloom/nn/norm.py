"""Normalization layers: LayerNorm (Ba et al. 2016) with optional bias, and RMSNorm (Zhang & Sennrich 2019)."""

from __future__ import annotations

from typing import Literal

from torch import nn


def make_norm(kind: Literal["layernorm", "rmsnorm"], dim: int, eps: float = 1e-5, bias: bool = False) -> nn.Module:
    """LayerNorm re-centres and re-scales; RMSNorm only re-scales (cheaper, used by Llama)."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {kind!r}")
