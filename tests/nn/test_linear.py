"""The streaming product of `genloom.nn.Linear`: the same numbers as `F.linear`, used only where it should
be (at most STREAM_MAX_ROWS rows, no gradient, `stream` on), and a clean fallback when it cannot build."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import genloom.models.gpt.model as gpt_model
import genloom.nn.linear as L
from genloom.generation import GenerationConfig, complete
from genloom.models.gpt import GPT, GPTConfig


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (1, 1, 48), (8, 1, 48), (2, 3, 48)])
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


def test_linear_streams_only_few_rows_without_gradient(monkeypatch: pytest.MonkeyPatch):
    calls = _counting(monkeypatch)
    layer = L.Linear(16, 8)
    x1, x4, many = torch.randn(1, 1, 16), torch.randn(4, 1, 16), torch.randn(1, L.STREAM_MAX_ROWS + 1, 16)
    layer(x1)  # stream off: plain F.linear
    layer.stream = True
    layer(x1)  # gradient enabled (training): plain
    with torch.no_grad():
        layer(many)  # more rows than STREAM_MAX_ROWS: plain
        out1 = layer(x1)  # streamed
        out4 = layer(x4)  # streamed
    assert calls == [16, 16]
    torch.testing.assert_close(out1, F.linear(x1, layer.weight, layer.bias))
    torch.testing.assert_close(out4, F.linear(x4, layer.weight, layer.bias))


def test_large_model_decodes_the_same_tokens_with_streaming(monkeypatch: pytest.MonkeyPatch):
    """A model over the size threshold (lowered here) streams its decode steps and produces the same
    greedy tokens and nearly the same logits as with streaming off, at batch 1 and batch 2."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=300, block_size=64, n_layer=2, n_head=4, n_embd=64, bias=True)).eval()
    prompts = [[5, 17, 42, 7], [9, 9]]
    cfg = GenerationConfig(max_new_tokens=24, temperature=0, stop_at_eos=False, logprobs=True)
    plain = complete(model, prompts[:1], cfg, lambda t: "")[0]
    plain2 = complete(model, prompts, cfg, lambda t: "")
    assert not any(m.stream for m in model.modules() if isinstance(m, L.Linear))

    monkeypatch.setattr(gpt_model, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(gpt_model, "streaming_pays", lambda weights: True)  # whatever this machine measures
    monkeypatch.setattr(gpt_model, "HEAD_TRANSPOSE_MIN", 0)  # the head would otherwise use a (C, V) copy
    calls = _counting(monkeypatch)
    streamed = complete(model, prompts[:1], cfg, lambda t: "")[0]
    assert all(m.stream for m in model.modules() if isinstance(m, L.Linear))
    assert streamed.token_ids == plain.token_ids
    assert [t.logprob for t in streamed.logprobs] == pytest.approx([t.logprob for t in plain.logprobs], abs=1e-4)
    # every step streams, the 4-token prefill too: 4 linears per layer, and the head on the last position
    assert len(calls) == cfg.max_new_tokens * (2 * 4 + 1)
    compiled = complete(model, prompts[:1], GenerationConfig(**{**cfg.__dict__, "compile": True}), lambda t: "")[0]
    assert compiled.token_ids == plain.token_ids

    calls.clear()
    streamed2 = complete(model, prompts, cfg, lambda t: "")
    assert [c.token_ids for c in streamed2] == [c.token_ids for c in plain2]
    assert len(calls) >= (cfg.max_new_tokens - 1) * (2 * 4 + 1)  # padded batch of 2: its steps stream too


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


def test_one_compiled_kernel_serves_every_layer_shape():
    """Weights are passed detached, so dynamo's static shapes for parameters do not force a compilation
    per layer shape (which would hit its recompile limit in a process serving several models)."""
    from torch._dynamo.utils import counters

    with torch.no_grad():
        L.streaming_linear(torch.randn(1, 5), torch.nn.Parameter(torch.randn(6, 5)), torch.nn.Parameter(torch.randn(6)))
        L.streaming_linear(torch.randn(3, 5), torch.nn.Parameter(torch.randn(6, 5)), torch.nn.Parameter(torch.randn(6)))
        before = counters["frames"]["total"]
        for out_f, in_f in [(20, 12), (36, 12), (12, 36), (50, 20), (7, 9), (64, 64)]:
            for rows in (1, 3):
                w, b = torch.nn.Parameter(torch.randn(out_f, in_f)), torch.nn.Parameter(torch.randn(out_f))
                x = torch.randn(rows, in_f)
                torch.testing.assert_close(L.streaming_linear(x, w, b), F.linear(x, w, b), atol=1e-5, rtol=1e-5)
    assert counters["frames"]["total"] == before  # no new compilation


def test_the_kernel_run_eagerly_is_blas_not_a_materialized_product():
    w, x = torch.randn(7, 5), torch.randn(3, 5)
    torch.testing.assert_close(L._rowdot(x, w), F.linear(x, w))


def test_streaming_is_chosen_per_shape_by_measuring_once(monkeypatch: pytest.MonkeyPatch):
    """A large model asks, for each shape of its weights, whether streaming beats BLAS here (measured once per
    shape in the process) and streams exactly the shapes where it does."""
    measured: list[tuple[int, ...]] = []

    def measure(weights: list[torch.Tensor]) -> bool:
        measured.append(tuple(weights[0].shape))
        return weights[0].shape[0] == 300  # pretend only the (V, C) output projection gains

    monkeypatch.setattr(L, "_measure_streaming", measure)
    monkeypatch.setattr(L, "_pays", {})
    monkeypatch.setattr(gpt_model, "STREAM_MIN_BYTES", 0)
    model = GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=4, n_embd=64)).eval()
    model.new_cache(1)
    model.new_cache(1)  # decided again from the cache of measurements: nothing measured twice
    assert sorted(measured) == sorted({tuple(m.weight.shape) for m in model.modules() if isinstance(m, L.Linear)})
    streaming = {name for name, m in model.named_modules() if isinstance(m, L.Linear) and m.stream}
    assert streaming == {"lm_head"}


def test_streaming_pays_returns_a_cached_measurement():
    weights = [torch.randn(64, 32) for _ in range(3)]
    first = L.streaming_pays(weights)
    assert isinstance(first, bool) and L.streaming_pays(weights) is first
