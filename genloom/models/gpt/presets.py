"""Named GPT configs. Each preset overrides the defaults of `GPTConfig`, `TextDataConfig` and
`TrainConfig` section by section; `genloom train gpt --preset NAME` picks one."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Trains in seconds: for tests and for trying the pipeline end to end.
    "debug": {
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32},
        "train": {
            "max_iters": 20,
            "batch_size": 8,
            "warmup_iters": 2,
            "eval_interval": 10,
            "eval_iters": 2,
            "sample_tokens": 32,
        },
    },
    # nanoGPT's README CPU recipe for character-level Tiny Shakespeare: the same sizes and optimizer
    # settings; RoPE instead of learned positions (val loss 1.78 instead of 1.90 at step 2000) and bf16
    # autocast for speed. bench/train_gpt.py measures it against nanoGPT and the fp32/learned variants.
    "nanogpt-cpu": {
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "pos_encoding": "rope"},
        "train": {
            "max_iters": 2000,
            "batch_size": 12,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup_iters": 100,
            "beta1": 0.9,
            "beta2": 0.99,
            "weight_decay": 0.1,
            "grad_clip": 1.0,
            "eval_interval": 250,
            "eval_iters": 20,
            "dtype": "bfloat16",
        },
    },
    # `genloom demo`: about two minutes on 2 CPU cores, bf16 autocast, readable Shakespeare-like text.
    "demo": {
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128, "pos_encoding": "rope"},
        "train": {
            "max_iters": 2000,
            "batch_size": 16,
            "lr": 2e-3,
            "min_lr": 2e-4,
            "warmup_iters": 100,
            "eval_interval": 400,
            "eval_iters": 20,
            "dtype": "bfloat16",
            "max_time": 150.0,
        },
    },
}
