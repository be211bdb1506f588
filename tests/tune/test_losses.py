"""The tune objectives against hand-computed values, and DPO against trl's own implementation."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from genloom.tune.losses import bradley_terry_loss, dpo_loss, gae, ppo_policy_loss, ppo_value_loss


def _logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_dpo_loss_matches_hand_computation():
    pc, pr, rc, rr = torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-4.0]), torch.tensor([-4.5])
    beta, eps = 0.5, 0.1
    logits = (-3.0 - -5.0) - (-4.0 - -4.5)  # 1.5
    expected = -(1 - eps) * _logsig(beta * logits) - eps * _logsig(-beta * logits)
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta, eps)
    assert losses.item() == pytest.approx(expected, abs=1e-6)
    assert chosen.item() == pytest.approx(0.5 * (-3.0 + 4.0))
    assert rejected.item() == pytest.approx(0.5 * (-5.0 + 4.5))
    plain, _, _ = dpo_loss(pc, pr, rc, rr, beta)
    assert plain.item() == pytest.approx(-_logsig(0.75), abs=1e-6)


def test_bradley_terry_loss_matches_hand_computation():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx(-(_logsig(1.0) + _logsig(-1.0)) / 2, abs=1e-6)


def test_ppo_clipped_objective_matches_hand_computation():
    # three tokens: ratio 1.5 with A>0 (clipped at 1.2), ratio 0.5 with A<0 (clipped at 0.8), ratio 1.0
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0, 7.0]]))
    old = torch.zeros(1, 4)
    adv = torch.tensor([[2.0, -1.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])  # the last token is padding and must not count
    loss, clip_fraction = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    # per token max(-A·r, -A·clip(r)): max(-3, -2.4) = -2.4; max(0.5, 0.8) = 0.8; -3
    assert loss.item() == pytest.approx((-2.4 + 0.8 - 3.0) / 3, abs=1e-6)
    assert clip_fraction.item() == pytest.approx(2 / 3)


def test_ppo_value_loss_matches_hand_computation():
    values, old, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[2.0, -1.0]])
    loss = ppo_value_loss(values, old, returns, torch.ones(1, 2, dtype=torch.bool), clip=0.2)
    # token 0: unclipped (1-2)² = 1, clipped 0.7 → (0.7-2)² = 1.69; token 1: (0+1)² = 1 both
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.0) / 2, abs=1e-6)


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.25, 9.0]])
    mask = torch.tensor([[True, True, False]])  # two real tokens; the third is padding
    gamma, lam = 0.9, 0.8
    d1 = 1.0 + gamma * 0.0 - 0.25  # last real token: the episode ends
    d0 = 0.0 + gamma * 0.25 - 0.5
    adv, ret = gae(rewards, values, mask, gamma, lam)
    assert adv[0, 1].item() == pytest.approx(d1)
    assert adv[0, 0].item() == pytest.approx(d0 + gamma * lam * d1)
    assert adv[0, 2].item() == 0.0 and ret[0, 2].item() == 0.0
    assert ret[0, 0].item() == pytest.approx(d0 + gamma * lam * d1 + 0.5)


def _trl_dpo(loss_type: str, beta: float, label_smoothing: float, logps: dict[str, torch.Tensor]) -> dict[str, float]:
    """Run trl's `DPOTrainer._compute_loss` on given per-token log-probabilities: the model's forward is
    replaced by one returning them, everything after it is trl's code."""
    from trl import DPOTrainer

    B, T = logps["chosen"].shape
    per_token = torch.cat([logps["chosen"], logps["rejected"]])  # (2B, T): trl's [chosen; rejected] batch
    zeros = torch.zeros(2 * B, T + 1)

    class Model:
        training = True

        def __call__(self, **kwargs: object) -> SimpleNamespace:
            return SimpleNamespace(
                log_probs=per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool(), aux_loss=None
            )

    trainer = object.__new__(DPOTrainer)
    identity = SimpleNamespace(device="cpu", gather_for_metrics=lambda x: x, gather=lambda x: x)
    model = Model()
    trainer.__dict__.update(
        model=model,
        accelerator=identity,
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(2 * B, T + 1, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, T + 1, dtype=torch.long),
        "completion_mask": torch.ones(2 * B, T + 1, dtype=torch.long),
        "ref_chosen_logps": logps["ref_chosen"],
        "ref_rejected_logps": logps["ref_rejected"],
    }
    loss = trainer._compute_loss(model, inputs, return_outputs=False)
    metrics = trainer._metrics["train"]
    return {"loss": float(loss), "margin": metrics["rewards/margins"][-1], "chosen": metrics["rewards/chosen"][-1]}


@pytest.mark.parametrize(("beta", "label_smoothing"), [(0.1, 0.0), (0.5, 0.0), (0.3, 0.2)])
def test_dpo_loss_matches_trl(beta: float, label_smoothing: float):
    g = torch.Generator().manual_seed(0)
    B, T = 4, 5
    logps = {k: -torch.rand(B, T, generator=g) * 3 for k in ("chosen", "rejected")}
    logps |= {k: -torch.rand(B, generator=g) * 15 for k in ("ref_chosen", "ref_rejected")}
    policy_c, policy_r = logps["chosen"].sum(1), logps["rejected"].sum(1)
    losses, chosen, rejected = dpo_loss(
        policy_c, policy_r, logps["ref_chosen"], logps["ref_rejected"], beta, label_smoothing
    )
    if label_smoothing == 0.0:
        ref = _trl_dpo("sigmoid", beta, 0.0, logps)
        assert losses.mean().item() == pytest.approx(ref["loss"], abs=1e-6)
        assert (chosen - rejected).mean().item() == pytest.approx(ref["margin"], abs=1e-6)
        assert chosen.mean().item() == pytest.approx(ref["chosen"], abs=1e-6)
    else:  # trl 1.x has the conservative (label-smoothed) form in its "aot" loss, which sorts over the
        # batch; with one pair per call the sort is the identity and it is exactly cDPO
        for i in range(B):
            one = {k: v[i : i + 1] for k, v in logps.items()}
            ref = _trl_dpo("aot", beta, label_smoothing, one)
            assert losses[i].item() == pytest.approx(ref["loss"], abs=1e-6)
