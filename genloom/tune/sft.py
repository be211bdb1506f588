"""Supervised fine-tuning (SFT): next-token loss on the response tokens only, short examples packed.

An example is rendered with the run's chat template (`<|user|>prompt<|end|>\\n<|assistant|>response<|end|>`)
and tokenized segment by segment, so each marker is one special-token id. Targets are the next token,
and only tokens of assistant content (and the `<|end|>` that closes it) are in the loss: the model
learns to answer, not to predict the user's prompt (Ouyang et al. 2022 §3.5 train on demonstrations the
same way).

Packing: examples are concatenated, in order, into rows of block_size + 1 tokens until the next one
does not fit, instead of padding every example to the longest. It wastes no compute on padding. The
loss still covers only response tokens, but attention inside a packed row does cross example boundaries
(a later example can attend to an earlier, unrelated one), and positions keep counting across them;
with `packing = false` every example is its own padded row and nothing crosses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genloom.errors import UserError
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
    train: TrainConfig = field(default_factory=default_train)

    def __post_init__(self) -> None:
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Inputs, targets and loss mask (each (N, T)) from tokenized examples, packed or padded.

    An example longer than block_size + 1 tokens keeps its last block_size + 1: the start of the prompt
    goes first, so the response stays (counted in the returned number of truncated examples)."""
    width = block_size + 1
    truncated = 0
    rows: list[tuple[list[int], list[bool]]] = []
    row_ids: list[int] = []
    row_mask: list[bool] = []
    for ids, trained in examples:
        if len(ids) > width:
            ids, trained = ids[-width:], trained[-width:]
            truncated += 1
        if not packing or len(row_ids) + len(ids) > width:
            if row_ids:
                rows.append((row_ids, row_mask))
            row_ids, row_mask = [], []
        row_ids = row_ids + ids
        row_mask = row_mask + trained
    if row_ids:
        rows.append((row_ids, row_mask))
    T = max(len(r) for r, _ in rows) - 1
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, (ids, trained) in enumerate(rows):
        n = len(ids) - 1
        x[i, :n] = torch.tensor(ids[:-1])
        y[i, :n] = torch.tensor(ids[1:])
        mask[i, :n] = torch.tensor(trained[1:])  # the target at t is token t+1: its own flag decides
    y[~mask] = IGNORE
    return x, y, mask, truncated


class SFTData:
    """Rows of (inputs, targets, loss mask) for the shared Trainer; batches are drawn at random."""

    def __init__(
        self, train: list[SFTExample], val: list[SFTExample], tokenizer: Tokenizer, block_size: int, packing: bool
    ) -> None:
        self.block_size = block_size
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.stats: dict[str, int] = {}
        for name, examples in (("train", train), ("val", val)):
            tokenized = [tokenize_example(e, tokenizer) for e in examples]
            x, y, mask, truncated = build_rows(tokenized, block_size, packing)
            if not bool(mask.any()):
                raise UserError(f"SFT data: no response tokens in the {name} split (all truncated away?)")
            self.splits[name] = (x, y, mask)
            self.stats |= {f"{name}_examples": len(examples), f"{name}_rows": len(x), f"{name}_truncated": truncated}
            self.stats[f"{name}_response_tokens"] = int(mask.sum())

    def get_batch(
        self, split: str, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, mask = self.splits[split]
        idx = torch.randint(len(x), (batch_size,), generator=generator)
        width = int(mask[idx].nonzero()[:, 1].max()) + 1  # trim columns after the last trained target
        return x[idx, :width], y[idx, :width], mask[idx, :width]


def sft_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions where `mask` is true (the response tokens).

    Args: x, y (B, T) inputs and targets; mask (B, T) bool. Targets elsewhere are never read."""
    logits = model(x)  # (B, T, V)
    picked = logits[mask]  # (N, V) positions in the loss only
    return F.cross_entropy(picked.float(), y[mask])


class SFTObjective(nn.Module):
    """The policy being fine-tuned, with the masked loss the Trainer calls."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y, mask = batch
        return sft_loss(self.policy, x, y, mask), {}
