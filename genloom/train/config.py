"""`TrainConfig`: everything the shared training loop needs, for every family."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass
class TrainConfig:
    max_iters: int = 2000  # optimizer steps
    batch_size: int = 12  # sequences (or images) per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 1e-4  # floor of the cosine decay
    warmup_iters: int = 100  # linear warmup steps
    lr_decay_iters: int | None = None  # end of the cosine decay (None: max_iters)
    weight_decay: float = 0.1  # AdamW decoupled decay, on matrices only
    beta1: float = 0.9
    beta2: float = 0.99  # a bit above 0.95 because small batches give noisy gradients
    grad_clip: float = 1.0  # max global gradient norm (0: no clipping)
    eval_interval: int = 250  # evaluate, sample and checkpoint every this many steps
    eval_iters: int = 20  # random batches per evaluation estimate (`genloom eval` uses the whole split)
    log_interval: int = 1  # write a metrics line every this many steps
    sample_tokens: int = 200  # tokens of text sampled at every evaluation (0: none)
    seed: int = 1337  # initialization, dropout and data order
    device: str = "cpu"  # any torch device string
    dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16: autocast matmuls, fp32 master weights
    compile: bool = False  # torch.compile the forward and backward pass
    optimizer: Literal["fused", "foreach", "for-loop"] = "fused"  # AdamW implementation
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    max_time: float | None = None  # wall-clock budget in seconds: stop, evaluate and save when spent
    progress: bool = True  # live progress bar on stderr

    def __post_init__(self) -> None:
        for name in ("lr", "min_lr", "weight_decay", "beta1", "beta2", "grad_clip"):
            if not math.isfinite(getattr(self, name)):  # NaN passes every `x <= 0` check below
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.weight_decay < 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(
                f"need weight_decay >= 0 and betas in [0, 1), got weight_decay={self.weight_decay}, "
                f"beta1={self.beta1}, beta2={self.beta2}"
            )
        for name in ("max_iters", "batch_size", "grad_accum", "eval_interval", "log_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_iters < 0 or self.grad_clip < 0:
            raise ValueError("warmup_iters and grad_clip must not be negative")
        if self.eval_iters <= 0:
            raise ValueError(f"eval_iters must be positive, got {self.eval_iters}")
        if self.max_time is not None and not (self.max_time > 0 and math.isfinite(self.max_time)):
            raise ValueError(f"max_time must be positive seconds, got {self.max_time}")
