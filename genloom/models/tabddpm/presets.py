"""Named TabDDPM configs: the paper's recipe at CPU size (AdamW 2e-3 decaying, batch 256, a cosine schedule)."""

from typing import Any

# One thread: the matrices are tiny, and a second thread on a shared 2-core machine only waits.
_TRAIN = {
    "threads": 1,
    "lr": 2e-3,
    "min_lr": 1e-4,
    "weight_decay": 1e-5,
    "grad_clip": 1.0,
    "eval_iters": 5,
    "sample_tokens": 0,
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {
        "model": {"hidden": 32, "layers": 2, "num_timesteps": 20},
        "data": {"source": "wine"},
        "train": {**_TRAIN, "max_iters": 30, "batch_size": 32, "warmup_iters": 2, "eval_interval": 15},
    },
    # A few minutes on one core for the bundled tables (bench/tables.py). T = 250 rather than the paper's
    # usual 1000: sampling costs T network passes, and on 2 shared cores 1000 took a minute per 1000 rows.
    "default": {
        "model": {"hidden": 256, "layers": 3, "num_timesteps": 250},
        "train": {
            **_TRAIN,
            "max_iters": 10000,
            "batch_size": 256,
            "warmup_iters": 100,
            "eval_interval": 1000,
            "max_time": 600.0,
        },
    },
}
