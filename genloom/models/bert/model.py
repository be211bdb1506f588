"""BERT: a bidirectional transformer encoder trained as a masked language model, read top to bottom.

References: Devlin et al. 2019 (BERT: token + position + segment embeddings, post-norm encoder blocks,
the masked-LM head tied to the input embeddings); Vaswani et al. 2017 (the encoder block); Xiong et
al. 2020 (pre-norm blocks train without warmup trouble). Hugging Face's `modeling_bert.py` fixes the
exact layout our interop (`genloom.models.bert.hf`) maps onto; this file shares no code with it.

The objective: `loss((inputs, labels))` is the mean cross-entropy over the chosen positions only
(labels -100 elsewhere, see `genloom.data.masking`); the logits are computed at those positions only.
`embed` gives mean-pooled sentence embeddings over the non-pad tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn import Attention, make_mlp

IGNORE = -100  # labels of positions that are not prediction targets


@dataclass
class BertConfig:
    vocab_size: int = 1000  # set from the tokenizer when training
    block_size: int = 128  # longest input in tokens, [CLS] and [SEP] included (max_position_embeddings)
    type_vocab_size: int = 2  # segments (sentence A / B); 2 as in BERT
    n_layer: int = 4  # encoder blocks
    n_head: int = 4  # attention heads
    n_embd: int = 128  # model width (hidden_size)
    mlp_hidden: int | None = None  # feed-forward width (None: 4·n_embd, BERT's intermediate_size)
    norm_eps: float = 1e-12  # LayerNorm epsilon; BERT's value
    norm_position: Literal["post", "pre"] = "post"  # post: LN(x + f(x)) as BERT; pre: x + f(LN(x))
    dropout: float = 0.1  # on embeddings, attention probabilities and residual branches
    pad_id: int = 0  # [PAD]: its embedding row starts at zero, and padding is never attended to

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "type_vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id ({self.pad_id}) must be a token id below vocab_size ({self.vocab_size})")


class BertEmbeddings(nn.Module):
    """token + learned position + segment embeddings, then LayerNorm and dropout (BERT Fig. 2)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd, padding_idx=cfg.pad_id)
        self.positions = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.segments = nn.Embedding(cfg.type_vocab_size, cfg.n_embd)
        self.norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, idx: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.tokens(idx) + self.positions(torch.arange(T, device=idx.device)) + self.segments(token_type_ids)
        return self.drop(self.norm(x))  # (B, T, C)


class EncoderBlock(nn.Module):
    """Bidirectional self-attention and a GELU MLP, each a residual branch, post- or pre-norm."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.post_norm = cfg.norm_position == "post"
        self.attn = Attention(cfg.n_embd, cfg.n_head, bias=True, dropout=cfg.dropout, causal=False)
        self.norm_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = make_mlp("gelu", cfg.n_embd, cfg.mlp_hidden, bias=True, dropout=cfg.dropout)
        self.norm_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        if self.post_norm:  # BERT / the original Transformer: normalize after each residual sum
            x = self.norm_1(x + self.attn(x, attn_bias=attn_bias))
            x = self.norm_2(x + self.mlp(x))
        else:
            x = x + self.attn(self.norm_1(x), attn_bias=attn_bias)
            x = x + self.mlp(self.norm_2(x))
        return x


class MLMHead(nn.Module):
    """dense → GELU → LayerNorm → decoder whose weight is the token embedding, plus its own bias."""

    def __init__(self, cfg: BertConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.norm = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.decoder = nn.Linear(cfg.n_embd, cfg.vocab_size)
        self.decoder.weight = embedding.weight  # tied (BERT §A.2, as in Press & Wolf 2017)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(h))))  # (..., vocab_size)


class Bert(nn.Module):
    """Embeddings → n_layer encoder blocks (→ final norm if pre-norm) → MLM head."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.n_layer))
        self.norm_f = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps) if cfg.norm_position == "pre" else None
        self.head = MLMHead(cfg, self.embeddings.tokens)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """BERT's init: N(0, 0.02) for matrices and embeddings, zero biases, LayerNorm at identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def encode(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Contextual vectors of every token.

        Args:
            idx: (B, T) token ids, T ≤ block_size.
            attention_mask: (B, T), 1 for real tokens and 0 for padding (None: no padding).
            token_type_ids: (B, T) segment ids in [0, type_vocab_size) (None: all 0).
        Returns:
            (B, T, n_embd) hidden states.
        """
        _B, T = idx.shape
        if self.config.block_size < T:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(idx)
        attn_bias = None
        if attention_mask is not None:
            # Additive key mask (B, 1, 1, T): 0 keeps a key, the most negative float drops it. Not -inf,
            # so a row of padding queries stays finite (its output is never used).
            keep = attention_mask[:, None, None, :].bool()
            attn_bias = torch.zeros(keep.shape, dtype=torch.float32, device=idx.device)
            attn_bias = attn_bias.masked_fill(~keep, torch.finfo(torch.float32).min)
        x = self.embeddings(idx, token_type_ids)  # (B, T, C)
        for block in self.blocks:
            x = block(x, attn_bias)
        if self.norm_f is not None:
            x = self.norm_f(x)
        return x

    def forward(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """MLM logits (B, T, vocab_size) at every position; arguments as in `encode`."""
        return self.head(self.encode(idx, attention_mask, token_type_ids))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean cross-entropy (nats) over the chosen positions, and their top-1 accuracy.

        batch is (inputs, labels), each (B, T); labels are -100 where nothing is predicted."""
        inputs, labels = batch
        h = self.encode(inputs)  # (B, T, C); training windows are full, so no padding mask
        chosen = labels != IGNORE  # (B, T)
        logits = self.head(h[chosen])  # (N, V): the vocabulary projection only where it is needed
        targets = labels[chosen]  # (N,)
        n = max(int(targets.numel()), 1)  # a batch without targets gives loss 0, not NaN
        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / n
        correct = (logits.argmax(-1) == targets).sum()
        return loss, {"accuracy": correct.float() / n, "correct": correct, "targets": torch.tensor(targets.numel())}

    @torch.no_grad()
    def embed(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sentence embeddings (B, n_embd): the mean of the last hidden states over non-pad tokens."""
        h = self.encode(idx, attention_mask)  # (B, T, C)
        if attention_mask is None:
            return h.mean(dim=1)
        weights = attention_mask.to(h.dtype)[:, :, None]  # (B, T, 1)
        return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; the tied decoder counts once, position embeddings are left out by default."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embeddings.positions.weight.numel()
        return n

    def flops_per_token(self) -> int:
        """Training FLOPs per token: 6N for the matmuls plus 12·L·T·C for attention (PaLM, App. B)."""
        cfg = self.config
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.block_size * cfg.n_embd
