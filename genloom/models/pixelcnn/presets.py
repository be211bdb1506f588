"""Named PixelCNN configs."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"hidden": 8, "layers": 2, "kernel_size": 3},
        "data": {"source": "digits"},
        "train": {"max_iters": 20, "batch_size": 16, "warmup_iters": 2, "eval_interval": 10, "eval_iters": 2},
    },
    # The quick gated PixelCNN: 64 channels x 8 layers, bf16 autocast, 15-minute budget.
    "mnist-cpu": {
        "model": {"hidden": 64, "layers": 8, "kernel_size": 5},
        "data": {"source": "mnist"},
        "train": {
            "max_iters": 20000,
            "batch_size": 32,
            "lr": 2e-3,
            "min_lr": 1e-4,
            "warmup_iters": 100,
            "weight_decay": 0.0,
            "eval_interval": 500,
            "eval_iters": 5,
            "dtype": "bfloat16",
            "sample_tokens": 0,  # no grid during training: 784 network passes per image are too slow here
            "max_time": 900.0,
        },
    },
}
