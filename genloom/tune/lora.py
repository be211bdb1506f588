"""LoRA: low-rank adapters on chosen Linear layers (Hu et al. 2021, "LoRA: Low-Rank Adaptation").

A frozen Linear W (out, in) gets a trainable update ΔW = B·A·(α/r) with A (r, in) and B (out, r):
    y = x·Wᵀ + dropout(x)·Aᵀ·Bᵀ·(α/r)                                          (eq. 3)
A starts random (Kaiming-uniform, as the paper's reference code does) and B at zero, so training starts
from the base model exactly. Only A and B train; `merge_lora` folds B·A·α/r into W and removes the
adapters, giving a plain model with the same outputs.

Which layers: a regular expression searched in each Linear's module name (`named_modules()`): "attn"
adapts `blocks.N.attn.qkv` and `.proj`, "qkv" only the fused input projections, "attn|mlp" both.

On disk (next to a run's other files): `adapters.safetensors` (the A and B tensors, by module name) and
`adapters.json` (r, alpha, dropout, target, the vocabulary size the adapters were trained with, and the
base run's path and weights hash); `load_adapters` refuses adapters made for another base run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from genloom.errors import UserError

ADAPTERS = "adapters.safetensors"
ADAPTERS_META = "adapters.json"


@dataclass
class LoRAConfig:
    target: str = "attn|mlp"  # regex searched in Linear module names (e.g. "qkv", "attn", "attn|mlp")
    r: int = 8  # rank of the update B·A
    alpha: float = 16.0  # scale: the update is multiplied by alpha / r
    dropout: float = 0.0  # dropout on the adapter's input (the frozen path has none)

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"lora.r must be a positive rank, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"lora.alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        try:
            re.compile(self.target)
        except re.error as e:
            raise ValueError(f"lora.target {self.target!r} is not a regular expression ({e})") from None


class LoRAFunction(torch.autograd.Function):
    """y = x·Wᵀ + b + (x·Aᵀ·α/r)·Bᵀ with W frozen, in one autograd node.

    Why not plain autograd: composed from ops, the update makes two full-width temporaries on the way
    forward (x·Aᵀ·Bᵀ and its scaled copy, each as large as the layer's output) and the backward sums two
    full-width input gradients. Measured on an 8 × 512 run, that put LoRA's peak memory above full
    fine-tuning's, whose gradients and AdamW state it exists to save. Here the update is added into the
    base output in place and the adapter's input gradient into the base path's, so LoRA allocates what a
    frozen Linear does plus rank-r tensors. Saved for backward: x (as full fine-tuning saves it) and the
    rank-r s = x·Aᵀ·α/r."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_A: torch.Tensor,
        lora_B: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        s = (x2 @ lora_A.t()).mul_(scale)  # (N, r)
        y = x2 @ weight.t() if bias is None else torch.addmm(bias, x2, weight.t())  # (N, out)
        y.addmm_(s, lora_B.t())
        ctx.save_for_backward(x, weight, lora_A, lora_B, s)
        ctx.scale = scale
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, lora_A, lora_B, s = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])  # (N, out)
        x2 = x.reshape(-1, x.shape[-1])
        gs = (g @ lora_B).mul_(ctx.scale)  # (N, r): gradient at x·Aᵀ
        grad_x = grad_A = grad_B = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight).addmm_(gs, lora_A).view_as(x)  # base path + adapter path, one buffer
        if ctx.needs_input_grad[3]:
            grad_A = gs.t() @ x2  # (r, in)
        if ctx.needs_input_grad[4]:
            grad_B = g.t() @ s  # (out, r)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            raise RuntimeError("LoRAFunction: the base Linear is frozen; its weight and bias get no gradient")
        return grad_x, None, None, grad_A, grad_B, None


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable rank-r update."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initializes its weight
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout.p > 0 and self.training:
            # dropout needs its own mask and copy of x anyway: compose the two paths with autograd
            update = (self.dropout(x) @ self.lora_A.t()) * self.scale @ self.lora_B.t()
            return self.base(x) + update
        return LoRAFunction.apply(x, self.base.weight, self.base.bias, self.lora_A, self.lora_B, self.scale)

    def delta(self) -> torch.Tensor:
        """ΔW = B·A·α/r, shaped like the base weight (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scale


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Wrap every Linear whose name matches `cfg.target` in a `LoRALinear` and freeze everything else.
    Returns the adapted module names; a pattern that matches nothing is an error."""
    pattern = re.compile(cfg.target)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.search(n)]
    if not names:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        example = ", ".join(linears[:4])
        raise UserError(f"lora.target {cfg.target!r} matches no Linear layer (names look like: {example})")
    embedding = getattr(model, "wte", None)
    model.requires_grad_(False)
    for name in names:
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear)
        if embedding is not None and linear.weight is getattr(embedding, "weight", None):
            raise UserError(f"lora.target {cfg.target!r} matches {name}, which shares its weight with the embedding")
        _set_module(model, name, LoRALinear(linear, cfg.r, cfg.alpha, cfg.dropout))
    return names


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors by name (`blocks.0.attn.qkv.lora_A`, ...)."""
    return {n: p.detach().contiguous() for n, p in model.named_parameters() if n.endswith(("lora_A", "lora_B"))}


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its Linear (W ← W + B·A·α/r) and put the plain Linear back."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            module.base.weight += module.delta()
            module.base.requires_grad_(True)
            _set_module(model, name, module.base)
    return model


def save_adapters(model: nn.Module, out: Path, cfg: LoRAConfig, base: dict[str, Any]) -> None:
    """Write `adapters.safetensors` and `adapters.json` (config + `base`: run path, weights hash,
    vocabulary size) into `out`."""
    from genloom.run import atomic_write_text, save_tensors

    save_tensors(adapter_state(model), out / ADAPTERS)
    atomic_write_text(out / ADAPTERS_META, json.dumps({"lora": asdict(cfg), "base": base}, indent=2) + "\n")


def read_adapter_meta(path: Path) -> dict[str, Any]:
    meta_path = path / ADAPTERS_META
    if not meta_path.exists() or not (path / ADAPTERS).exists():
        raise UserError(f"{path}: no LoRA adapters here (expected {ADAPTERS} and {ADAPTERS_META})")
    try:
        meta = json.loads(meta_path.read_text())
        LoRAConfig(**meta["lora"])
        meta["base"]["weights_sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{meta_path}: not a valid adapters file ({e})") from None
    return meta


def load_adapters(model: nn.Module, path: Path, base_weights_sha256: str) -> dict[str, Any]:
    """Attach the adapters saved in `path` to `model` (the base run's model, already resized to the
    adapters' vocabulary). Refuses adapters trained on a different base run."""
    meta = read_adapter_meta(path)
    if meta["base"]["weights_sha256"] != base_weights_sha256:
        raise UserError(
            f"{path / ADAPTERS_META}: these adapters were trained on base run {meta['base'].get('run')!r} "
            f"(weights {meta['base']['weights_sha256']}), not on this run (weights {base_weights_sha256})"
        )
    cfg = LoRAConfig(**meta["lora"])
    apply_lora(model, cfg)
    tensors = load_file(str(path / ADAPTERS))
    params = dict(model.named_parameters())
    expected = {n for n in params if n.endswith(("lora_A", "lora_B"))}
    if set(tensors) != expected:
        raise UserError(
            f"{path / ADAPTERS}: adapter names do not match the model ({sorted(set(tensors) ^ expected)[:3]})"
        )
    with torch.no_grad():
        for n, t in tensors.items():
            if params[n].shape != t.shape:
                raise UserError(f"{path / ADAPTERS}: {n} has shape {tuple(t.shape)}, expected {tuple(params[n].shape)}")
            params[n].copy_(t)
    return meta
