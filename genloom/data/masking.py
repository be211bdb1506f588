"""The BERT masking recipe and the batches a masked language model trains on.

Devlin et al. 2019, §3.1 ("Masked LM") and Appendix A.1: choose 15% of the tokens as prediction
targets; replace 80% of the chosen with [MASK], 10% with a random token and keep 10% unchanged, so
the model cannot rely on seeing [MASK] at fine-tuning time. Special tokens ([CLS], [SEP], [PAD]) are
never chosen. Whole-word masking (the later "BERT-Large, whole word masking" release) chooses whole
words: all WordPiece pieces of a word (`play ##ing`) are targets together. Each choice is an
independent draw (a Bernoulli per token or per word), as in Hugging Face's
`DataCollatorForLanguageModeling`.

Every draw comes from the `torch.Generator` passed in: the trainer owns it and saves its state, so a
resumed run masks exactly as an unbroken one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from genloom.data.text import TextDataConfig, TokenData

IGNORE = -100  # label of a position that is not a prediction target (cross-entropy's ignore_index)


@dataclass
class MaskedTextDataConfig(TextDataConfig):
    """The text data section of a masked LM: what `TextDataConfig` reads, plus the masking recipe."""

    tokenizer: Literal["char", "bpe", "wordpiece"] = "wordpiece"  # a masked LM needs WordPiece's special tokens
    vocab_size: int = 4096  # WordPiece vocabulary learned from the training split
    mask_prob: float = 0.15  # share of (non-special) tokens chosen as prediction targets
    mask_token_frac: float = 0.8  # of the chosen: replaced by [MASK]
    random_token_frac: float = 0.1  # of the chosen: replaced by a random token (the rest stays unchanged)
    whole_word: bool = False  # choose whole words (every `##` piece with its word) instead of single pieces

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenizer != "wordpiece":
            raise ValueError(f"tokenizer must be 'wordpiece' for a masked LM (it needs [MASK]), got {self.tokenizer!r}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if min(self.mask_token_frac, self.random_token_frac) < 0 or self.mask_token_frac + self.random_token_frac > 1:
            raise ValueError(
                f"mask_token_frac ({self.mask_token_frac}) and random_token_frac ({self.random_token_frac}) "
                "must be >= 0 and sum to at most 1"
            )


@dataclass
class MaskingTables:
    """What the recipe must know of the tokenizer, as tensors indexed by token id."""

    mask_id: int
    special: torch.Tensor  # (V,) bool: never chosen, never drawn as a random replacement
    continuation: torch.Tensor  # (V,) bool: the piece continues the previous word (`##ing`)

    @classmethod
    def build(cls, vocab_size: int, mask_id: int, special_ids: list[int], continuation: list[bool]) -> MaskingTables:
        special = torch.zeros(vocab_size, dtype=torch.bool)
        special[torch.tensor(special_ids, dtype=torch.long)] = True
        return cls(mask_id, special, torch.tensor(continuation, dtype=torch.bool))


def mask_tokens(
    ids: torch.Tensor,
    tables: MaskingTables,
    cfg: MaskedTextDataConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the recipe to a batch.

    Args:
        ids: (B, T) token ids, special tokens included.
        tables: the tokenizer's special and continuation tables.
        cfg: the probabilities and the whole-word switch.
        generator: the source of every random draw.
    Returns:
        inputs (B, T) with replacements applied, and labels (B, T): the original id at chosen positions,
        `IGNORE` elsewhere.
    """
    B, T = ids.shape  # batch, time
    candidate = ~tables.special[ids]  # (B, T)
    u = torch.rand(B, T, generator=generator)
    if cfg.whole_word:
        # A word starts at every piece that is not a `##` continuation; every piece of a word uses the
        # draw made at the word's first piece, so a word is chosen or left whole.
        starts = ~tables.continuation[ids] | ~candidate  # (B, T)
        starts[:, 0] = True
        positions = torch.arange(T).expand(B, T)
        word_start = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values  # (B, T)
        u = u.gather(1, word_start)
    chosen = candidate & (u < cfg.mask_prob)  # (B, T)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    # One more draw per token decides what a chosen token becomes: [MASK], random, or itself.
    r = torch.rand(B, T, generator=generator)
    to_mask = chosen & (r < cfg.mask_token_frac)
    to_random = chosen & (r >= cfg.mask_token_frac) & (r < cfg.mask_token_frac + cfg.random_token_frac)
    ordinary = (~tables.special).nonzero().squeeze(1)  # (V',) ids a random replacement may take
    random_ids = ordinary[torch.randint(len(ordinary), (B, T), generator=generator)]
    inputs = torch.where(to_mask, torch.full_like(ids, tables.mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


class MaskedTokenData:
    """Batches for masked-LM training: random windows `[CLS] w_1 … w_{T-2} [SEP]`, then masked.

    `get_batch` follows the trainer's protocol; `windows` gives the whole split in consecutive
    windows, masked with a fixed seed, for an exact and repeatable held-out accuracy.
    """

    def __init__(
        self,
        train: torch.Tensor,
        val: torch.Tensor,
        block_size: int,
        cls_id: int,
        sep_id: int,
        tables: MaskingTables,
        cfg: MaskedTextDataConfig,
    ) -> None:
        self.tokens = TokenData(train, val, block_size - 2, cfg.source)  # 2 places go to [CLS] and [SEP]
        self.block_size = block_size
        self.cls_id, self.sep_id = cls_id, sep_id
        self.tables = tables
        self.cfg = cfg

    def _frame(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T-2) pieces → (B, T) with [CLS] in front and [SEP] at the end."""
        B = x.shape[0]
        cls = torch.full((B, 1), self.cls_id, dtype=x.dtype)
        sep = torch.full((B, 1), self.sep_id, dtype=x.dtype)
        return torch.cat([cls, x, sep], dim=1)

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels), each (batch_size, block_size); the same generator draws windows and masks."""
        x, _ = self.tokens.get_batch(split, batch_size, generator)
        return mask_tokens(self._frame(x), self.tables, self.cfg, generator)

    def windows(self, split: str, batch_size: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split as consecutive windows, masked with a generator seeded by `seed`."""
        generator = torch.Generator().manual_seed(seed)
        return [
            mask_tokens(self._frame(x), self.tables, self.cfg, generator)
            for x, _ in self.tokens.windows(split, batch_size)
        ]
