"""Autoregressive sampling: temperature, top-k and greedy decoding with a seedable generator.

Each step feeds the last `block_size` tokens, takes the logits of the final position, applies the
processors in this order — temperature, then top-k — and draws the next token. A temperature of 0
means greedy (argmax). The sampler uses its own `torch.Generator`, never the global RNG, so sampling
during training cannot change the training run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.inference_mode()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Args: idx (B, T) prompt ids (T ≥ 1). Returns (B, T + max_new_tokens) ids."""
    block_size = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    for _ in range(max_new_tokens):
        context = idx[:, -block_size:]  # the model sees at most block_size tokens
        logits = model(context)[:, -1, :].float()  # (B, V) scores for the next token
        if temperature <= 0:
            next_id = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None and top_k < logits.size(-1):
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th best score
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)
    return idx
