"""Named flow configs."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"levels": 2, "steps": 2, "hidden": 8},
        "data": {"source": "digits"},
        "train": {"max_iters": 20, "batch_size": 16, "warmup_iters": 2, "eval_interval": 10, "eval_iters": 2},
    },
    # MNIST on 2 CPU cores, 15-minute budget (bench/images.py).
    "mnist-cpu": {
        "model": {"levels": 2, "steps": 6, "hidden": 96, "conditional": True},
        "data": {"source": "mnist"},
        "train": {
            "max_iters": 20000,
            "batch_size": 64,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup_iters": 200,
            "weight_decay": 0.0,
            "eval_interval": 500,
            "eval_iters": 5,
            "max_time": 900.0,
        },
    },
}
