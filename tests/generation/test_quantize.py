"""Quantized decoding (`gl.load(..., quantize=)`): int8 and int4 block weights, close to float32 logits,
a quarter and about a sixth of the bytes, GGUF Q4_1 blocks kept exactly, and one-line refusals."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genloom as gl
from genloom.cli import main
from genloom.errors import UserError
from genloom.generation.quantize import GROUP, QuantizedLinear, quantize
from genloom.models.gpt.model import GPT, GPTConfig


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=96, block_size=64, n_layer=2, n_head=4, n_embd=64)).eval()


@pytest.mark.parametrize(("kind", "tolerance", "shrink"), [("int8", 0.03, 3.5), ("int4", 0.15, 5.0)])
def test_logits_stay_close_and_the_weights_shrink(kind: str, tolerance: float, shrink: float) -> None:
    model = tiny_gpt()
    idx = torch.randint(0, 96, (2, 24))
    linears = sum(isinstance(m, nn.Linear) for m in model.blocks.modules())
    with torch.no_grad():
        reference = model(idx)
        info = quantize(model, kind)
        got = model(idx)
    assert info["layers"] == linears >= 2 * 4  # attention and MLP projections of every block: all replaced
    assert not any(type(m) is nn.Linear for m in model.blocks.modules())
    assert info["bytes_before"] / info["bytes_after"] > shrink
    error = (got - reference).abs().max() / reference.abs().max()
    assert error < tolerance, error
    assert (got.argmax(-1) == reference.argmax(-1)).float().mean() > 0.8


def test_int4_keeps_q4_1_blocks_exactly() -> None:
    """A weight made of GGUF Q4_1 blocks (w = d·q + m, q in 0..15, both ends used) comes back exactly: the
    product differs from float32 only by the bf16 rounding of activations and output."""
    torch.manual_seed(1)
    out_f, in_f = 48, 4 * GROUP
    q = torch.randint(0, 16, (out_f, in_f // GROUP, GROUP))
    q[..., 0], q[..., 1] = 0, 15
    d = torch.tensor([0.25, 0.125, 0.5, 0.0625])[torch.randint(0, 4, (out_f, in_f // GROUP))]  # exact in bf16
    m = -torch.randint(1, 8, (out_f, in_f // GROUP)).float() * d
    linear = nn.Linear(in_f, out_f, bias=False)
    linear.weight.data = (q * d[..., None] + m[..., None]).view(out_f, in_f)
    x = torch.randn(5, in_f).bfloat16().float()  # the layer computes in bf16: start from bf16 values
    exact = F.linear(x, linear.weight)
    got = QuantizedLinear(linear, "int4")(x)
    assert torch.allclose(got, exact, rtol=1e-2, atol=1e-2)  # bf16 output rounding only
    assert not torch.allclose(QuantizedLinear(linear, "int8")(x), exact, rtol=1e-3, atol=1e-3)  # int8 rounds these


def test_a_quantized_run_samples_from_the_cli(trained_run: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    lm = gl.load(trained_run, quantize="int4")
    assert lm.quantized["quantize"] == "int4" and lm.quantized["layers"] > 0
    assert len(lm.complete("ROMEO:", max_new_tokens=12, temperature=0)[0].token_ids) == 12
    out = tmp_path / "s.txt"
    assert main(["sample", str(trained_run), "--quantize", "int8", "--max-new-tokens", "10", "--out", str(out)]) == 0
    assert out.read_text().strip()


def test_bad_quantize_is_one_line(trained_run: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="'int3' is not a quantization; expected one of int8, int4"):
        gl.load(trained_run, quantize="int3")
    table = tmp_path / "table"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gl.train("copula", out=table, data="wine", preset="debug", sets=["train.progress=false"])
    capsys.readouterr()
    assert main(["sample", str(table), "--quantize", "int4", "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert "--quantize int4: applies to GPT/Llama text models" in err and err.count("\n") == 1
    assert not (tmp_path / "t.csv").exists()
