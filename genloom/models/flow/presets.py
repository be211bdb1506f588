"""Named flow configs."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"levels": 2, "steps": 2, "hidden": 8},
        "data": {"source": "digits"},
        "train": {"max_iters": 20, "batch_size": 16, "warmup_iters": 2, "eval_interval": 10, "eval_iters": 2},
    },
    # MNIST on 2 CPU cores, 15-minute budget (bench/images.py). max_iters 9000 lets the cosine decay end
    # inside the budget (a 20000-step run ended by time with the rate at 85% of peak). Temperature 1 (the
    # model's own distribution) gave the best FID of 0.5-1.0 before the learned prior. Uniform
    # dequantization without the learned prior: 1.633 bits/dim, FID 326, 29.8% conditional accuracy; with
    # both (session 4): 1.485 bits/dim, FID 133, 76.3%, 9000 steps in 790 s.
    "mnist-cpu": {
        "model": {
            "levels": 2,
            "steps": 6,
            "hidden": 96,
            "conditional": True,
            "temperature": 1.0,
            "dequantization": "variational",
        },
        "data": {"source": "mnist"},
        "train": {
            "max_iters": 9000,
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
