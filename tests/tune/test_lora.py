"""LoRA: the merge is exactly W + B·A·alpha/r, merged equals unmerged, only adapters train, and the
adapters of one base run are refused by another."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import genloom as gl
from genloom.models.gpt import GPT, GPTConfig
from genloom.tune.lora import LoRAConfig, LoRAFunction, LoRALinear, apply_lora, merge_lora
from tests.tune.conftest import FAST


def _gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16))


def _train_adapters(model: GPT, steps: int = 5) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, 40, (4, 16), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        loss, _ = model.loss((x[:, :-1], x[:, 1:]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_merge_is_base_plus_scaled_low_rank_update_and_base_is_untouched():
    model = _gpt()
    base = copy.deepcopy(model).state_dict()
    cfg = LoRAConfig(target="attn|mlp", r=4, alpha=8.0)
    names = apply_lora(model, cfg)
    assert names and all(("attn" in n or "mlp" in n) for n in names)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    _train_adapters(model)
    adapters = {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    for name, module in adapters.items():  # the frozen weights did not move during training
        assert torch.equal(module.base.weight, base[f"{name}.weight"])
        assert module.lora_B.abs().sum() > 0  # ... but the adapters did
    expected = {
        name: base[f"{name}.weight"] + (m.lora_B @ m.lora_A).detach() * (cfg.alpha / cfg.r)
        for name, m in adapters.items()
    }
    x = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(2))
    model.eval()
    unmerged = model(x)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    merged_state = model.state_dict()
    for name, w in expected.items():
        torch.testing.assert_close(merged_state[f"{name}.weight"], w, atol=1e-6, rtol=0)
    torch.testing.assert_close(model(x), unmerged, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_lora_function_has_the_gradients_of_its_formula(bias: bool):
    """LoRAFunction's hand-written backward against numerical gradients (float64), and its output and
    gradients against the same formula written with autograd ops."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(7, 6, dtype=torch.float64, generator=g)
    b = torch.randn(7, dtype=torch.float64, generator=g) if bias else None
    a = torch.randn(3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    bb = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a, bb: LoRAFunction.apply(x, w, b, a, bb, 0.5), (x, a, bb))
    fused = LoRAFunction.apply(x, w, b, a, bb, 0.5)
    plain = x @ w.t() + (0 if b is None else b) + (x @ a.t() @ bb.t()) * 0.5
    torch.testing.assert_close(fused, plain)
    seed = torch.randn(fused.shape, dtype=torch.float64, generator=g)
    got = torch.autograd.grad((fused * seed).sum(), (x, a, bb))
    want = torch.autograd.grad((plain * seed).sum(), (x, a, bb))
    for gg, ww in zip(got, want, strict=True):
        torch.testing.assert_close(gg, ww)
    # an input that needs no gradient (the first block of a frozen model) gets none computed
    (ga,) = torch.autograd.grad(LoRAFunction.apply(x.detach(), w, b, a, bb, 0.5).sum(), (a,))
    assert ga.shape == a.shape


def test_adapter_dropout_trains_through_the_composed_path_and_is_identity_in_eval():
    torch.manual_seed(0)
    layer = LoRALinear(torch.nn.Linear(6, 4), r=2, alpha=4.0, dropout=0.5)
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 6)
    layer.eval()
    expected = layer.base(x) + x @ layer.lora_A.t() @ layer.lora_B.t() * 2.0
    torch.testing.assert_close(layer(x), expected)
    layer.train()
    outs = {tuple(layer(x).flatten().tolist()) for _ in range(4)}
    assert len(outs) > 1  # the dropout mask changes the update from call to call


def test_target_matching_nothing_is_an_error():
    with pytest.raises(gl.UserError, match=r"lora.target 'nope' matches no Linear layer"):
        apply_lora(_gpt(), LoRAConfig(target="nope"))


def test_tied_output_projection_is_refused():
    with pytest.raises(gl.UserError, match="shares its weight with the embedding"):
        apply_lora(_gpt(), LoRAConfig(target="lm_head"))


def test_lora_run_saves_adapters_that_load_onto_the_base_and_refuse_another(
    tmp_path: Path, trained_run: Path, sft_run: Path, tune_data: dict[str, Path]
):
    out = tmp_path / "lora"
    result = gl.tune("lora", trained_run, data=tune_data["sft"], out=out, sets=[*FAST, "lora.r=2", "lora.target=qkv"])
    assert (out / "adapters.safetensors").exists() and (out / "adapters.json").exists()
    assert "adapters" in (out / "card.md").read_text()
    assert result.lineage["method"] == "lora"
    tuned = gl.load(out)  # the merged weights: a plain servable run
    base = gl.load(trained_run).apply_adapters(out)  # base + adapters, unmerged
    prompt = tuned.chat_prompt([{"role": "user", "content": "say to"}])
    ids = torch.tensor([tuned.tokenizer.encode(prompt)])
    assert base.tokenizer.encode(prompt) == ids[0].tolist()
    with torch.no_grad():
        unmerged = base.model(ids)
        torch.testing.assert_close(unmerged, tuned.model(ids), atol=1e-5, rtol=1e-5)
        base.merge_adapters()
        torch.testing.assert_close(base.model(ids), unmerged, atol=1e-5, rtol=1e-5)
    with pytest.raises(gl.UserError, match="trained on base run"):
        gl.load(sft_run).apply_adapters(out)
