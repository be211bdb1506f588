import itertools

import pytest
import torch

from genloom.models import FAMILIES
from genloom.models.gpt import GPT, PRESETS, GPTConfig

VARIANTS = list(
    itertools.product(["learned", "sinusoidal", "rope", "alibi"], ["gelu", "swiglu"], ["layernorm", "rmsnorm"])
)


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32, **kw))


@pytest.mark.parametrize(("pos", "mlp", "norm"), VARIANTS)
def test_smoke_every_variant(pos, mlp, norm):
    model = tiny(pos_encoding=pos, mlp=mlp, norm=norm)
    x = torch.randint(0, 50, (3, 16))
    loss, _ = model.loss((x, torch.roll(x, -1, 1)))
    assert (
        torch.isfinite(loss.detach()) and abs(loss.detach().item() - torch.log(torch.tensor(50.0))) < 0.5
    )  # ≈ uniform at init
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope", "alibi"])
def test_future_tokens_never_change_earlier_logits(pos):
    model = tiny(pos_encoding=pos).eval()
    x = torch.randint(0, 50, (2, 16))
    x2 = x.clone()
    x2[:, 9:] = (x2[:, 9:] + 1) % 50
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :9], model(x2)[:, :9], atol=1e-5)
        assert not torch.allclose(model(x)[:, 9:], model(x2)[:, 9:])


def test_weight_tying_and_parameter_count():
    tied, untied = tiny(), tiny(tie_weights=False)
    assert tied.lm_head.weight.data_ptr() == tied.wte.weight.data_ptr()
    C, V, L, T = 32, 50, 2, 16
    per_block = 2 * C + (C * 3 * C + C * C) + 2 * C * 4 * C  # norms, attention, MLP (no biases)
    assert tied.num_params(non_embedding=False) == V * C + T * C + L * per_block + C
    assert tied.num_params() == V * C + L * per_block + C
    assert untied.num_params() == tied.num_params() + V * C
    assert tied.flops_per_token() == 6 * tied.num_params() + 12 * L * T * C


def test_gpt2_init_scales_residual_projections():
    model = GPT(GPTConfig(n_layer=8, n_embd=256, n_head=4, vocab_size=100))
    std_proj = model.blocks[0].attn.proj.weight.std().item()
    std_qkv = model.blocks[0].attn.qkv.weight.std().item()
    assert std_qkv == pytest.approx(0.02, rel=0.05)
    assert std_proj == pytest.approx(0.02 / 4, rel=0.05)  # 0.02 / sqrt(2 · 8)


def test_too_long_input_and_bad_configs_are_refused():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        GPTConfig(n_head=4, n_kv_head=3)


def test_debug_preset_exists_for_every_family_and_presets_build():
    for family in FAMILIES.values():
        assert "debug" in family.presets
    for preset in PRESETS.values():
        GPTConfig(**preset.get("model", {}))
