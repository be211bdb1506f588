"""RLHF with PPO (Ziegler et al. 2019; Stiennon et al. 2020; Ouyang et al. 2022 §3.5).

One PPO step (`PPOObjective.train_step`, the Trainer's seam for families that own their update):
1. Rollouts: the policy samples a response to each prompt of the batch with the generation engine.
2. Scores: the reward of each whole response — a reward-model run, a named programmatic reward (the
   `REWARDS` table), or any Python function `(prompts, responses) -> list[float]` given to the API.
3. Per-token rewards: -β·KL at every response token, where KL is log π(y_t) - log π_ref(y_t) against
   the frozen reference (the starting weights), plus the score at the last token (Ziegler et al. eq. 2).
   β is fixed, or adapted toward `target_kl` (Ziegler et al. §2.2: β ← β·(1 + clip(KL/target - 1, ±0.2)·B/H)).
4. GAE advantages (whitened) and returns from a value head on the policy's hidden states (detached:
   the critic does not train the policy's trunk).
5. `ppo_epochs` passes over the rollouts in minibatches: clipped policy loss + `vf_coef` × clipped value
   loss, one optimizer step per minibatch.

The Trainer still sets the learning rate, counts steps, logs, checkpoints (policy, value head and the
current β, which is a buffer) and resumes. Its evaluation calls `loss`, which here is minus the mean
score of greedy responses to a batch of held-out prompts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from genloom.chat import ChatTemplate, stop_sequences
from genloom.data.pii import parse_kinds
from genloom.generation import GenerationConfig, complete
from genloom.models.gpt import GPT
from genloom.tokenizers import Tokenizer
from genloom.train import TrainConfig
from genloom.tune.lora import LoRAConfig
from genloom.tune.losses import gae, masked_mean, ppo_policy_loss, ppo_value_loss, token_logprobs
from genloom.tune.preference import render_prompt
from genloom.tune.sft import default_train

RewardFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]

POSITIVE = frozenset(
    [
        "good",
        "great",
        "happy",
        "love",
        "wonderful",
        "excellent",
        "nice",
        "kind",
        "joy",
        "glad",
        "best",
        "fine",
        "sweet",
        "fair",
        "gentle",
    ]
)
NEGATIVE = frozenset(
    [
        "bad",
        "sad",
        "hate",
        "terrible",
        "awful",
        "poor",
        "evil",
        "angry",
        "worst",
        "wrong",
        "cruel",
        "foul",
        "ill",
        "death",
    ]
)


def ends_with_question(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1 when the response's last non-space character is '?', else 0."""
    return [1.0 if r.rstrip().endswith("?") else 0.0 for r in responses]


def positive_words(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Positive minus negative words of a small fixed list, per response (clipped to [-3, 3])."""
    scores = []
    for r in responses:
        words = re.findall(r"[a-z]+", r.lower())
        scores.append(float(max(-3, min(3, sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)))))
    return scores


def shorter(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1 for an empty answer down to 0 at 100 characters or more."""
    return [1.0 - min(len(r.strip()), 100) / 100 for r in responses]


REWARDS: dict[str, RewardFn] = {
    "ends-with-question": ends_with_question,
    "positive-words": positive_words,
    "shorter": shorter,
}  # named programmatic rewards (`--reward NAME`)


@dataclass
class PPOConfig:
    max_new_tokens: int = 32  # response length limit of a rollout
    temperature: float = 1.0  # sampling temperature of rollouts (1: the policy's own distribution)
    kl_coef: float = 0.05  # β, the per-token KL penalty coefficient (initial value when adaptive)
    adaptive_kl: bool = False  # adapt β so the KL of a rollout tracks target_kl (Ziegler et al. 2019 §2.2)
    target_kl: float = 2.0  # nats per response, for the adaptive controller
    kl_horizon: int = 10000  # the controller's horizon H in rollouts
    gamma: float = 1.0  # discount of GAE (1: episodic, the score is the only long-term signal)
    lam: float = 0.95  # λ of GAE
    clip: float = 0.2  # ε of the clipped policy objective
    value_clip: float = 0.2  # clip range of the value loss
    vf_coef: float = 0.5  # weight of the value loss
    ppo_epochs: int = 2  # passes over each batch of rollouts
    minibatch_size: int = 8  # rollouts per optimizer step inside a PPO pass
    val_fraction: float = 0.1  # share of prompts (by hash) held out for evaluation
    use_lora: bool = False  # train LoRA adapters on the policy instead of every weight
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    scrub_pii: bool | tuple[str, ...] = False  # personal data in the JSONL → placeholders (genloom/data/pii.py)
    train: TrainConfig = field(default_factory=lambda: default_train(lr=3e-5, min_lr=3e-6, max_iters=50, eval_iters=1))

    def __post_init__(self) -> None:
        parse_kinds(self.scrub_pii, "scrub_pii")
        for name in ("max_new_tokens", "ppo_epochs", "minibatch_size", "kl_horizon"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("kl_coef", "clip", "value_clip", "vf_coef", "target_kl", "temperature"):
            if getattr(self, name) < 0 or (name in ("clip", "target_kl", "temperature") and getattr(self, name) == 0):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"gamma and lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


class PromptData:
    """Held prompts (already rendered for the policy); a batch is a list of their indices."""

    def __init__(self, train: list[str], val: list[str]) -> None:
        self.splits = {"train": train, "val": val}
        self.block_size = 1
        self.stats = {"train_prompts": len(train), "val_prompts": len(val)}

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> list[str]:
        prompts = self.splits[split]
        return [prompts[int(i)] for i in torch.randint(len(prompts), (batch_size,), generator=generator)]


@dataclass
class Rollouts:
    """A batch of sampled responses, aligned on response tokens: every tensor is (B, R)."""

    seq: torch.Tensor  # (B, L) prompt + response ids, right-padded
    index: torch.Tensor  # (B, R) position in `seq` that predicts each response token
    tokens: torch.Tensor  # (B, R) response token ids
    mask: torch.Tensor  # (B, R) real response tokens
    scores: torch.Tensor  # (B,) reward of each whole response
    texts: list[str]


class PPOObjective(nn.Module):
    """Policy + value head; the frozen reference and the reward live outside the saved weights."""

    kl_coef: torch.Tensor

    def __init__(
        self,
        policy: GPT,
        reference: GPT,
        reward: RewardFn,
        tokenizer: Tokenizer,
        template: ChatTemplate | None,
        cfg: PPOConfig,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = nn.Linear(policy.config.n_embd, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.register_buffer("kl_coef", torch.tensor(cfg.kl_coef))
        reference.requires_grad_(False)
        self.frozen: dict[str, Any] = {"reference": reference.eval()}  # not a submodule: never saved or trained
        self.reward = reward
        self.tokenizer = tokenizer
        self.template = template
        self.cfg = cfg
        self.stats: dict[str, float] = {}

    # -- rollouts ------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[str], greedy: bool = False, seed: int | None = None) -> Rollouts:
        cfg = self.cfg
        gen = GenerationConfig(
            max_new_tokens=cfg.max_new_tokens,
            temperature=0.0 if greedy else cfg.temperature,
            stop=stop_sequences(self.template),
            seed=seed,
            context_overflow="truncate",
        )
        was_training = self.policy.training
        self.policy.eval()
        prompt_ids = [self.tokenizer.encode(p) for p in prompts]
        block = self.policy.config.block_size
        prompt_ids = [p[-(block - cfg.max_new_tokens) :] for p in prompt_ids]  # room for the response
        done = complete(self.policy, prompt_ids, gen, self.tokenizer.decode, self.tokenizer.eos_id)
        self.policy.train(was_training)
        texts = [c.text for c in done]
        scores = torch.tensor([float(s) for s in self.reward(prompts, texts)])
        R = max(1, max(len(c.token_ids) for c in done))
        L = max(len(p) + len(c.token_ids) for p, c in zip(prompt_ids, done, strict=True))
        seq = torch.zeros(len(done), L, dtype=torch.long)
        index = torch.zeros(len(done), R, dtype=torch.long)
        tokens = torch.zeros(len(done), R, dtype=torch.long)
        mask = torch.zeros(len(done), R, dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prompt_ids, done, strict=True)):
            ids = p + c.token_ids
            seq[b, : len(ids)] = torch.tensor(ids)
            n = len(c.token_ids)
            index[b] = torch.arange(len(p) - 1, len(p) - 1 + R).clamp(max=L - 2)
            if n:
                tokens[b, :n] = torch.tensor(c.token_ids)
                mask[b, :n] = True
        return Rollouts(seq, index, tokens, mask, scores, texts)

    def evaluate_policy(self, seq: torch.Tensor, index: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Log-probabilities and values of the response tokens, each (B, R)."""
        hidden = self.policy.hidden_states(seq[:, :-1])  # (B, L-1, C)
        h = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))  # (B, R, C)
        logits = self.policy.lm_head(h)  # (B, R, V)
        # The value head reads the policy's features without back-propagating into them: on a small LM
        # the critic's gradient (returns in reward-model units) swamped the policy's and wrecked it.
        values = self.value_head(h.detach())[..., 0]  # (B, R)
        return token_logprobs(logits, tokens), values

    @torch.no_grad()
    def reference_logprobs(self, r: Rollouts) -> torch.Tensor:
        ref = self.frozen["reference"]
        logits = ref(r.seq[:, :-1])  # (B, L-1, V)
        picked = logits.gather(1, r.index[..., None].expand(-1, -1, logits.shape[-1]))  # (B, R, V)
        return token_logprobs(picked, r.tokens)

    # -- the update ----------------------------------------------------------------------------
    def train_step(self, prompts: list[str], optimizer: torch.optim.Optimizer) -> tuple[float, dict[str, float]]:
        cfg = self.cfg
        r = self.rollout(prompts)
        with torch.no_grad():
            old_logprobs, old_values = self.evaluate_policy(r.seq, r.index, r.tokens)
            ref_logprobs = self.reference_logprobs(r)
            kl = (old_logprobs - ref_logprobs) * r.mask  # (B, R) per-token KL estimate
            rewards = -self.kl_coef * kl
            last = (r.mask.long().sum(1) - 1).clamp(min=0)  # (B,) index of each response's last token
            has_tokens = r.mask.any(1)
            rewards[torch.arange(len(last))[has_tokens], last[has_tokens]] += r.scores[has_tokens]
            advantages, returns = gae(rewards, old_values, r.mask, cfg.gamma, cfg.lam)
            mean, std = (
                masked_mean(advantages, r.mask),
                masked_mean((advantages - masked_mean(advantages, r.mask)) ** 2, r.mask).sqrt(),
            )
            advantages = (advantages - mean) / (std + 1e-8) * r.mask  # whitened (as in Ziegler et al.'s code)
        losses, clipped = [], []
        B = len(prompts)
        for _ in range(cfg.ppo_epochs):
            for start in range(0, B, cfg.minibatch_size):
                s = slice(start, start + cfg.minibatch_size)
                if not bool(r.mask[s].any()):
                    continue
                logprobs, values = self.evaluate_policy(r.seq[s], r.index[s], r.tokens[s])
                pg_loss, clip_frac = ppo_policy_loss(logprobs, old_logprobs[s], advantages[s], r.mask[s], cfg.clip)
                vf_loss = ppo_value_loss(values, old_values[s], returns[s], r.mask[s], cfg.value_clip)
                loss = pg_loss + cfg.vf_coef * vf_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([p for p in self.parameters() if p.requires_grad], 1.0)
                optimizer.step()
                losses.append(float(loss.detach()))
                clipped.append(float(clip_frac))
        optimizer.zero_grad(set_to_none=True)
        kl_per_response = float(kl.sum(1).mean())
        if cfg.adaptive_kl:  # Ziegler et al. §2.2, proportional controller on log-space error
            error = max(-0.2, min(0.2, kl_per_response / cfg.target_kl - 1.0))
            self.kl_coef.mul_(1.0 + error * B / cfg.kl_horizon)
        self.stats = {
            "score": float(r.scores.mean()),
            "kl": kl_per_response,
            "kl_coef": float(self.kl_coef),
            "clip_fraction": sum(clipped) / max(1, len(clipped)),
            "response_tokens": float(r.mask.sum(1).float().mean()),
        }
        return (sum(losses) / max(1, len(losses))), self.stats

    def loss(self, prompts: list[str]) -> tuple[torch.Tensor, dict[str, float]]:
        """Evaluation: minus the mean score of greedy responses to `prompts`."""
        r = self.rollout(prompts, greedy=True)
        return -r.scores.mean(), {}


def render_prompts(prompts: list[str], template: ChatTemplate | None) -> list[str]:
    return [render_prompt(p, template) for p in prompts]
