"""AdamW with decoupled weight decay (Loshchilov & Hutter 2019) and a warmup + cosine schedule.

Weight decay goes on matrices (Linear and embedding weights) only, never on norms or biases, as in
GPT-2 and nanoGPT. The fused AdamW kernel updates every parameter in one pass; it exists on CPU since
torch 2.4 and is the fastest choice here (bench/RESULTS.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genloom.train.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}[cfg.optimizer]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **impl)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for the 0-based `step`: linear warmup, cosine decay to min_lr, then min_lr."""
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if step > decay_iters:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / max(1, decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
