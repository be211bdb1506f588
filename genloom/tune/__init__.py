"""Fine-tuning and alignment of genloom text runs: SFT, LoRA, reward models, RLHF with PPO, DPO.

`tune(method, base, data=..., out=...)` (runner.py) is the entry; each method's objective lives in its
own module: sft.py, lora.py, preference.py (reward model and DPO), ppo.py; losses.py holds the
objectives as plain tensor functions; data.py reads and checks the JSONL files.

This package imports nothing itself (import from its modules: `genloom.tune.runner.tune`,
`genloom.tune.lora.LoRAConfig`), so `import genloom` can import it cheaply and keep the public function
`genloom.tune` in charge of the name (genloom/__init__.py).
"""
