"""Multi-head attention (Vaswani et al. 2017) through `torch.nn.functional.scaled_dot_product_attention`.

One fused input projection gives queries, keys and values; keys/values may have fewer heads than
queries (grouped-query attention, Ainslie et al. 2023). RoPE rotates q and k; ALiBi arrives as an
additive bias. `causal=False` with a padding mask gives the bidirectional encoder attention.

For autoregressive decoding, `KVCache` holds every layer's keys and values in buffers allocated once
(B, n_kv_head, max_len, head_dim); a step writes its new keys/values at `start` and attends over the
filled prefix, so one new token costs O(context) instead of recomputing the whole context (as in
Pope et al. 2022, "Efficiently Scaling Transformer Inference", §2).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn.linear import Linear
from genloom.nn.positional import apply_rope


class KVCache:
    """Preallocated keys and values of every layer: `k[i]`, `v[i]` are (B, n_kv_head, max_len, head_dim).

    Slots are filled left to right; `length` is how many are filled. Rows of a batch share slots, so a
    left-padded prompt keeps its padding slots; for those the cache also records which slots hold real
    tokens (`valid`), each slot's position, and how many real tokens each row has seen."""

    def __init__(
        self,
        n_layer: int,
        batch: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (batch, n_kv_head, max_len, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0  # slots filled so far
        self.padded = False  # True once a row had padding: positions then differ between rows
        self.valid = torch.ones(batch, max_len, dtype=torch.bool, device=device)  # (B, max_len)
        self.positions = torch.arange(max_len, device=device).repeat(batch, 1)  # (B, max_len)
        self.seen = torch.zeros(batch, dtype=torch.long, device=device)  # (B,) real tokens so far

    def nbytes(self) -> int:
        """Memory the cache holds, in bytes."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index` (B',) of every buffer, in that order (beam search follows its beams)."""
        for i in range(len(self.k)):
            self.k[i] = self.k[i].index_select(0, index)
            self.v[i] = self.v[i].index_select(0, index)
        self.valid = self.valid.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.seen = self.seen.index_select(0, index)


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
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.n_head = n_head
        self.n_kv_head = n_kv_head or n_head
        self.head_dim = dim // n_head
        self.causal = causal
        self.dropout = dropout
        # qkv_bias: biases on the input projection alone (Qwen2); `bias` puts them on both projections
        self.qkv = Linear(dim, (n_head + 2 * self.n_kv_head) * self.head_dim, bias=bias or qkv_bias)
        self.proj = Linear(n_head * self.head_dim, dim, bias=bias)  # residual projection
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        attn_bias: torch.Tensor | None = None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        start: int | torch.Tensor = 0,
    ) -> torch.Tensor:
        """Args: x (B, T, C); rope cos/sin (T, hs) or per row (B, T, hs); attn_bias (1 or B, nh or 1, T, S)
        additive or boolean (True = attend), which then carries causality itself; cache this layer's
        (k, v) buffers of `KVCache`, written at slots [start, start + T), attended over [0, start + T)
        (S = start + T). Returns (B, T, C)."""
        B, T, _ = x.shape  # batch, time, channels
        hs, nh, nkv = self.head_dim, self.n_head, self.n_kv_head
        qkv = self.qkv(x)  # (B, T, (nh + 2·nkv)·hs)
        qk = qkv[..., : (nh + nkv) * hs].view(B, T, nh + nkv, hs)
        if rope is not None:  # rotate queries and keys together: half the kernels of doing each
            cos, sin = rope
            qk = apply_rope(qk, cos[..., None, :], sin[..., None, :])  # cos/sin (T, 1, hs) broadcast over heads
        q = qk[:, :, :nh].transpose(1, 2)  # (B, nh, T, hs)
        k = qk[:, :, nh:].transpose(1, 2)  # (B, nkv, T, hs)
        v = qkv[..., (nh + nkv) * hs :].view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if cache is not None:
            return self._attend_cached(q, k, v, cache, start, attn_bias)
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

    def _attend_cached(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor],
        start: int | torch.Tensor,
        attn_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """Inference with a KV cache: store the new k/v, attend over every filled slot (GQA without copies).

        `start` as a 0-dim tensor (one new token): written with `index_copy_` and attended over the whole
        buffer under `attn_bias`, so every step has the same shapes — what `torch.compile` needs to
        compile the decode step once."""
        B, nh, T, hs = q.shape
        k_buf, v_buf = cache  # (B, nkv, max_len, hs)
        if isinstance(start, torch.Tensor):  # static-shape decode (one slot given as a tensor; compilable)
            k_buf.index_copy_(2, start.view(1), k)
            v_buf.index_copy_(2, start.view(1), v)
            nkv = self.n_kv_head
            qg = q.reshape(B, nkv, nh // nkv * T, hs)  # query heads grouped by the key/value head they read
            scores = (qg @ k_buf.transpose(-1, -2)) * hs**-0.5  # (B, nkv, g, S) over the whole buffer
            if attn_bias is not None:
                bias = attn_bias if attn_bias.shape[1] == 1 else attn_bias.reshape(B, nkv, -1, attn_bias.shape[-1])
                scores = scores.masked_fill(~bias, float("-inf")) if bias.dtype == torch.bool else scores + bias
            y = (scores.softmax(-1) @ v_buf).reshape(B, nh, T, hs)
            return self.proj(y.transpose(1, 2).reshape(B, T, nh * hs))
        end = start + T
        k_buf[:, :, start:end] = k
        v_buf[:, :, start:end] = v
        keys, values = k_buf[:, :, :end], v_buf[:, :, :end]  # (B, nkv, S, hs) views, no copy
        y = F.scaled_dot_product_attention(
            q,
            keys,
            values,
            attn_mask=attn_bias,
            is_causal=attn_bias is None and T > 1,  # a prefill from slot 0 without padding
            enable_gqa=self.n_kv_head != nh,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)
        return self.proj(y)
