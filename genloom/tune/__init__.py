"""Fine-tuning and alignment of genloom text runs: SFT, LoRA, reward models, RLHF with PPO, DPO.

`tune(method, base, data=..., out=...)` (runner.py) is the entry; each method's objective lives in its
own module: sft.py, lora.py, preference.py (reward model and DPO), ppo.py; losses.py holds the
objectives as plain tensor functions; data.py reads and checks the JSONL files.
"""

from genloom.tune.lora import LoRAConfig, apply_lora, load_adapters, merge_lora, read_adapter_meta
from genloom.tune.ppo import REWARDS, RewardFn
from genloom.tune.runner import METHODS, TuneResult, resolve_reward, tune, weights_sha256

__all__ = [
    "METHODS",
    "REWARDS",
    "LoRAConfig",
    "RewardFn",
    "TuneResult",
    "apply_lora",
    "load_adapters",
    "merge_lora",
    "read_adapter_meta",
    "resolve_reward",
    "tune",
    "weights_sha256",
]
