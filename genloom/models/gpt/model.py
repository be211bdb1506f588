"""GPT: a decoder-only transformer language model, read top to bottom.

References: Radford et al. 2018/2019 (GPT, GPT-2: pre-norm blocks, learned positions, weight tying,
init scaled by depth); Vaswani et al. 2017 (attention, sinusoidal positions); Su et al. 2021 (RoPE);
Press et al. 2022 (ALiBi); Shazeer 2020 (SwiGLU); Zhang & Sennrich 2019 (RMSNorm). nanoGPT's
`model.py` is the readable reference implementation we hold ourselves to.

The objective is next-token prediction: `loss((x, y))` is the mean cross-entropy of predicting
y[t] = x[t+1] from x[:t+1]. Everything the model needs is in `GPTConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn import Attention, SinusoidalPositions, alibi_bias, make_mlp, make_norm, rope_cache


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
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-5
    pos_encoding: Literal["learned", "sinusoidal", "rope", "alibi"] = "learned"
    rope_theta: float = 10000.0  # RoPE base; larger stretches the wavelengths
    dropout: float = 0.0  # on embeddings, attention and residual branches
    bias: bool = False  # biases in Linear layers and LayerNorm (GPT-2 had them; off is a bit faster)
    tie_weights: bool = True  # share the token embedding with the output projection (Press & Wolf 2017)

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
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x)) (GPT-2 §2.3)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm_1 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.attn = Attention(cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.bias, cfg.dropout, causal=True)
        self.norm_2 = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.mlp = make_mlp(cfg.mlp, cfg.n_embd, cfg.mlp_hidden, cfg.bias, cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        attn_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), rope, attn_bias)
        x = x + self.mlp(self.norm_2(x))
        return x


class GPT(nn.Module):
    """Token embedding → positions → n_layer blocks → final norm → logits over the vocabulary."""

    rope_cos: torch.Tensor  # buffers derived from the config, present for rope / alibi only
    rope_sin: torch.Tensor
    alibi: torch.Tensor

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
            cos, sin = rope_cache(cfg.block_size, cfg.n_embd // cfg.n_head, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.pos_encoding == "alibi":
            self.register_buffer("alibi", alibi_bias(cfg.n_head, cfg.block_size), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = make_norm(cfg.norm, cfg.n_embd, cfg.norm_eps, cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
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

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Args: idx (B, T) token ids with T ≤ block_size. Returns logits (B, T, vocab_size)."""
        _B, T = idx.shape
        if self.config.block_size < T:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))  # (T, C) broadcast over the batch
        x = self.drop(x)
        rope = (self.rope_cos[:T], self.rope_sin[:T]) if self.config.pos_encoding == "rope" else None
        attn_bias = self.alibi[:, :, :T, :T] if self.config.pos_encoding == "alibi" else None
        for block in self.blocks:
            x = block(x, rope, attn_bias)
        return self.lm_head(self.norm_f(x))  # (B, T, vocab_size)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean next-token cross-entropy in nats; batch is (inputs, targets), each (B, T)."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        return loss, {}

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
