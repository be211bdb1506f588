"""Batches of (source, target) token pairs for encoder-decoder training, built on `genloom.data.parallel`.

One byte-level BPE vocabulary is shared by both sides (so the model can tie its embeddings, Vaswani et
al. 2017 §3.4); it is learned on the training split only. Each pair becomes
    source:        s_1 … s_n <eos>
    decoder input: <eos> t_1 … t_m          (the end-of-text token doubles as the start token)
    labels:        t_1 … t_m <eos>
A side longer than the model's context is an error naming the pair, or is cut to fit when
`data.truncate` is set.

Batches are drawn with length bucketing: pairs are sorted by length once, and a batch is a run of
neighbours in that order starting at a random place, so a batch carries little padding (the trick of
Vaswani et al. §5.1, "batched together by approximate sequence length").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from genloom.data.parallel import Pair, PairSplits, read_pairs, split_pairs
from genloom.errors import UserError
from genloom.tokenizers import BPETokenizer

IGNORE = -100  # label of a padding position
SPLITS = ("train", "val", "test")


@dataclass
class PairDataConfig:
    source: str = "tatoeba-eng-fra"  # a bundled name, a .tsv (source<TAB>target) or a .jsonl file of pairs
    source_field: str = "source"  # JSONL: the field holding the source text
    target_field: str = "target"  # JSONL: the field holding the target text
    val_fraction: float = 0.05  # share of source sentences held out for validation (loss during training)
    test_fraction: float = 0.05  # share held out for the test split (`evaluate`: loss, BLEU, chrF)
    tokenizer: Literal["bpe"] = "bpe"  # one byte-level BPE shared by both sides
    vocab_size: int = 8000  # BPE vocabulary learned from the training pairs
    truncate: bool = False  # a side longer than the context: error (False) or keep its first tokens

    def __post_init__(self) -> None:
        if self.tokenizer != "bpe":
            raise ValueError(f"tokenizer must be 'bpe' (shared byte-level BPE), got {self.tokenizer!r}")
        if self.val_fraction <= 0 or self.test_fraction <= 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction ({self.val_fraction}) and test_fraction ({self.test_fraction}) must be > 0 and sum below 1"
            )


def load_pair_splits(cfg: PairDataConfig) -> PairSplits:
    """Read and split the pairs; every split must hold at least one pair."""
    pairs = read_pairs(cfg.source, cfg.source_field, cfg.target_field)
    splits = split_pairs(pairs, cfg.val_fraction, cfg.test_fraction)
    for name in SPLITS:
        if not getattr(splits, name):
            raise UserError(
                f"{cfg.source}: {len(pairs)} pairs leave the {name} split empty; give more pairs "
                f"(or a larger data.{'val' if name == 'val' else 'test'}_fraction)"
            )
    return splits


def train_pair_tokenizer(train: list[Pair], vocab_size: int) -> BPETokenizer:
    """The shared BPE, learned from both sides of the training pairs."""
    return BPETokenizer.train([text for p in train for text in (p.source, p.target)], vocab_size=vocab_size)


@dataclass
class EncodedPair:
    source: list[int]  # ends with <eos>
    target: list[int]  # ends with <eos>; the decoder input is <eos> + target[:-1]


def encode_pairs(
    pairs: list[Pair], tokenizer: BPETokenizer, block_size: int, truncate: bool, split: str = "train"
) -> list[EncodedPair]:
    """Token ids of each pair, each side with its end-of-text; too long: an error, or cut when `truncate`."""
    eos = tokenizer.eos_id
    assert eos is not None  # BPETokenizer always has <|endoftext|>
    sources = tokenizer.encode_batch([p.source for p in pairs])
    targets = tokenizer.encode_batch([p.target for p in pairs])
    out = []
    for i, (src, tgt) in enumerate(zip(sources, targets, strict=True)):
        for side, ids in (("source", src), ("target", tgt)):
            if len(ids) + 1 > block_size and not truncate:
                text = pairs[i].source if side == "source" else pairs[i].target
                raise UserError(
                    f"{split} pair {i + 1}: the {side} has {len(ids) + 1} tokens (end-of-text included), more than "
                    f"the model's context of {block_size} (model.block_size): {text[:40]!r}...; raise "
                    "model.block_size or set data.truncate=true to cut long sides"
                )
        out.append(EncodedPair([*src[: block_size - 1], eos], [*tgt[: block_size - 1], eos]))
    return out


def collate(pairs: list[EncodedPair], eos_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (src (B, S), src_mask (B, S) bool, tgt_in (B, T), labels (B, T) with -100 on padding)."""
    B = len(pairs)
    S = max(len(p.source) for p in pairs)
    T = max(len(p.target) for p in pairs)
    src = torch.full((B, S), eos_id, dtype=torch.long)  # padding ids are masked; any valid id will do
    src_mask = torch.zeros((B, S), dtype=torch.bool)
    tgt_in = torch.full((B, T), eos_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    for r, p in enumerate(pairs):
        n, m = len(p.source), len(p.target)
        src[r, :n] = torch.tensor(p.source)
        src_mask[r, :n] = True
        tgt_in[r, 1:m] = torch.tensor(p.target[:-1])  # shifted right behind the start token
        labels[r, :m] = torch.tensor(p.target)
    return src, src_mask, tgt_in, labels


def _length_order(pairs: list[EncodedPair]) -> list[int]:
    return sorted(range(len(pairs)), key=lambda i: (len(pairs[i].source), len(pairs[i].target)))


class PairData:
    """The trainer's batch source: length-bucketed random batches of encoded pairs per split."""

    def __init__(self, splits: dict[str, list[EncodedPair]], eos_id: int, block_size: int) -> None:
        self.splits = splits
        self.eos_id = eos_id
        self.block_size = block_size  # the longest side, in tokens
        train = splits.get("train") or next(iter(splits.values()))
        # mean tokens of a training pair (both sides): what a batch holds per row, for tokens/s figures
        self.tokens_per_sequence = round(sum(len(p.source) + len(p.target) for p in train) / max(len(train), 1))
        # per split: pair indices sorted by length, the order buckets are cut from
        self.by_length = {name: _length_order(ps) for name, ps in splits.items()}

    def get_batch(
        self, split: str, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`batch_size` neighbours in length order, starting at a random place (all of a small split)."""
        order = self.by_length[split]
        n = min(batch_size, len(order))
        start = int(torch.randint(0, len(order) - n + 1, (1,), generator=generator))
        return collate([self.splits[split][i] for i in order[start : start + n]], self.eos_id)

    def batches(
        self, split: str, batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Every pair of a split once, in length order (for exact evaluation)."""
        order = self.by_length[split]
        return [
            collate([self.splits[split][i] for i in order[s : s + batch_size]], self.eos_id)
            for s in range(0, len(order), batch_size)
        ]
