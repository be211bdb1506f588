"""Named GAN configs; Adam with beta1 = 0.5 and no weight decay, as DCGAN recommends."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"latent_dim": 8, "width": 8},
        "data": {"source": "digits"},
        "train": {
            "max_iters": 20,
            "batch_size": 16,
            "lr": 2e-4,
            "min_lr": 2e-4,
            "warmup_iters": 0,
            "beta1": 0.5,
            "beta2": 0.999,
            "weight_decay": 0.0,
            "grad_clip": 0.0,
            "eval_interval": 10,
            "eval_iters": 2,
        },
    },
    # MNIST on 2 CPU cores, 15-minute budget (bench/images.py).
    "mnist-cpu": {  # aux_weight: AC-GAN's classifier, 77% vs 61% conditional accuracy after 150 s (1 thread)
        "model": {"latent_dim": 64, "width": 64, "aux_weight": 1.0},
        "data": {"source": "mnist"},
        "train": {
            "max_iters": 20000,
            "batch_size": 64,
            "lr": 2e-4,
            "min_lr": 2e-4,
            "warmup_iters": 0,
            "beta1": 0.5,
            "beta2": 0.999,
            "weight_decay": 0.0,
            "grad_clip": 0.0,
            "eval_interval": 500,
            "eval_iters": 5,
            "max_time": 900.0,
        },
    },
}
