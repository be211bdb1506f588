"""Masked-LM evaluation: held-out masked-token accuracy and loss over a whole split.

Every window of the split is masked by the BERT recipe with a fixed seed, so the same model always
gets the same number (training reports estimates on a few random batches instead).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genloom.data.masking import MaskedTokenData


@torch.inference_mode()
def masked_lm_metrics(model: nn.Module, data: MaskedTokenData, split: str = "val", seed: int = 0) -> dict[str, float]:
    """Mean cross-entropy (nats) and top-1 accuracy over every masked position of the split."""
    model.eval()
    total_loss, correct, targets = 0.0, 0, 0
    for batch in data.windows(split, batch_size=64, seed=seed):
        loss, terms = model.loss(batch)  # type: ignore[operator]
        n = int(terms["targets"])
        total_loss += float(loss) * n
        correct += int(terms["correct"])
        targets += n
    mean = total_loss / max(targets, 1)
    return {
        f"{split}_masked_loss": mean,
        f"{split}_masked_perplexity": math.exp(mean),
        f"{split}_masked_accuracy": correct / max(targets, 1),
        f"{split}_masked_targets": targets,
    }
