"""Weight-only quantized decoding: int8 per output channel, int4 in groups of 32 (`gl.load(..., quantize=)`).

Why: decoding one token of a model whose weights do not fit in the CPU's caches reads every weight once
per token, so a batch-1 step is bound by memory bandwidth (SmolLM2-135M in float32: 540 MB a token,
~20 tokens/s on one core here, `aten::mm` 85% of the time). Fewer bytes per weight is the lever: int8 is
a quarter of float32, int4 an eighth. PyTorch ships CPU kernels that multiply activations by packed
weights without expanding them (`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`); both are fast
with bfloat16 activations and slow with float32 ones (measured: a 1536 × 576 int4 product 48 µs in bf16,
3.9 ms in fp16 and 2.3 ms in fp32, against 410 µs for float32 `F.linear`), so a quantized layer computes
in bf16 and hands back the caller's dtype.

What is quantized: the linear layers inside the transformer blocks (attention and MLP projections).
The token embedding and the output projection stay in float32: they are often tied, the embedding is a
lookup, and the output projection decides the next token (as llama.cpp's and most quantizers' defaults
keep them in higher precision).

- int8: w ≈ q · s per output row, q in [-127, 127], s = max|w_row| / 127.
- int4: w ≈ (q - 8) · s + z per group of 32 input weights, q in [0, 15], s = (max - min) / 15,
  z = min + 8 s: the asymmetric scheme of GGUF's Q4_1 with its block of 32, so a model read from a
  Q4_1 GGUF file gets back the file's own 4-bit values (its dequantized weights have min and max at
  q = 0 and q = 15 in every block); the scale and offset are kept in bf16.

The arithmetic differs from float32 (bf16 activations, rounded weights), so a quantized model's greedy
text can part from the float32 model's after some tokens; `bench/pretrained.py --quantize` reports how
often, beside the speed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genloom.errors import UserError

KINDS = ("int8", "int4")
GROUP = 32  # input weights per int4 scale/offset (GGUF's Q4_0/Q4_1 block)
COMPUTE = torch.bfloat16  # the activations' dtype inside a quantized product (see the module docstring)


class QuantizedLinear(nn.Module):
    """A `Linear` whose weight is stored as int8 (per row) or packed int4 (per group of 32 inputs)."""

    def __init__(self, linear: nn.Linear, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach().float()
        if kind == "int8":
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
            self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
            self.register_buffer("scales", scale.to(COMPUTE))
        else:
            groups = w.view(self.out_features, -1, GROUP)  # (N, K/G, G)
            lo, hi = groups.amin(dim=2), groups.amax(dim=2)
            scale = ((hi - lo) / 15).clamp(min=1e-12)
            q = torch.round((groups - lo[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.view(self.out_features, -1), 1)
            self.register_buffer("qweight", packed)
            # (K/G, N, 2): scale and offset per group, as the kernel reads them; w = (q - 8) · s + z
            self.register_buffer("scales", torch.stack([scale.t(), (lo + 8 * scale).t()], dim=-1).to(COMPUTE))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(COMPUTE)
        if self.kind == "int8":
            y = torch.ops.aten._weight_int8pack_mm(rows, self.qweight, self.scales)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, self.qweight, GROUP, self.scales)
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, {self.kind}"


def quantize(model: nn.Module, kind: str, where: str = "quantize") -> dict[str, Any]:
    """Replace the linear layers of `model.blocks` by `QuantizedLinear`s of `kind`, in place; what was done
    (layers, bytes before and after). Refuses a model that is not on the CPU or not float32/bf16."""
    if kind not in KINDS:
        raise UserError(f"{where}: {kind!r} is not a quantization; expected one of {', '.join(KINDS)}")
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise UserError(f"{where}: applies to transformer language models (GPT/Llama), not a {type(model).__name__}")
    first = next(model.parameters())
    if first.device.type != "cpu":
        raise UserError(f"{where}: quantized decoding runs on the CPU; this model is on {first.device}")
    targets = [
        (parent, name, child)
        for parent in blocks.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Linear)
    ]
    if kind == "int4":
        odd = next((c for _, _, c in targets if c.in_features % GROUP), None)
        if odd is not None:
            raise UserError(f"{where}: int4 needs layer widths that are multiples of {GROUP}; one is {odd.in_features}")
    before = after = 0
    with torch.no_grad():
        for parent, name, child in targets:
            q = QuantizedLinear(child, kind)
            before += child.weight.numel() * child.weight.element_size()
            after += sum(b.numel() * b.element_size() for b in q.buffers())
            setattr(parent, name, q)
    return {"quantize": kind, "layers": len(targets), "bytes_before": before, "bytes_after": after}
