"""The streaming matrix-vector product of `genloom.nn.Linear`: the same numbers as `F.linear`, used only
where it should be (single rows, no gradient, `stream` on), and a clean fallback when it cannot build."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import genloom.models.gpt.model as gpt_model
import genloom.nn.linear as L
from genloom.generation import GenerationConfig, complete
from genloom.models.gpt import GPT, GPTConfig


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (1, 1, 48)])
def test_streaming_linear_equals_f_linear(bias: bool, shape: tuple[int, ...]):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(80, 48, generator=g)
    b = torch.randn(80, generator=g) if bias else None
    x = torch.randn(shape, generator=g)
    with torch.inference_mode():
        got = L.streaming_linear(x, w, b)
    assert got.shape == (*shape[:-1], 80)
    torch.testing.assert_close(got, F.linear(x, w, b), atol=1e-5, rtol=1e-5)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = L.streaming_linear

    def counted(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        calls.append(x.shape[-1])
        return real(x, w, b)

    monkeypatch.setattr(L, "streaming_linear", counted)
    return calls


def test_linear_streams_only_single_rows_without_gradient(monkeypatch: pytest.MonkeyPatch):
    calls = _counting(monkeypatch)
    layer = L.Linear(16, 8)
    x1, x4 = torch.randn(1, 1, 16), torch.randn(1, 4, 16)
    layer(x1)  # stream off: plain F.linear
    layer.stream = True
    layer(x1)  # gradient enabled (training): plain
    with torch.no_grad():
        layer(x4)  # four rows: plain
        out = layer(x1)  # one row, no gradient: streamed
    assert calls == [16]
    torch.testing.assert_close(out, F.linear(x1, layer.weight, layer.bias))


def test_large_model_decodes_the_same_tokens_with_streaming(monkeypatch: pytest.MonkeyPatch):
    """A model over the size threshold (lowered here) streams its batch-1 steps and produces the same
    greedy tokens and nearly the same logits as with streaming off; batch 2 does not stream."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=300, block_size=64, n_layer=2, n_head=4, n_embd=64, bias=True)).eval()
    prompts = [[5, 17, 42, 7]]
    cfg = GenerationConfig(max_new_tokens=24, temperature=0, stop_at_eos=False, logprobs=True)
    plain = complete(model, prompts, cfg, lambda t: "")[0]
    assert not any(m.stream for m in model.modules() if isinstance(m, L.Linear))

    monkeypatch.setattr(gpt_model, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(gpt_model, "HEAD_TRANSPOSE_MIN", 0)  # the head would otherwise use a (C, V) copy
    calls = _counting(monkeypatch)
    streamed = complete(model, prompts, cfg, lambda t: "")[0]
    assert all(m.stream for m in model.modules() if isinstance(m, L.Linear))
    assert streamed.token_ids == plain.token_ids
    assert [t.logprob for t in streamed.logprobs] == pytest.approx([t.logprob for t in plain.logprobs], abs=1e-4)
    # every one-token step after the prefill (4 linears per layer and the head), and the prefill's head
    assert len(calls) == (cfg.max_new_tokens - 1) * (2 * 4 + 1) + 1
    compiled = complete(model, prompts, GenerationConfig(**{**cfg.__dict__, "compile": True}), lambda t: "")[0]
    assert compiled.token_ids == plain.token_ids

    calls.clear()
    complete(model, [prompts[0], [9, 9]], cfg, lambda t: "")
    assert calls == []


def test_a_kernel_that_cannot_build_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch):
    def broken(*args: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(L, "_compiled", {True: broken, False: broken})
    monkeypatch.setattr(L, "_broken", False)
    w, b, x = torch.randn(6, 4), torch.randn(6), torch.randn(1, 4)
    with pytest.warns(UserWarning, match="streaming matrix-vector kernel unavailable"):
        out = L.streaming_linear(x, w, b)
    torch.testing.assert_close(out, F.linear(x, w, b))
    assert L._broken
    torch.testing.assert_close(L.streaming_linear(x, w, None), F.linear(x, w))  # no second warning needed
