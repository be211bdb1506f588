"""Named VAE configs (model / data / train sections); `genloom train vae --preset NAME`."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Seconds on digits (8x8): for tests and for trying the pipeline.
    "debug": {
        "model": {"latent_dim": 4, "width": 8, "hidden": 32, "conditional": True},
        "data": {"source": "digits"},
        "train": {"max_iters": 20, "batch_size": 16, "warmup_iters": 2, "eval_interval": 10, "eval_iters": 2},
    },
    # MNIST on 2 CPU cores: a conditional VAE, 15-minute budget (bench/images.py).
    "mnist-cpu": {
        "model": {"latent_dim": 16, "width": 32, "hidden": 256, "conditional": True},
        "data": {"source": "mnist"},
        "train": {
            "max_iters": 20000,
            "batch_size": 128,
            "lr": 2e-3,
            "min_lr": 1e-4,
            "warmup_iters": 100,
            "weight_decay": 0.0,
            "eval_interval": 500,
            "eval_iters": 10,
            "max_time": 900.0,
        },
    },
}
