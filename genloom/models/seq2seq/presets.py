"""Named encoder-decoder configs. Each preset overrides the defaults of `Seq2SeqConfig`, `PairDataConfig`
and `TrainConfig` section by section; `genloom train seq2seq --preset NAME` picks one."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Trains in seconds: for tests and for trying the pipeline end to end.
    "debug": {
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.0},
        "data": {"vocab_size": 400, "truncate": True},  # a 32-token context: cut the few long sides
        "train": {
            "max_iters": 20,
            "batch_size": 8,
            "warmup_iters": 2,
            "eval_interval": 10,
            "eval_iters": 2,
            "sample_tokens": 0,
        },
    },
    # English → French on the bundled Tatoeba pairs, for 2 CPU cores in at most 20 minutes: 15 minutes
    # of training (~6000 steps of 64 pairs at ~130 ms/step with 1 thread, about 5.5 epochs of the 68.5k
    # training pairs), then evaluation. Three encoder and three decoder layers of width 256 (7M
    # parameters besides the 6000-token shared embedding); pre-norm, which trains at this learning rate
    # without the paper's long warmup; bf16 autocast, twice as fast as fp32 here. bench/seq2seq.py
    # compares it with a decoder-only GPT trained for the same time.
    "tatoeba-cpu": {
        "model": {
            "n_layer": 3,
            "n_head": 4,
            "n_embd": 256,
            "block_size": 48,
            "dropout": 0.1,
            "norm_position": "pre",
        },
        "data": {"vocab_size": 6000},
        "train": {
            "max_iters": 6000,
            "batch_size": 64,
            "lr": 1e-3,
            "min_lr": 1e-4,
            "warmup_iters": 200,
            "weight_decay": 0.01,
            "beta2": 0.98,
            "eval_interval": 500,
            "eval_iters": 10,
            "sample_tokens": 47,  # greedy translations of three validation sentences at each evaluation
            "dtype": "bfloat16",
            "max_time": 900.0,
        },
    },
}
