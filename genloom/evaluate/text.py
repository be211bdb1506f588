"""Language-model evaluation: exact mean cross-entropy and perplexity over a whole split.

Training evaluates on a few random windows (an estimate, as nanoGPT does); this evaluates every token
of the split once, in consecutive windows of `block_size`, so the number is exact and repeatable.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from genloom.data.text import TokenData


@torch.inference_mode()
def language_model_loss(model: nn.Module, data: TokenData, split: str = "val", bf16: bool = False) -> dict[str, float]:
    """Mean loss (nats/token), perplexity and token count over the whole split."""
    model.eval()
    total, count = 0.0, 0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        for x, y in data.windows(split, batch_size=64):
            loss, _ = model.loss((x, y))  # type: ignore[operator]
            total += float(loss) * y.numel()
            count += y.numel()
    mean = total / count
    return {f"{split}_loss": mean, f"{split}_perplexity": math.exp(mean), f"{split}_tokens": count}
