"""Named TVAE configs: the paper's sizes (two 128-wide layers, a 128-d latent, loss factor 2), Adam at 1e-3."""

from typing import Any

_TRAIN = {
    "threads": 1,
    "lr": 1e-3,
    "min_lr": 1e-4,
    "weight_decay": 1e-5,
    "grad_clip": 0.0,
    "eval_iters": 5,
    "sample_tokens": 0,
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"latent_dim": 8, "hidden": 32},
        "data": {"source": "wine", "max_modes": 3},
        "train": {**_TRAIN, "max_iters": 30, "batch_size": 32, "warmup_iters": 2, "eval_interval": 15},
    },
    # Under a minute on one core for the bundled tables (bench/tables.py). One thread: the matrices are
    # tiny, and on a shared 2-core machine a second thread made each step 30x slower (8 vs 240 ms).
    "default": {
        "model": {"latent_dim": 128, "hidden": 128},
        "train": {
            **_TRAIN,
            "max_iters": 3000,
            "batch_size": 256,
            "warmup_iters": 50,
            "eval_interval": 500,
            "max_time": 600.0,
        },
    },
}
