"""Named BERT configs. Each preset overrides the defaults of `BertConfig`, `MaskedTextDataConfig` and
`TrainConfig` section by section; `genloom train bert --preset NAME` picks one."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Trains in seconds: for tests and for trying the pipeline end to end.
    "debug": {
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.0},
        "data": {"vocab_size": 500},
        "train": {
            "max_iters": 20,
            "batch_size": 8,
            "warmup_iters": 2,
            "eval_interval": 10,
            "eval_iters": 2,
            "sample_tokens": 0,
        },
    },
    # A small uncased BERT on Tiny Shakespeare for 2 CPU cores: a 2k WordPiece vocabulary, 4 layers of
    # width 128, 64-token windows. Post-norm as BERT (a 90 s probe: pre-norm learned no faster here);
    # no dropout, as the run is short. Stops after 540 s at the latest (~3000 steps at 1 thread on 2
    # shared cores); bench/mlm.py records the held-out accuracy.
    "shakespeare": {
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
        "data": {"vocab_size": 2048},
        "train": {
            "max_iters": 3000,
            "batch_size": 32,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup_iters": 100,
            "weight_decay": 0.01,
            "beta2": 0.98,
            "eval_interval": 500,
            "eval_iters": 10,
            "sample_tokens": 0,
            "max_time": 540.0,
        },
    },
}
