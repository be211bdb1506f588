"""Multi-head attention (Vaswani et al. 2017) through `torch.nn.functional.scaled_dot_product_attention`.

One fused input projection gives queries, keys and values; keys/values may have fewer heads than
queries (grouped-query attention, Ainslie et al. 2023). RoPE rotates q and k; ALiBi arrives as an
additive bias. `causal=False` with a padding mask gives the bidirectional encoder attention.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn.positional import apply_rope


class Attention(nn.Module):
    """Self-attention with optional GQA, RoPE and additive bias; causal by default."""

    def __init__(
        self,
        dim: int,
        n_head: int,
        n_kv_head: int | None = None,
        bias: bool = False,
        dropout: float = 0.0,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.n_head = n_head
        self.n_kv_head = n_kv_head or n_head
        self.head_dim = dim // n_head
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(dim, (n_head + 2 * self.n_kv_head) * self.head_dim, bias=bias)
        self.proj = nn.Linear(n_head * self.head_dim, dim, bias=bias)  # residual projection
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args: x (B, T, C); rope cos/sin (T, hs); attn_bias (1 or B, nh or 1, T, T) additive, which
        then carries causality itself. Returns (B, T, C)."""
        B, T, _ = x.shape  # batch, time, channels
        hs, nh, nkv = self.head_dim, self.n_head, self.n_kv_head
        qkv = self.qkv(x)  # (B, T, (nh + 2·nkv)·hs)
        qk = qkv[..., : (nh + nkv) * hs].view(B, T, nh + nkv, hs)
        if rope is not None:  # rotate queries and keys together: half the kernels of doing each
            cos, sin = rope
            qk = apply_rope(qk, cos[:, None, :], sin[:, None, :])  # cos/sin (T, 1, hs) broadcast over heads
        q = qk[:, :, :nh].transpose(1, 2)  # (B, nh, T, hs)
        k = qk[:, :, nh:].transpose(1, 2)  # (B, nkv, T, hs)
        v = qkv[..., (nh + nkv) * hs :].view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if nkv != nh:  # each key/value head serves nh / nkv query heads
            k = k.repeat_interleave(nh // nkv, dim=1)  # (B, nh, T, hs)
            v = v.repeat_interleave(nh // nkv, dim=1)
        cpu_bf16 = q.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        # Under autocast on CPU, attention itself runs in fp32 (autocast would cast it back to bf16):
        # the bf16 flash-attention backward kernel measured ~5× slower than fp32 here; the matmuls
        # around it keep their bf16 speed-up.
        with torch.autocast("cpu", enabled=False) if cpu_bf16 else contextlib.nullcontext():
            if cpu_bf16:
                q, k, v = q.float(), k.float(), v.float()
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=attn_bias,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=self.causal and attn_bias is None,
            )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # re-assemble heads side by side
        return self.resid_dropout(self.proj(y))
