"""Supervised fine-tuning (SFT): next-token loss on the response tokens only, short examples packed.

An example is rendered with the run's chat template (`<|user|>prompt<|end|>\\n<|assistant|>response<|end|>`)
and tokenized segment by segment, so each marker is one special-token id. Targets are the next token,
and only tokens of assistant content (and the `<|end|>` that closes it) are in the loss: the model
learns to answer, not to predict the user's prompt (Ouyang et al. 2022 §3.5 train on demonstrations the
same way).

Packing: examples are concatenated, in order, into rows of block_size + 1 tokens until the next one
does not fit, instead of padding every example to the longest: no compute is spent on padding. Each
token carries the index of its example in the row; attention is block-diagonal (causal within an
example, never across) and positions restart at each example, so a packed example computes exactly
what it would alone (tests/tune/test_sft.py checks it). `packing = false` pads every example instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genloom.data.pii import parse_kinds
from genloom.errors import UserError
from genloom.models.gpt import GPT
from genloom.tokenizers import Tokenizer
from genloom.train import TrainConfig
from genloom.tune.data import SFTExample
from genloom.tune.lora import LoRAConfig

IGNORE = -100  # target id that is not in the loss


def default_train(**changes: object) -> TrainConfig:
    """Fine-tuning defaults: few steps, a lower learning rate than pretraining, no text samples."""
    base: dict[str, object] = {
        "max_iters": 200,
        "batch_size": 8,
        "lr": 3e-4,
        "min_lr": 3e-5,
        "warmup_iters": 10,
        "eval_interval": 50,
        "eval_iters": 4,
        "sample_tokens": 0,
        "weight_decay": 0.0,
    }
    return TrainConfig(**(base | changes))  # type: ignore[arg-type]


@dataclass
class SFTConfig:
    val_fraction: float = 0.05  # share of examples (by a hash of the prompt) held out for validation loss
    packing: bool = True  # concatenate short examples into full rows (see the module docstring)
    use_lora: bool = False  # train LoRA adapters instead of every weight (`genloom tune lora`)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    scrub_pii: bool | tuple[str, ...] = False  # personal data in the JSONL → placeholders (genloom/data/pii.py)
    train: TrainConfig = field(default_factory=default_train)

    def __post_init__(self) -> None:
        parse_kinds(self.scrub_pii, "scrub_pii")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def tokenize_example(example: SFTExample, tokenizer: Tokenizer) -> tuple[list[int], list[bool]]:
    """Token ids of the example and, per token, whether it is a trained (response) token."""
    ids: list[int] = []
    trained: list[bool] = []
    for text, train in zip(example.segments, example.trained, strict=True):
        piece = tokenizer.encode(text)
        ids += piece
        trained += [train] * len(piece)
    return ids, trained


def build_rows(
    examples: list[tuple[list[int], list[bool]]], block_size: int, packing: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Inputs, targets, loss mask and example index (each (N, T)) from tokenized examples, packed or
    padded; the example index counts within a row, and padding gets its own index after the last one.

    An example longer than block_size + 1 tokens keeps its last block_size + 1: the start of the prompt
    goes first, so the response stays (counted in the returned number of truncated examples)."""
    width = block_size + 1
    truncated = 0
    rows: list[tuple[list[int], list[bool], list[int]]] = []
    row_ids: list[int] = []
    row_mask: list[bool] = []
    row_seg: list[int] = []
    for ids, trained in examples:
        if len(ids) > width:
            ids, trained = ids[-width:], trained[-width:]
            truncated += 1
        if not packing or len(row_ids) + len(ids) > width:
            if row_ids:
                rows.append((row_ids, row_mask, row_seg))
            row_ids, row_mask, row_seg = [], [], []
        row_seg = row_seg + [row_seg[-1] + 1 if row_seg else 0] * len(ids)
        row_ids = row_ids + ids
        row_mask = row_mask + trained
    if row_ids:
        rows.append((row_ids, row_mask, row_seg))
    T = max(len(r) for r, _, _ in rows) - 1
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    segments = torch.zeros(len(rows), T, dtype=torch.long)
    for i, (ids, trained, seg) in enumerate(rows):
        n = len(ids) - 1
        x[i, :n] = torch.tensor(ids[:-1])
        y[i, :n] = torch.tensor(ids[1:])
        mask[i, :n] = torch.tensor(trained[1:])  # the target at t is token t+1: its own flag decides
        segments[i, :n] = torch.tensor(seg[:-1])
        segments[i, n:] = seg[-1] + 1  # padding: a segment of its own
    y[~mask] = IGNORE
    return x, y, mask, truncated, segments


def packed_attention(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (B, T) restarting at each example and the block-diagonal causal mask (B, T, T)."""
    B, T = segments.shape
    idx = torch.arange(T, device=segments.device).expand(B, T)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]  # (B, T) first token of each example
    first = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values  # (B, T) its example's start
    causal = torch.ones(T, T, dtype=torch.bool, device=segments.device).tril()
    same = segments[:, :, None] == segments[:, None, :]  # (B, T, T)
    return idx - first, same & causal


class SFTData:
    """Rows of (inputs, targets, loss mask) for the shared Trainer; batches are drawn at random."""

    def __init__(
        self, train: list[SFTExample], val: list[SFTExample], tokenizer: Tokenizer, block_size: int, packing: bool
    ) -> None:
        self.block_size = block_size
        self.packing = packing
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.stats: dict[str, int] = {}
        for name, examples in (("train", train), ("val", val)):
            tokenized = [tokenize_example(e, tokenizer) for e in examples]
            x, y, mask, truncated, segments = build_rows(tokenized, block_size, packing)
            if not bool(mask.any()):
                raise UserError(f"SFT data: no response tokens in the {name} split (all truncated away?)")
            self.splits[name] = (x, y, mask, segments)
            self.stats |= {f"{name}_examples": len(examples), f"{name}_rows": len(x), f"{name}_truncated": truncated}
            self.stats[f"{name}_response_tokens"] = int(mask.sum())

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> SFTBatch:
        idx = torch.randint(len(self.splits[split][0]), (batch_size,), generator=generator)
        return self.rows(split, idx)

    def rows(self, split: str, idx: torch.Tensor) -> SFTBatch:
        x, y, mask, segments = (t[idx] for t in self.splits[split])
        width = int(mask.nonzero()[:, 1].max()) + 1  # trim columns after the last trained target
        return x[:, :width], y[:, :width], mask[:, :width], segments[:, :width] if self.packing else None


SFTBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


def sft_loss(
    model: GPT, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions where `mask` is true (the response tokens).

    Args: x, y (B, T) inputs and targets; mask (B, T) bool (targets elsewhere are never read);
    segments (B, T) example index of each token of packed rows (None: one example per row)."""
    if segments is None:
        logits = model(x)  # (B, T, V)
    else:
        positions, attention = packed_attention(segments)
        logits = model.lm_head(model.hidden_states(x, positions, attention))  # (B, T, V)
    picked = logits[mask]  # (N, V) positions in the loss only
    return F.cross_entropy(picked.float(), y[mask])


class SFTObjective(nn.Module):
    """The policy being fine-tuned, with the masked loss the Trainer calls."""

    def __init__(self, policy: GPT) -> None:
        super().__init__()
        self.policy = policy

    def loss(self, batch: SFTBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return sft_loss(self.policy, *batch), {}
