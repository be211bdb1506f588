"""Position-wise feed-forward blocks: GELU MLP (GPT-2) and SwiGLU (Shazeer 2020, used by Llama)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.nn.linear import Linear


class MLP(nn.Module):
    """Linear → GELU → Linear, with the hidden width usually 4 × the model width.

    `approximate="tanh"` is the tanh approximation of GELU that GPT-2 was trained with ("gelu_new")."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        bias: bool = False,
        dropout: float = 0.0,
        approximate: Literal["none", "tanh"] = "none",
    ) -> None:
        super().__init__()
        self.approximate = approximate
        self.up = Linear(dim, hidden, bias=bias)
        self.down = Linear(hidden, dim, bias=bias)  # a residual projection: GPT-2 scales its init
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x), approximate=self.approximate)))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): a gated unit, eq. (6) of Shazeer 2020 with Swish."""

    def __init__(self, dim: int, hidden: int, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate = Linear(dim, hidden, bias=bias)
        self.up = Linear(dim, hidden, bias=bias)
        self.down = Linear(hidden, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


def make_mlp(
    kind: Literal["gelu", "swiglu"],
    dim: int,
    hidden: int | None,
    bias: bool = False,
    dropout: float = 0.0,
    gelu_approximate: Literal["none", "tanh"] = "none",
) -> nn.Module:
    """GELU defaults to 4·dim hidden units; SwiGLU to ⅔ of that (rounded up to 8) for equal parameters."""
    if kind == "gelu":
        return MLP(dim, hidden or 4 * dim, bias, dropout, gelu_approximate)
    if kind == "swiglu":
        default = -(-(8 * dim // 3) // 8) * 8
        return SwiGLU(dim, hidden or default, bias, dropout)
    raise ValueError(f"mlp must be 'gelu' or 'swiglu', got {kind!r}")
