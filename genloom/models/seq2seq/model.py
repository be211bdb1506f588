"""The encoder-decoder Transformer (Vaswani et al. 2017, "Attention Is All You Need"), read top to bottom.

The encoder reads the whole source bidirectionally (padding masked out); the decoder predicts the
target left to right with causal self-attention and cross-attention over the encoder output (the
"memory", §3.2.3). As in the paper: sinusoidal positions added to embeddings scaled by sqrt(d_model)
(§3.4-3.5), post-norm residual blocks LN(x + f(x)) (§3.1), label smoothing 0.1 (§5.4), and one shared
embedding matrix for source, target and the output projection when the vocabulary is shared (§3.4,
Press & Wolf 2017). Pre-norm blocks (Xiong et al. 2020) and learned or rotary positions are options.

The objective: `loss((src, src_mask, tgt_in, labels))` is the label-smoothed cross-entropy of each
target token given the source and the target prefix (teacher forcing); labels are -100 on padding.

Decoding goes through the generation engine (`genloom.generation`), not a copy of it: `bind(src,
src_mask)` runs the encoder once and returns a `BoundDecoder`, which looks to the engine like a
decoder-only model (`forward(ids, cache, attention_mask, last_only)`, `new_cache`, `config`). Its cache
(`Seq2SeqCache`) is the engine's `KVCache` for decoder self-attention plus every layer's cross-attention
keys/values, computed once per source and re-ordered together with the cache when beam search follows
its beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn import Attention, KVCache, SinusoidalPositions, make_mlp, rope_cache

IGNORE = -100  # label of a padding position (cross-entropy's ignore_index)


@dataclass
class Seq2SeqConfig:
    vocab_size: int = 1000  # shared source/target vocabulary; set from the tokenizer when training
    block_size: int = 64  # longest source and longest target, in tokens (end-of-text included)
    n_layer: int = 3  # encoder blocks (the paper's base model has 6)
    n_decoder_layer: int | None = None  # decoder blocks (None: n_layer)
    n_head: int = 4  # attention heads, in every attention layer
    n_embd: int = 128  # model width d_model (the paper's base: 512)
    mlp_hidden: int | None = None  # feed-forward width d_ff (None: 4·n_embd, the paper's ratio)
    norm_position: Literal["post", "pre"] = "post"  # post: LN(x + f(x)) as the paper; pre: x + f(LN(x))
    norm_eps: float = 1e-5  # LayerNorm epsilon
    pos_encoding: Literal["sinusoidal", "learned", "rope"] = "sinusoidal"  # the paper's fixed sinusoids by default
    dropout: float = 0.1  # on embeddings, attention probabilities and residual branches (P_drop, §5.4)
    label_smoothing: float = 0.1  # ε_ls of §5.4: hurts perplexity, helps BLEU
    tie_embeddings: bool = True  # one matrix for source and target embeddings and the output projection (§3.4)
    bias: bool = True  # biases in Linear layers
    start_id: int = 0  # the token the decoder starts from (genloom: the tokenizer's end-of-text)
    eos_id: int = 0  # the token that ends a target (and every source)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_decoder_layer is not None and self.n_decoder_layer <= 0:
            raise ValueError(f"n_decoder_layer must be positive (or None for n_layer), got {self.n_decoder_layer}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.pos_encoding == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rope needs an even head size, got n_embd/n_head = {self.n_embd // self.n_head}")
        if self.norm_position not in ("post", "pre"):
            raise ValueError(f"norm_position must be 'post' or 'pre', got {self.norm_position!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("start_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must be a token id below vocab_size ({self.vocab_size})"
                )

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layer or self.n_layer


def padding_bias(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive key mask (B, 1, 1, S) from a (B, S) mask, True/1 for real tokens: 0 keeps a key, the
    most negative float drops it (not -inf, so a row of padding queries stays finite)."""
    keep = mask[:, None, None, :].bool()
    return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


class CrossAttention(nn.Module):
    """Multi-head attention of decoder queries over the encoder output (§3.2.3, "encoder-decoder attention").

    The keys and values depend on the source only, so `memory_kv` computes them once per source; every
    decoding step then projects just its own queries."""

    def __init__(self, dim: int, n_head: int, bias: bool, dropout: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.head_dim = dim // n_head
        self.dropout = dropout
        self.q = nn.Linear(dim, dim, bias=bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=bias)  # keys and values in one matmul
        self.proj = nn.Linear(dim, dim, bias=bias)  # residual projection
        self.resid_dropout = nn.Dropout(dropout)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the memory (B, S, C): each (B, nh, S, hs)."""
        B, S, _C = memory.shape
        kv = self.kv(memory).view(B, S, 2, self.n_head, self.head_dim)  # (B, S, 2, nh, hs)
        k, v = kv.unbind(dim=2)  # each (B, S, nh, hs)
        return k.transpose(1, 2), v.transpose(1, 2)  # each (B, nh, S, hs)

    def forward(
        self, x: torch.Tensor, memory_kv: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor
    ) -> torch.Tensor:
        """Args: x (B, T, C) decoder states; memory_kv from `memory_kv`; bias (B, 1, 1, S) the source
        padding mask (`padding_bias`). Returns (B, T, C)."""
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k, v = memory_kv
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again
        return self.resid_dropout(self.proj(y))


class EncoderBlock(nn.Module):
    """Bidirectional self-attention, then a position-wise feed-forward network (§3.1, encoder)."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.attn = Attention(cfg.n_embd, cfg.n_head, bias=cfg.bias, dropout=cfg.dropout, causal=False)
        self.norm_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = make_mlp("gelu", cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias, dropout=cfg.dropout)
        self.norm_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if self.post_norm:  # the paper: LayerNorm(x + Sublayer(x))
            x = self.norm_1(x + self.attn(x, rope, bias))
            return self.norm_2(x + self.mlp(x))
        x = x + self.attn(self.norm_1(x), rope, bias)
        return x + self.mlp(self.norm_2(x))


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention over the memory, feed-forward (§3.1, decoder)."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.self_attn = Attention(cfg.n_embd, cfg.n_head, bias=cfg.bias, dropout=cfg.dropout, causal=True)
        self.norm_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.cross_attn = CrossAttention(cfg.n_embd, cfg.n_head, cfg.bias, cfg.dropout)
        self.norm_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = make_mlp("gelu", cfg.n_embd, cfg.mlp_hidden, bias=cfg.bias, dropout=cfg.dropout)
        self.norm_3 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        memory_kv: tuple[torch.Tensor, torch.Tensor],
        memory_bias: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """x (B, T, C); with `cache` (this layer's self-attention k/v buffers) the T new tokens sit at
        slots [start, start + T) after the cached ones; `self_mask` (T, start + T) is then their causal
        mask (None: causal from slot 0)."""
        if self.post_norm:
            x = self.norm_1(x + self.self_attn(x, rope, self_mask, cache, start))
            x = self.norm_2(x + self.cross_attn(x, memory_kv, memory_bias))
            return self.norm_3(x + self.mlp(x))
        x = x + self.self_attn(self.norm_1(x), rope, self_mask, cache, start)
        x = x + self.cross_attn(self.norm_2(x), memory_kv, memory_bias)
        return x + self.mlp(self.norm_3(x))


class Seq2SeqCache(KVCache):
    """The decoder's self-attention `KVCache`, plus what each row attends to in the source: every
    layer's cross-attention keys/values (B, nh, S, hs) and the source padding bias (B, 1, 1, S)."""

    def __init__(
        self,
        cfg: Seq2SeqConfig,
        max_len: int,
        cross_kv: list[tuple[torch.Tensor, torch.Tensor]],
        memory_bias: torch.Tensor,
    ) -> None:
        B = memory_bias.shape[0]
        k = cross_kv[0][0]
        super().__init__(cfg.decoder_layers, B, cfg.n_head, max_len, cfg.n_embd // cfg.n_head, k.dtype, k.device)
        self.cross_kv = cross_kv
        self.memory_bias = memory_bias

    def reorder(self, index: torch.Tensor) -> None:
        """Rows `index` of the self-attention buffers and of the source they attend to, together."""
        super().reorder(index)
        self.cross_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross_kv]
        self.memory_bias = self.memory_bias.index_select(0, index)


class Seq2Seq(nn.Module):
    """Shared embedding → encoder blocks; shared embedding → decoder blocks (cross-attending) → logits."""

    rope_cos: torch.Tensor  # (block_size, hs) tables, present for rope only
    rope_sin: torch.Tensor

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = cfg
        self.src_embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.tgt_embed = self.src_embed if cfg.tie_embeddings else nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.positions: nn.Module | None = None  # added to the scaled embeddings (rope rotates q/k instead)
        self.tgt_positions: nn.Embedding | None = None  # learned positions: one table per side
        if cfg.pos_encoding == "sinusoidal":
            self.positions = SinusoidalPositions(cfg.block_size, cfg.n_embd)
        elif cfg.pos_encoding == "learned":  # source and target positions mean different things
            self.positions = nn.Embedding(cfg.block_size, cfg.n_embd)
            self.tgt_positions = nn.Embedding(cfg.block_size, cfg.n_embd)
        else:
            cos, sin = rope_cache(cfg.block_size, cfg.n_embd // cfg.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.n_layer))
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.decoder_layers))
        pre = cfg.norm_position == "pre"  # pre-norm leaves the residual stream unnormalized: a final LN per side
        self.enc_norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps) if pre else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps) if pre else nn.Identity()
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tgt_embed.weight  # §3.4: the pre-softmax projection is the embedding

    def _init_weights(self, module: nn.Module) -> None:
        """Xavier-uniform matrices and zero biases; embeddings N(0, d^-1/2), so that after the sqrt(d)
        scaling of §3.4 the token vectors have unit scale, like the positions they are added to."""
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.n_embd**-0.5)

    # ---- the two stacks ----------------------------------------------------------------------

    def _embed(self, idx: torch.Tensor, table: nn.Embedding, start: int, target: bool) -> torch.Tensor:
        """Scaled token embeddings plus positions [start, start + T): (B, T, C)."""
        T = idx.shape[1]
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.config.block_size}")
        x = table(idx) * math.sqrt(self.config.n_embd)  # (B, T, C), §3.4
        if isinstance(self.positions, SinusoidalPositions):
            x = x + self.positions.pe[start : start + T]  # (T, C) broadcast over the batch
        elif isinstance(self.positions, nn.Embedding) and self.tgt_positions is not None:
            table_pos = self.tgt_positions if target else self.positions
            x = x + table_pos.weight[start : start + T]
        return self.drop(x)

    def _rope(self, start: int, T: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.config.pos_encoding != "rope":
            return None
        return self.rope_cos[start : start + T], self.rope_sin[start : start + T]  # (T, hs) each

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory the decoder attends to.

        Args:
            src: (B, S) source token ids, S ≤ block_size.
            src_mask: (B, S), True/1 for real tokens, False/0 for padding (None: no padding).
        Returns:
            memory (B, S, C) and its padding bias (B, 1, 1, S) for cross-attention.
        """
        if src_mask is None:
            src_mask = torch.ones_like(src, dtype=torch.bool)
        bias = padding_bias(src_mask)  # (B, 1, 1, S): padding keys are never attended to
        x = self._embed(src, self.src_embed, 0, target=False)
        rope = self._rope(0, src.shape[1])
        for block in self.encoder:
            x = block(x, rope, bias)
        return self.enc_norm(x), bias

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every decoder layer's cross-attention keys/values of the memory (computed once per source)."""
        return [block.cross_attn.memory_kv(memory) for block in self.decoder]  # type: ignore[union-attr,operator]

    def decode(
        self,
        tgt: torch.Tensor,
        cross_kv: list[tuple[torch.Tensor, torch.Tensor]],
        memory_bias: torch.Tensor,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Decoder states (B, T, C) of target tokens `tgt` (B, T); with `cache`, `tgt` continues the
        tokens the cache holds (incremental decoding) and its keys/values are added to it."""
        start = cache.length if cache is not None else 0
        T = tgt.shape[1]
        if cache is not None and start + T > cache.max_len:
            raise ValueError(f"{start + T} tokens do not fit in a KV cache of {cache.max_len}")
        x = self._embed(tgt, self.tgt_embed, start, target=True)
        rope = self._rope(start, T)
        self_mask = None
        if T > 1 and start > 0:  # a chunk after cached tokens: causal within the chunk, all of the prefix
            self_mask = torch.ones(T, start + T, dtype=torch.bool, device=tgt.device).tril(start)  # (T, S)
        for i, block in enumerate(self.decoder):
            layer_cache = (cache.k[i], cache.v[i]) if cache is not None else None
            x = block(x, rope, cross_kv[i], memory_bias, self_mask, layer_cache, start)
        if cache is not None:
            cache.length = start + T
            cache.seen += T
        return self.dec_norm(x)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, T, vocab_size) of every target position: src (B, S), tgt (B, T)
        the decoder input (start token + target), src_mask (B, S) True for real tokens."""
        memory, bias = self.encode(src, src_mask)
        return self.lm_head(self.decode(tgt, self.memory_kv(memory), bias))

    def loss(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Label-smoothed cross-entropy (nats) over real target tokens, and the plain NLL as `nll`.

        batch is (src (B, S), src_mask (B, S), tgt_in (B, T), labels (B, T) with -100 on padding)."""
        src, src_mask, tgt_in, labels = batch
        logits = self(src, tgt_in, src_mask).float()  # (B, T, V)
        flat, targets = logits.view(-1, logits.size(-1)), labels.reshape(-1)
        loss = F.cross_entropy(flat, targets, ignore_index=IGNORE, label_smoothing=self.config.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(flat, targets, ignore_index=IGNORE)
        return loss, {"nll": nll}

    # ---- decoding through the generation engine ---------------------------------------------

    def bind(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> BoundDecoder:
        """Encode `src` (B, S) once; the result decodes targets for these B sources in the engine."""
        memory, bias = self.encode(src, src_mask)
        return BoundDecoder(self, self.memory_kv(memory), bias)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; tied matrices count once, learned position tables are left out by default."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.pos_encoding == "learned":
            n -= 2 * self.config.block_size * self.config.n_embd
        return n

    def flops_per_token(self) -> int:
        """Training FLOPs per token: 6N for the matmuls plus 12·L·T·C for attention (PaLM, App. B)."""
        cfg = self.config
        layers = cfg.n_layer + 2 * cfg.decoder_layers  # cross-attention is a third attention per decoder layer
        return 6 * self.num_params() + 12 * layers * cfg.block_size * cfg.n_embd


class BoundDecoder(nn.Module):
    """The decoder of a `Seq2Seq` with its encoded sources bound: a decoder-only model for the engine.

    It speaks the engine's model interface: `config.block_size`/`config.vocab_size`, `new_cache(B,
    max_len)` and `forward(ids, cache, attention_mask, last_only)`. Row r of every cache it makes attends
    to source r (beam search binds one source and its cache copies that row to every beam)."""

    def __init__(
        self, model: Seq2Seq, cross_kv: list[tuple[torch.Tensor, torch.Tensor]], memory_bias: torch.Tensor
    ) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.cross_kv = cross_kv
        self.memory_bias = memory_bias

    def new_cache(self, batch: int, max_len: int | None = None) -> Seq2SeqCache:
        """An empty decoder cache for the bound sources (`batch` must be their number)."""
        if batch != self.memory_bias.shape[0]:
            raise ValueError(f"{batch} target rows for {self.memory_bias.shape[0]} bound sources")
        max_len = max_len or self.config.block_size
        if max_len > self.config.block_size:
            raise ValueError(f"a cache of {max_len} tokens is longer than block_size {self.config.block_size}")
        return Seq2SeqCache(self.config, max_len, self.cross_kv, self.memory_bias)

    def forward(
        self,
        idx: torch.Tensor,
        cache: Seq2SeqCache | None = None,
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T or 1, vocab_size) of target tokens `idx` (B, T) continuing `cache`."""
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("decoder prompts of different lengths are not supported; give every row the same prefix")
        if cache is None:
            cache_kv, bias = self.cross_kv, self.memory_bias
        else:
            cache_kv, bias = cache.cross_kv, cache.memory_bias
        h = self.model.decode(idx, cache_kv, bias, cache)
        if last_only:
            h = h[:, -1:]  # (B, 1, C): the vocabulary projection for the next token only
        return self.model.lm_head(h)
