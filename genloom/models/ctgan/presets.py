"""Named CTGAN configs: the paper's sizes (256-wide residual generator and critic, pac 10), Adam 2e-4, β = (0.5, 0.9)."""

from typing import Any

# One thread: the matrices are tiny, and a second thread on a shared 2-core machine only waits.
_TRAIN = {
    "threads": 1,
    "lr": 2e-4,
    "min_lr": 2e-4,
    "beta1": 0.5,
    "beta2": 0.9,
    "weight_decay": 1e-6,
    "grad_clip": 0.0,
    "warmup_iters": 0,
    "eval_iters": 2,
    "sample_tokens": 0,
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"latent_dim": 8, "hidden": 32, "pac": 2},
        "data": {"source": "wine", "max_modes": 3},
        "train": {**_TRAIN, "max_iters": 20, "batch_size": 20, "eval_interval": 10},
    },
    # 3000 steps: the paper's 300 epochs of 500-row batches are 300 (breast_cancer) to 3000 (fair) steps here
    "default": {
        "model": {"latent_dim": 128, "hidden": 256, "pac": 10},
        "train": {**_TRAIN, "max_iters": 3000, "batch_size": 500, "eval_interval": 1000, "max_time": 600.0},
    },
}
