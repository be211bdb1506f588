"""The objectives of fine-tuning and alignment, as plain functions of tensors.

- `bradley_terry_loss`: reward model on preference pairs, -log σ(r_chosen - r_rejected)
  (Bradley & Terry 1952; Ouyang et al. 2022, eq. 1).
- `dpo_loss`: Direct Preference Optimization (Rafailov et al. 2023, eq. 7), with conservative label
  smoothing ε (Mitchell 2023, "cDPO"): the preference label is trusted with probability 1 - ε.
- `gae`: generalized advantage estimation (Schulman et al. 2016, eq. 16).
- `ppo_policy_loss`, `ppo_value_loss`: the clipped surrogate objective and clipped value loss of PPO
  (Schulman et al. 2017, eq. 7; the value clipping of the OpenAI baselines and of Ziegler et al. 2019).
- `token_logprobs`: log p(token) of each target under the logits.

All take masks so padded positions count for nothing; tests/tune/test_losses.py checks each against
hand-computed values and `dpo_loss` against trl's implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over positions where `mask` is true (at least one must be)."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Args: logits (B, T, V); targets (B, T) ids. Returns log p(targets) (B, T)."""
    return torch.gather(logits.float().log_softmax(-1), 2, targets.clamp(min=0)[..., None])[..., 0]


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Args: scalar rewards (B,) of the chosen and rejected answers. Returns the mean -log σ(r_c - r_r)."""
    return -F.logsigmoid(chosen - rejected).mean()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO on sequence log-probabilities (B,) (sums over the answer's tokens).

    Returns (per-pair losses (B,), chosen rewards (B,), rejected rewards (B,)); the implicit reward of an
    answer is β·(log π(y|x) - log π_ref(y|x)) (eq. 5)."""
    logits = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)  # (B,)
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    chosen_rewards = beta * (policy_chosen - reference_chosen).detach()
    rejected_rewards = beta * (policy_rejected - reference_rejected).detach()
    return losses, chosen_rewards, rejected_rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for per-token rewards.

    Args: rewards, values (B, T) for each generated token; mask (B, T) true on real (not padding)
    tokens, which form a prefix of each row. The value after a row's last token is 0 (the episode ends).
    Returns (advantages, returns), each (B, T), zero on padding."""
    mask = mask.to(rewards.dtype)
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # TD error, eq. (10)
        running = (delta + gamma * lam * running) * mask[:, t]  # eq. (16), reset on padding
        advantages[:, t] = running
    returns = (advantages + values) * mask
    return advantages, returns


def ppo_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate objective, as a loss to minimize: mean over tokens of
    max(-A·ρ, -A·clip(ρ, 1-ε, 1+ε)) with ρ = π/π_old. Returns (loss, fraction of tokens clipped)."""
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction.detach()


def ppo_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """½·mean over tokens of max((V - R)², (V_clipped - R)²), V_clipped = V_old + clip(V - V_old, ±clip)."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)
