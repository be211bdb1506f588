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
    # A code model trained on a source tree (docs/code.md): code BPE with the fill-in-the-middle tokens, half of
    # the training documents rearranged for FIM (Bavarian et al. 2022), a 2048-token context so an editor can
    # send the code around the cursor. Without --data it reads the running interpreter's standard library
    # (PSF licence, on every machine), tests and GUI packages left out.
    "code-cpu": {
        "data": {
            "source": "python-stdlib",
            "glob": "**/*.py",
            "code": True,
            "exclude": ("test/", "tests/", "idlelib/", "tkinter/", "turtledemo/", "lib2to3/", "ensurepip/"),
            "tokenizer": "code",
            "vocab_size": 4096,
            "fim_rate": 0.5,
            "fim_spm_rate": 0.5,
            "val_fraction": 0.05,
        },
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 256, "block_size": 2048, "dropout": 0.0, "pos_encoding": "rope"},
        # one 2048-token context a step: at this budget more optimizer steps beat larger batches (4 × 2048 tokens a
        # step reached only 5.2 nats at step 120); 500 steps, about 1M tokens, in about 10 minutes of one core
        "train": {
            "max_iters": 500,
            "batch_size": 1,
            "lr": 2e-3,
            "min_lr": 2e-4,
            "warmup_iters": 30,
            "eval_interval": 125,
            "eval_iters": 8,
            "sample_tokens": 0,
            "dtype": "bfloat16",
            "max_time": 600.0,
        },
    },
    # Trains in seconds on one small package of the standard library: for tests of the code pipeline.
    "code-debug": {
        "data": {
            "source": "python-stdlib",
            "glob": "json/*.py",
            "code": True,
            "tokenizer": "code",
            "vocab_size": 300,
            "fim_rate": 0.5,
            "val_fraction": 0.2,
        },
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64},
        "train": {
            "max_iters": 20,
            "batch_size": 8,
            "warmup_iters": 2,
            "eval_interval": 10,
            "eval_iters": 2,
            "sample_tokens": 0,
        },
    },
}
