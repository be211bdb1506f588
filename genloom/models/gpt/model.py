"""GPT: a decoder-only transformer language model, read top to bottom.

References: Radford et al. 2018/2019 (GPT, GPT-2: pre-norm blocks, learned positions, weight tying,
init scaled by depth); Vaswani et al. 2017 (attention, sinusoidal positions); Su et al. 2021 (RoPE);
Press et al. 2022 (ALiBi); Shazeer 2020 (SwiGLU); Zhang & Sennrich 2019 (RMSNorm). nanoGPT's
`model.py` is the readable reference implementation we hold ourselves to.

The objective is next-token prediction: `loss((x, y))` is the mean cross-entropy of predicting
y[t] = x[t+1] from x[:t+1]. Everything the model needs is in `GPTConfig`.

For generation, `forward(idx, cache=KVCache, attention_mask=...)` runs incrementally: the new tokens'
keys/values go into the cache, positions continue from what the cache has seen (per row, so a
left-padded batch gets the right positions for every encoding), and `last_only=True` computes the
vocabulary projection for the final position only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn import (
    Attention,
    KVCache,
    Linear,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
    make_mlp,
    make_norm,
    rope_cache,
)
from genloom.nn.linear import stream_rows, streaming_pays
from genloom.nn.positional import RopeKind, RopeScaling

HEAD_TRANSPOSE_MIN = 2**20  # decode with a transposed copy of output projections at least this large
# a model whose weights exceed this does not stay in a CPU's caches (32 MiB of L3 here) from one token to
# the next: its decode steps of up to 32 rows stream the weights (genloom/nn/linear.py)
STREAM_MIN_BYTES = 64 * 2**20


@dataclass
class GPTConfig:
    vocab_size: int = 65  # set from the tokenizer when training
    block_size: int = 64  # context length in tokens
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention (query) heads
    n_kv_head: int | None = None  # key/value heads for grouped-query attention (None: n_head)
    n_embd: int = 128  # model width
    mlp: Literal["gelu", "swiglu"] = "gelu"  # feed-forward kind
    mlp_hidden: int | None = None  # feed-forward width (None: 4·n_embd for GELU, ~8/3·n_embd for SwiGLU)
    gelu_approximate: Literal["none", "tanh"] = "none"  # "tanh": GPT-2's approximate GELU (for imported weights)
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-5
    pos_encoding: Literal["learned", "sinusoidal", "rope", "alibi"] = "learned"
    rope_theta: float = 10000.0  # RoPE base; larger stretches the wavelengths
    # RoPE rescaling of pretrained checkpoints (genloom/nn/positional.py; the fields of Hugging Face's rope_parameters)
    rope_scaling: RopeKind = "none"
    rope_factor: float = 1.0  # how many times the context is stretched
    rope_original_context: int | None = None  # the pretraining context (None: block_size)
    rope_low_freq_factor: float = 1.0  # llama3
    rope_high_freq_factor: float = 4.0  # llama3
    rope_beta_fast: float = 32.0  # yarn
    rope_beta_slow: float = 1.0  # yarn
    rope_attention_factor: float | None = None  # yarn's cos/sin scale (None: 0.1·ln(rope_factor) + 1)
    rope_truncate: bool = True  # yarn: whole-dimension ramp ends
    dropout: float = 0.0  # on embeddings, attention and residual branches
    bias: bool = False  # biases in Linear layers and LayerNorm (GPT-2 had them; off is a bit faster)
    tie_weights: bool = True  # share the token embedding with the output projection (Press & Wolf 2017)
    qkv_bias: bool = False  # biases on the query/key/value projection only (Qwen2); `bias` puts them everywhere

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        kv = self.n_kv_head or self.n_head
        if kv <= 0 or self.n_head % kv:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.pos_encoding == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rope needs an even head size, got n_embd/n_head = {self.n_embd // self.n_head}")
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f"gelu_approximate must be 'none' or 'tanh', got {self.gelu_approximate!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.rope_scaling != "none" and self.pos_encoding != "rope":
            raise ValueError(f"rope_scaling={self.rope_scaling!r} needs pos_encoding='rope'")
        if self.rope_scaling != "none" and self.rope_factor <= 0:
            raise ValueError(f"rope_factor must be positive, got {self.rope_factor}")

    @property
    def rope(self) -> RopeScaling:
        """The RoPE rescaling these fields describe."""
        factor = self.rope_factor
        attention = self.rope_attention_factor
        if attention is None:  # yarn's default (Peng et al. 2023, eq. 22 via transformers' get_mscale)
            attention = 0.1 * math.log(factor) + 1.0 if self.rope_scaling == "yarn" and factor > 1 else 1.0
        return RopeScaling(
            kind=self.rope_scaling,
            factor=factor,
            original_context=self.rope_original_context or self.block_size,
            low_freq_factor=self.rope_low_freq_factor,
            high_freq_factor=self.rope_high_freq_factor,
            beta_fast=self.rope_beta_fast,
            beta_slow=self.rope_beta_slow,
            attention_factor=attention,
            truncate=self.rope_truncate,
        )


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x)) (GPT-2 §2.3)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm_1 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.attn = Attention(
            cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.bias, cfg.dropout, causal=True, qkv_bias=cfg.qkv_bias
        )
        self.norm_2 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.mlp = make_mlp(cfg.mlp, cfg.n_embd, cfg.mlp_hidden, cfg.bias, cfg.dropout, cfg.gelu_approximate)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        attn_bias: torch.Tensor | None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        start: int | torch.Tensor = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), rope, attn_bias, cache, start)
        x = x + self.mlp(self.norm_2(x))
        return x


class GPT(nn.Module):
    """Token embedding → positions → n_layer blocks → final norm → logits over the vocabulary."""

    rope_cos: torch.Tensor  # buffers derived from the config, present for rope / alibi only
    rope_sin: torch.Tensor
    alibi: torch.Tensor
    alibi_slopes: torch.Tensor

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe: nn.Module | None = None
        if cfg.pos_encoding == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        elif cfg.pos_encoding == "sinusoidal":
            self.wpe = SinusoidalPositions(cfg.block_size, cfg.n_embd)
        if cfg.pos_encoding == "rope":
            cos, sin = rope_cache(cfg.block_size, cfg.n_embd // cfg.n_head, cfg.rope_theta, cfg.rope)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.pos_encoding == "alibi":
            self.register_buffer("alibi", alibi_bias(cfg.n_head, cfg.block_size), persistent=False)
            self.register_buffer("alibi_slopes", alibi_slopes(cfg.n_head), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.lm_head = Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: scale residual projections by 1/sqrt(2·n_layer) so the residual stream's variance
        # does not grow with depth (two residual additions per block).
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Args: idx (B, T) token ids with T ≤ block_size; cache: a `KVCache` (from `new_cache`) that
        holds the earlier tokens; attention_mask (B, T) bool, False for (left) padding of the new tokens;
        last_only: logits of the final position only. Returns logits (B, T or 1, vocab_size)."""
        if cache is not None:
            return self._forward_cached(idx, cache, attention_mask, last_only)
        if attention_mask is not None:
            raise ValueError("attention_mask needs a cache: pass cache=model.new_cache(...)")
        _B, T = idx.shape
        if self.config.block_size < T:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))  # (T, C) broadcast over the batch
        x = self.drop(x)
        rope = None
        if self.config.pos_encoding == "rope":
            cos, sin = self._rope_tables(T)
            rope = (cos[:T], sin[:T])
        attn_bias = self.alibi[:, :, :T, :T] if self.config.pos_encoding == "alibi" else None
        for block in self.blocks:
            x = block(x, rope, attn_bias)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        return self.lm_head(self.norm_f(x))  # (B, T, vocab_size)

    def _rope_tables(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables for a pass whose largest position is `seq_len - 1`: the precomputed ones, except
        that dynamic scaling re-bases the frequencies for a pass beyond its original context (as
        transformers does at each forward call)."""
        cfg = self.config
        if cfg.rope_scaling == "dynamic" and seq_len > cfg.rope.original_context:
            cos, sin = rope_cache(seq_len, cfg.n_embd // cfg.n_head, cfg.rope_theta, cfg.rope, seq_len)
            return cos.to(self.rope_cos), sin.to(self.rope_sin)
        return self.rope_cos, self.rope_sin

    # ---- incremental decoding ------------------------------------------------------------------

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for `batch` rows of at most `max_len` (≤ block_size) tokens."""
        cfg = self.config
        max_len = max_len or cfg.block_size
        if max_len > cfg.block_size:
            raise ValueError(f"a cache of {max_len} tokens is longer than block_size {cfg.block_size}")
        w = self.wte.weight
        hs = cfg.n_embd // cfg.n_head
        self._set_streaming()
        return KVCache(cfg.n_layer, batch, cfg.n_kv_head or cfg.n_head, max_len, hs, w.dtype, w.device)

    def _set_streaming(self) -> bool:
        """Turn the streaming matrix-vector product of a `Linear` on when a one-token step is bound by
        reading the weights from memory (a CPU model of at least STREAM_MIN_BYTES) and, for the weights
        of its shape, it beats BLAS on this machine (`streaming_pays`). Decided afresh with each new
        cache, since weights can change dtype, device or size between generations."""
        w = self.wte.weight
        nbytes = sum(p.numel() * p.element_size() for p in self.parameters())
        on = w.device.type == "cpu" and w.dtype in (torch.float32, torch.bfloat16) and nbytes >= STREAM_MIN_BYTES
        by_shape: dict[tuple[object, ...], list[Linear]] = {}
        for m in self.modules():
            if isinstance(m, Linear):
                m.stream = False
                by_shape.setdefault((*m.weight.shape, m.weight.dtype), []).append(m)
        for group in by_shape.values() if on else ():
            pays = streaming_pays([m.weight for m in group])
            for m in group:
                m.stream = pays
        return on

    def _streams_head(self, batch: int) -> bool:
        """Whether the output projection of a `batch`-row step streams its (V, C) weight (no (C, V) copy)."""
        return batch <= stream_rows(self.lm_head.weight.dtype) and bool(getattr(self.lm_head, "stream", False))

    def _forward_cached(
        self, idx: torch.Tensor, cache: KVCache, attention_mask: torch.Tensor | None, last_only: bool
    ) -> torch.Tensor:
        B, T = idx.shape
        start, end = cache.length, cache.length + T  # slots of the new tokens
        if end > cache.max_len:
            raise ValueError(f"{end} tokens do not fit in a KV cache of {cache.max_len}")
        padded = cache.padded or (attention_mask is not None and not bool(attention_mask.all()))
        x = self.wte(idx)  # (B, T, C)
        kind = self.config.pos_encoding
        rope: tuple[torch.Tensor, torch.Tensor] | None = None
        mask: torch.Tensor | None = None
        if not padded:  # every row at the same positions: slot index = position, slices of the tables
            if isinstance(self.wpe, nn.Embedding):
                x = x + self.wpe.weight[start:end]  # (T, C) rows of the table, no index tensor per step
            elif self.wpe is not None:
                x = x + self.wpe.pe[start:end]  # type: ignore[index]
            if kind == "rope":
                cos, sin = self._rope_tables(end)
                rope = (cos[start:end], sin[start:end])  # (T, hs)
            if kind == "alibi":
                mask = self.alibi[:, :, start:end, :end]  # (1, nh, T, S)
            elif T > 1 and start > 0:  # a chunk after a prefix: causal within the chunk
                mask = torch.ones(T, end, dtype=torch.bool, device=idx.device).tril(start)  # (T, S)
        else:
            if attention_mask is None:
                attention_mask = torch.ones(B, T, dtype=torch.bool, device=idx.device)
            cache.padded = True
            cache.valid[:, start:end] = attention_mask
            # position of each token = number of real tokens before it in its row
            pos = cache.seen[:, None] + attention_mask.long().cumsum(1) - 1  # (B, T)
            pos = pos.clamp(min=0)  # padding takes position 0; it is never attended to
            cache.positions[:, start:end] = pos
            cache.seen += attention_mask.sum(1)
            if self.wpe is not None:
                x = x + self.wpe(pos)  # (B, T, C)
            if kind == "rope":
                cos, sin = self._rope_tables(int(pos.max()) + 1)
                rope = (cos[pos], sin[pos])  # (B, T, hs)
            slots = torch.arange(end, device=idx.device)
            q_slots = slots[start:end, None]  # (T, 1)
            # attend to real tokens at or before the query's slot; a padding query attends to itself
            # only, which keeps its (unused) output finite
            mask = (cache.valid[:, None, :end] & (slots <= q_slots)) | (slots == q_slots)  # (B, T, S)
            mask = mask[:, None]  # (B, 1, T, S)
            if kind == "alibi":
                distance = (pos[:, :, None] - cache.positions[:, None, :end]).float()  # (B, T, S)
                slopes = self.alibi_slopes[None, :, None, None]  # (1, nh, 1, 1)
                bias = -slopes * distance[:, None]  # (B, nh, T, S)
                mask = bias.masked_fill(~mask, float("-inf"))
        for i, block in enumerate(self.blocks):
            x = block(x, rope, mask, (cache.k[i], cache.v[i]), start)
        cache.length = end
        if not padded:
            cache.seen += T
        if not last_only:
            return self.lm_head(self.norm_f(x))  # (B, T, vocab_size)
        x = self.norm_f(x[:, -1:])  # (B, 1, C)
        if self.lm_head.weight.numel() < HEAD_TRANSPOSE_MIN or self._streams_head(B):
            return self.lm_head(x)
        return x @ self._head_transposed()  # (B, 1, vocab_size)

    def step_function(self, compiled: bool = False) -> Callable[[torch.Tensor, KVCache], torch.Tensor]:
        """A function (idx (B, 1), cache) → float logits (B, vocab_size) that decodes one new token per row.

        The same arithmetic as `forward(idx, cache, last_only=True)`, written with fixed shapes: the new
        slot arrives as a tensor, keys/values are attended over the whole preallocated buffer under a
        mask of the filled slots, positions come from the cache's per-row counts. So `compiled=True` can
        hand the step to `torch.compile` once per (batch, cache length) and reuse it for every token.
        Take a new decoder after changing the weights."""
        core = self._compiled_step() if compiled else self._decode_core
        big_head = self.lm_head.weight.numel() >= HEAD_TRANSPOSE_MIN

        def step(idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
            if cache.length >= cache.max_len:
                raise ValueError(f"the KV cache of {cache.max_len} tokens is full")
            slot = torch.tensor(cache.length, device=idx.device)
            head = self._head_transposed() if big_head and not self._streams_head(idx.shape[0]) else None
            logits = core(idx, slot, cache.k, cache.v, cache.valid, cache.positions, cache.seen, head)
            cache.length += 1
            return logits

        return step

    def _decode_core(
        self,
        idx: torch.Tensor,
        slot: torch.Tensor,
        ks: list[torch.Tensor],
        vs: list[torch.Tensor],
        valid: torch.Tensor,
        positions: torch.Tensor,
        seen: torch.Tensor,
        head: torch.Tensor | None,
    ) -> torch.Tensor:
        """`decode_step` on plain tensors (what gets compiled): writes the cache, bumps `seen`."""
        S = valid.shape[1]
        pos = seen  # (B,) each row's position = real tokens it has seen
        x = self.wte(idx)  # (B, 1, C)
        if isinstance(self.wpe, nn.Embedding):
            x = x + self.wpe.weight.index_select(0, pos)[:, None]
        elif self.wpe is not None:
            x = x + self.wpe.pe.index_select(0, pos)[:, None]  # type: ignore[operator,union-attr]
        rope = None
        if self.config.pos_encoding == "rope":  # (B, 1, hs) per row
            cos, sin = self.rope_cos, self.rope_sin
            if self.config.rope_scaling == "dynamic":  # not under torch.compile's fixed shapes: it reads pos
                cos, sin = self._rope_tables(int(pos.max()) + 1)
            rope = (cos.index_select(0, pos)[:, None], sin.index_select(0, pos)[:, None])
        positions.index_copy_(1, slot.view(1), pos[:, None])
        slots = torch.arange(S, device=idx.device)
        allowed = valid & (slots <= slot)  # (B, S) real tokens up to and including the new one
        mask: torch.Tensor = allowed[:, None, None, :]  # (B, 1, 1, S)
        if self.config.pos_encoding == "alibi":
            distance = (pos[:, None] - positions).float()  # (B, S)
            bias = -self.alibi_slopes[None, :, None, None] * distance[:, None, None, :]  # (B, nh, 1, S)
            mask = bias.masked_fill(~mask, float("-inf"))
        for i, block in enumerate(self.blocks):
            x = block(x, rope, mask, (ks[i], vs[i]), slot)
        seen.add_(1)
        x = self.norm_f(x[:, -1])  # (B, C)
        return (x @ head if head is not None else self.lm_head(x)).float()

    def _compiled_step(self) -> Callable[..., torch.Tensor]:
        """`_decode_core` through `torch.compile` (inductor with frozen weights and a C++ wrapper: the
        per-token Python and dispatch overhead of ~20 small ops per layer is what bounds a small model's
        decoding on CPU). Frozen weights are constants of the compiled code, so it is rebuilt when any
        parameter changes (training bumps a tensor's version) — checked once per `step_function()` call."""
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if getattr(self, "_step_key", None) != key:
            self._step_fn = torch.compile(
                self._decode_core, dynamic=False, options={"freezing": True, "cpp_wrapper": True}
            )
            self._step_key = key
        return self._step_fn  # type: ignore[no-any-return]

    def _head_transposed(self) -> torch.Tensor:
        """The output projection as a contiguous (C, V) matrix, for decoding.

        The vocabulary projection is the largest matmul of a decode step (38M of GPT-2's 124M
        parameters); with one or a few rows, the (C, V) layout measured 1.2–1.6× faster on CPU than
        `nn.Linear`'s (V, C) for GPT-2's 50257 × 768 (small projections keep `nn.Linear`). The copy costs V·C more memory while decoding and is rebuilt whenever
        the weight changes (training bumps its version) or moves."""
        w = self.lm_head.weight
        key = (w.data_ptr(), w._version, w.dtype)
        if getattr(self, "_head_key", None) != key:
            self._head_t = w.detach().t().contiguous()  # (C, V)
            self._head_key = key
        return self._head_t

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean next-token cross-entropy in nats; batch is (inputs, targets), each (B, T)."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        return loss, {}

    # ---- fine-tuning hooks (genloom/tune) -----------------------------------------------------

    def hidden_states(
        self, idx: torch.Tensor, positions: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The final-norm hidden states (B, T, C) of a full (uncached) forward pass: what a scalar head
        (reward model, PPO value head) reads; `self(idx) == self.lm_head(self.hidden_states(idx))`.

        Args: idx (B, T); positions (B, T) each token's position (default 0..T-1); attention_mask
        (B, T, T) bool, True where query t may attend to key s, causality included — e.g. block-diagonal
        for several documents packed in one row, with positions restarting at each."""
        _B, T = idx.shape
        if self.config.block_size < T:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        pos = positions if positions is not None else torch.arange(T, device=idx.device)
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(pos)  # (T or B×T, C)
        x = self.drop(x)
        kind = self.config.pos_encoding
        rope = None
        if kind == "rope":
            cos, sin = self._rope_tables(int(pos.max()) + 1 if pos.numel() else 0)
            rope = (cos[pos], sin[pos])  # (T or B×T, hs)
        mask: torch.Tensor | None = None
        if attention_mask is not None:
            mask = attention_mask[:, None]  # (B, 1, T, T)
        if kind == "alibi":
            if mask is None and positions is None:
                mask = self.alibi[:, :, :T, :T]
            else:
                p = pos if pos.dim() == 2 else pos[None]  # (B or 1, T)
                distance = (p[:, :, None] - p[:, None, :]).float()  # (B, T, T)
                bias = -self.alibi_slopes[None, :, None, None] * distance[:, None]  # (B, nh, T, T)
                allowed = mask if mask is not None else torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
                mask = bias.masked_fill(~allowed, float("-inf"))
        for block in self.blocks:
            x = block(x, rope, mask)
        return self.norm_f(x)  # (B, T, C)

    @torch.no_grad()
    def resize_token_embeddings(self, vocab_size: int) -> None:
        """Grow the vocabulary to `vocab_size` (new special tokens): existing rows are kept, new rows of
        the embedding (and of an untied output projection) start at the mean of the existing rows, so a
        new token begins as an "average" token rather than noise (Hewitt 2021, "Initializing new word
        embeddings")."""
        old = self.config.vocab_size
        if vocab_size < old:
            raise ValueError(f"vocab_size can only grow: {old} -> {vocab_size}")
        if vocab_size == old:
            return
        w = self.wte.weight
        wte = nn.Embedding(vocab_size, w.shape[1], device=w.device, dtype=w.dtype)
        wte.weight[:old] = w
        wte.weight[old:] = w.mean(dim=0)
        self.wte = wte
        if self.config.tie_weights:
            self.lm_head = Linear(w.shape[1], vocab_size, bias=False, device=w.device, dtype=w.dtype)
            self.lm_head.weight = self.wte.weight
        else:
            head = self.lm_head.weight
            lm_head = Linear(w.shape[1], vocab_size, bias=False, device=w.device, dtype=w.dtype)
            lm_head.weight[:old] = head
            lm_head.weight[old:] = head.mean(dim=0)
            self.lm_head = lm_head
        self.config.vocab_size = vocab_size

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; tied weights count once, and learned positions are left out by default."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and isinstance(self.wpe, nn.Embedding):
            n -= self.wpe.weight.numel()
        return n

    def flops_per_token(self) -> int:
        """Training FLOPs per token: 6N for the matmuls plus 12·L·T·C for attention (PaLM, App. B)."""
        cfg = self.config
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.block_size * cfg.n_embd
