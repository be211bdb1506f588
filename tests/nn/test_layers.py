import math

import pytest
import torch

from genloom.nn import Attention, alibi_bias, alibi_slopes, apply_rope, make_mlp, make_norm, rope_cache
from genloom.nn.positional import SinusoidalPositions


def test_rope_scores_depend_only_on_relative_position():
    cos, sin = rope_cache(64, 16)
    q, k = torch.randn(16), torch.randn(16)

    def score(i: int, j: int) -> float:
        qi = apply_rope(q.view(1, 1, 1, 16), cos[i : i + 1], sin[i : i + 1])
        kj = apply_rope(k.view(1, 1, 1, 16), cos[j : j + 1], sin[j : j + 1])
        return float((qi * kj).sum())

    assert score(5, 2) == pytest.approx(score(40, 37), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    rotated = apply_rope(q.view(1, 1, 1, 16), cos[7:8], sin[7:8])
    assert float(rotated.norm()) == pytest.approx(float(q.norm()), rel=1e-5)  # a rotation keeps length


def test_alibi_slopes_follow_the_paper():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2 ** -(i + 1) for i in range(8)], dtype=torch.float32))
    assert len(alibi_slopes(6)) == 6 and torch.all(alibi_slopes(6) > 0)
    bias = alibi_bias(4, 5)
    assert bias.shape == (1, 4, 5, 5)
    assert torch.isinf(bias[0, :, 0, 1:]).all() and bias[0, 0, 4, 0] == pytest.approx(-4 * 2**-2)


def test_sinusoidal_positions_match_the_formula():
    pe = SinusoidalPositions(10, 8)(torch.arange(10))
    assert pe[3, 2] == pytest.approx(math.sin(3 / 10000 ** (2 / 8)), abs=1e-6)
    assert pe[3, 3] == pytest.approx(math.cos(3 / 10000 ** (2 / 8)), abs=1e-6)


@pytest.mark.parametrize("n_kv_head", [None, 2, 1])
def test_attention_is_causal_and_supports_gqa(n_kv_head):
    torch.manual_seed(0)
    attn = Attention(32, 4, n_kv_head).eval()
    x = torch.randn(2, 10, 32)
    y = attn(x)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(2, 4, 32)  # change only the future of position 5
    assert torch.allclose(attn(x2)[:, :6], y[:, :6], atol=1e-6)
    assert not torch.allclose(attn(x2)[:, 6:], y[:, 6:])


def test_gqa_equals_full_attention_with_repeated_kv_heads():
    torch.manual_seed(0)
    gqa = Attention(32, 4, n_kv_head=2).eval()
    full = Attention(32, 4).eval()
    hs = 8
    wq, wk, wv = gqa.qkv.weight.split([4 * hs, 2 * hs, 2 * hs])
    rep = lambda w: w.view(2, hs, 32).repeat_interleave(2, dim=0).reshape(4 * hs, 32)  # noqa: E731
    with torch.no_grad():
        full.qkv.weight.copy_(torch.cat([wq, rep(wk), rep(wv)]))
        full.proj.weight.copy_(gqa.proj.weight)
    x = torch.randn(2, 7, 32)
    assert torch.allclose(gqa(x), full(x), atol=1e-6)


def test_bidirectional_attention_sees_the_future():
    attn = Attention(16, 2, causal=False).eval()
    x = torch.randn(1, 5, 16)
    x2 = x.clone()
    x2[:, 4] += 1
    assert not torch.allclose(attn(x)[:, 0], attn(x2)[:, 0])


def test_norms_and_mlps():
    x = torch.randn(3, 5, 24) * 4 + 2
    rms = make_norm("rmsnorm", 24)(x)
    assert torch.allclose(rms.pow(2).mean(-1), torch.ones(3, 5), atol=1e-3)
    ln = make_norm("layernorm", 24)(x)
    assert torch.allclose(ln.mean(-1), torch.zeros(3, 5), atol=1e-5)
    swiglu = make_mlp("swiglu", 24, None)
    gelu = make_mlp("gelu", 24, None)
    assert swiglu.gate.out_features == 64 and gelu.up.out_features == 96
    assert swiglu(x).shape == gelu(x).shape == x.shape
