"""LoRA adapters in the format of Hugging Face PEFT: `adapter_config.json` + `adapter_model.safetensors`.

Why a second format: genloom's own (`adapters.safetensors` keyed by genloom module names, genloom/tune/lora.py)
fits a genloom base run; people who serve with `transformers` + `peft`, or who download adapters trained
there, need PEFT's. PEFT names each adapted module by its path in the `transformers` model
(`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`) and scales B·A by `lora_alpha / r`
(`lora_alpha / √r` with rsLoRA), exactly as genloom's LoRA does; the translation is the name table of
`genloom/hf.py`, so it exists for every architecture genloom exports (GPT-2, GPT-NeoX, Llama):

- genloom fuses q, k and v into `attn.qkv`. Llama splits them into three modules: each gets genloom's A
  and its rows of B, which is the same update (ΔW_q = B_q·A). GPT-NeoX keeps one fused module whose rows
  are grouped by head, so B's rows are regrouped like the weight's (`hf.neox_qkv`).
- Reading an adapter merges it into the weights (W ← W + scale·B·A, per module, per row block), which
  represents any PEFT LoRA exactly, including separately trained q/k/v adapters and `rank_pattern`.

Only safetensors adapters are read: `adapter_model.bin` is a pickle, which genloom never unpickles.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genloom.errors import UserError
from genloom.hf import hf_config, neox_qkv, pairs_for, stored_name
from genloom.models.gpt import GPT
from genloom.tune.lora import LoRAConfig

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."  # what PEFT puts before a module's path in the transformers model
UNSUPPORTED = {  # adapter_config.json fields whose non-default values change what the adapter computes
    "use_dora": "DoRA's magnitude vectors",
    "modules_to_save": "fully trained extra modules",
    "layers_to_transform": "a subset of layers given by index",
}


def module_table(model: GPT) -> tuple[str, dict[str, tuple[str, int, int]]]:
    """The transformers architecture of `model`, and each of its Linear modules' path there → (genloom
    module name, first row, number of rows) within the genloom weight it is part of."""
    model_type, _ = hf_config(model, None)
    cfg = model.config
    hs, nh, kv = cfg.n_embd // cfg.n_head, cfg.n_head, cfg.n_kv_head or cfg.n_head
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    table: dict[str, tuple[str, int, int]] = {}
    for ours, theirs, _ in pairs_for(model_type, cfg):
        module = ours.removesuffix(".weight")
        if module == ours or module not in linears:
            continue
        rows = linears[module].out_features
        sizes = [nh * hs, kv * hs, kv * hs] if len(theirs) == 3 else [rows]
        offset = 0
        for name, size in zip(theirs, sizes, strict=True):
            table[stored_name(model_type, name).removesuffix(".weight")] = (module, offset, size)
            offset += size
    return model_type, table


def _targets(names: list[str], table: dict[str, tuple[str, int, int]]) -> list[str]:
    """`target_modules` for the adapted transformers modules `names`: their short names when those pick
    out exactly these modules (as people write them: q_proj, v_proj), else the full paths."""
    short = sorted({n.rsplit(".", 1)[-1] for n in names})
    picked = {n for n in table if n.rsplit(".", 1)[-1] in short}
    return short if picked == set(names) else sorted(names)


def save_peft(model: GPT, adapters: dict[str, torch.Tensor], lora: LoRAConfig, out: Path, base: str) -> None:
    """Write genloom adapters (`blocks.0.attn.qkv.lora_A`, ... as `lora.adapter_state` gives them) on
    `model`'s architecture as a PEFT LoRA directory; `base` is the transformers base model's path."""
    from safetensors.torch import save_file

    model_type, table = module_table(model)
    by_module: dict[str, list[tuple[str, int, int]]] = {}
    for name, (module, offset, size) in table.items():
        by_module.setdefault(module, []).append((name, offset, size))
    tensors: dict[str, torch.Tensor] = {}
    for module in sorted({n.rsplit(".", 1)[0] for n in adapters}):
        if module not in by_module:
            raise UserError(f"adapters on {module}: that layer has no counterpart in the {model_type} export")
        a, b = adapters[f"{module}.lora_A"], adapters[f"{module}.lora_B"]
        if model_type == "gpt_neox" and module.endswith(".attn.qkv"):
            b = neox_qkv(b, model.config.n_head, to_neox=True)
        for name, offset, size in by_module[module]:
            tensors[f"{PREFIX}{name}.lora_A.weight"] = a.float().contiguous().clone()
            tensors[f"{PREFIX}{name}.lora_B.weight"] = b[offset : offset + size].float().contiguous().clone()
    adapted = sorted({k.removeprefix(PREFIX).rsplit(".lora_", 1)[0] for k in tensors})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": _targets(adapted, table),
        "bias": "none",
        "fan_in_fan_out": model_type == "gpt2",  # GPT-2's Conv1D stores weights transposed
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def _pattern_value(patterns: dict[str, Any], name: str, default: float) -> float:
    """PEFT's `rank_pattern` / `alpha_pattern`: a key matches a module whose path ends with it (or matches it
    as a regular expression)."""
    for key, value in patterns.items():
        if name == key or name.endswith(f".{key}") or re.fullmatch(rf"(.*\.)?{key}", name):
            return float(value)
    return default


def read_peft_config(path: Path) -> dict[str, Any]:
    """adapter_config.json, checked for what genloom can apply exactly."""
    where = path / ADAPTER_CONFIG
    if not where.exists():
        raise UserError(f"{path}: not a PEFT adapter directory (no {ADAPTER_CONFIG})")
    try:
        config = json.loads(where.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UserError(f"{where}: expected a JSON object")
    if config.get("peft_type") != "LORA":
        raise UserError(f"{where}: peft_type {config.get('peft_type')!r} is not supported (expected 'LORA')")
    for field, what in UNSUPPORTED.items():
        if config.get(field):
            raise UserError(f"{where}: {field} ({what}) is not supported")
    if config.get("bias", "none") != "none":
        raise UserError(f"{where}: bias {config['bias']!r} is not supported (expected 'none')")
    for field in ("r", "lora_alpha"):
        if not isinstance(config.get(field), int | float) or config[field] <= 0:
            raise UserError(f"{where}: {field} must be a positive number, got {config.get(field)!r}")
    return config


@torch.no_grad()
def merge_peft(model: GPT, path: str | Path) -> list[str]:
    """Fold the PEFT LoRA adapter in directory `path` into `model`'s weights (W ← W + scale·B·A); returns
    the adapted transformers module paths. The adapter must have been made for this architecture and
    these shapes (a transformers export of the same model, or the model it was loaded from)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    config = read_peft_config(path)
    weights = path / ADAPTER_WEIGHTS
    if not weights.exists():
        hint = (
            " (adapter_model.bin is a pickle; genloom reads only safetensors)"
            if (path / "adapter_model.bin").exists()
            else ""
        )
        raise UserError(f"{path}: no {ADAPTER_WEIGHTS}{hint}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise UserError(f"{weights}: truncated or corrupt safetensors file ({e})") from None
    model_type, table = module_table(model)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight", key)
        if m is None:
            raise UserError(f"{weights}: tensor {key} is not a LoRA A or B matrix")
        name = m.group(1)
        if model_type == "gpt_neox" and name == "lm_head":  # transformers 5 renamed NeoX's embed_out
            name = "embed_out"
        pairs.setdefault(name, {})[m.group(2)] = value.float()
    params = dict(model.named_parameters())
    r0, alpha0 = float(config["r"]), float(config["lora_alpha"])
    for name, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise UserError(f"{weights}: {name} has lora_{next(iter(ab))} but not its partner")
        if name not in table:
            raise UserError(
                f"{weights}: module {name} does not exist in this model ({model_type}, {model.config.n_layer} layers)"
            )
        module, offset, size = table[name]
        a, b = ab["A"], ab["B"]
        weight = params[f"{module}.weight"]
        if a.shape[1] != weight.shape[1] or b.shape[0] != size or a.shape[0] != b.shape[1]:
            raise UserError(
                f"{weights}: {name} has A {tuple(a.shape)} and B {tuple(b.shape)}; this model expects A (r, "
                f"{weight.shape[1]}) and B ({size}, r)"
            )
        r = _pattern_value(config.get("rank_pattern") or {}, name, r0)
        alpha = _pattern_value(config.get("alpha_pattern") or {}, name, alpha0)
        scale = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
        delta = (b @ a) * scale
        if model_type == "gpt_neox" and module.endswith(".attn.qkv"):
            delta = neox_qkv(delta, model.config.n_head, to_neox=False)
        weight[offset : offset + size] += delta.to(weight.dtype)
    return sorted(pairs)


def export_peft(model: GPT, tokenizer: Any, chat_template: Any, run_dir: Path, out: Path) -> Path:
    """A `genloom tune lora` run as PEFT: `out/` holds the adapter, `out/base/` the transformers model it
    applies to (the run's weights with the adapters taken back out, vocabulary as the run grew it)."""
    import copy

    from safetensors.torch import load_file

    from genloom.hf import save_hf
    from genloom.tune.lora import ADAPTERS, LoRAConfig, read_adapter_meta

    meta = read_adapter_meta(run_dir)
    lora = LoRAConfig(**meta["lora"])
    adapters = load_file(str(run_dir / ADAPTERS))
    base = copy.deepcopy(model)
    params = dict(base.named_parameters())
    with torch.no_grad():
        for module in {n.rsplit(".", 1)[0] for n in adapters}:
            delta = adapters[f"{module}.lora_B"].float() @ adapters[f"{module}.lora_A"].float() * (lora.alpha / lora.r)
            weight = params[f"{module}.weight"]
            weight.sub_(delta.to(weight.dtype))
    save_hf(base, tokenizer, out / "base", chat_template)
    save_peft(base, adapters, lora, out, str((out / "base").resolve()))
    return out
