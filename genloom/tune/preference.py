"""Preference pairs as tensors, and the two methods trained on them: the reward model and DPO.

A pair (prompt x, chosen y_w, rejected y_l) becomes two right-padded rows, prompt + answer, each with a
mask of its answer tokens. With a chat template the prompt is rendered as one user turn and each
answer closes with `<|end|>`; a base run (no template) sees the raw text. A row longer than the context
loses the start of its prompt first.

- Reward model (Ouyang et al. 2022 §3.5; Stiennon et al. 2020): the LM's final hidden state at the last
  answer token → a scalar head; trained with the Bradley-Terry loss; reported: held-out pair accuracy
  (how often r(chosen) > r(rejected)).
- DPO (Rafailov et al. 2023): the policy's and the frozen reference's log-probabilities of each answer;
  the reference's are computed once, before training, from the same starting weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from genloom.chat import ChatTemplate
from genloom.data.pii import parse_kinds
from genloom.models.gpt import GPT
from genloom.tokenizers import Tokenizer
from genloom.train import TrainConfig
from genloom.tune.data import PreferencePair
from genloom.tune.lora import LoRAConfig
from genloom.tune.losses import bradley_terry_loss, dpo_loss, token_logprobs
from genloom.tune.sft import default_train

PairBatch = tuple[torch.Tensor, ...]  # chosen ids, chosen mask, rejected ids, rejected mask, ref chosen, ref rejected


def render_prompt(prompt: str, template: ChatTemplate | None) -> str:
    return template.render([{"role": "user", "content": prompt}]) if template else prompt


def render_answer(answer: str, template: ChatTemplate | None) -> str:
    return answer + template.end if template else answer


def encode_answer(tokenizer: Tokenizer, prompt: str, answer: str, block_size: int) -> tuple[list[int], int]:
    """Ids of prompt + answer fitted to block_size (prompt cut from the left first) and the answer's start."""
    p, a = tokenizer.encode(prompt), tokenizer.encode(answer)
    if len(p) + len(a) > block_size:
        a = a[: block_size - 1]
        p = p[-(block_size - len(a)) :]
    return p + a, len(p)


def pad_rows(rows: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, T) and the mask of answer tokens (N, T)."""
    T = max(len(ids) for ids, _ in rows)
    ids_t = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, (ids, start) in enumerate(rows):
        ids_t[i, : len(ids)] = torch.tensor(ids)
        mask[i, start : len(ids)] = True
    return ids_t, mask


def answer_logprobs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(answer tokens | everything before) per row (B,). Args: ids, mask (B, T)."""
    logits = model(ids[:, :-1])  # (B, T-1, V): position t predicts token t+1
    lp = token_logprobs(logits, ids[:, 1:])  # (B, T-1)
    return (lp * mask[:, 1:]).sum(-1)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last true position of each row (B,) of a (B, T) mask."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask).argmax(-1)


class PairData:
    """Tokenized preference pairs, split into train and validation, for the shared Trainer."""

    def __init__(
        self,
        train: list[PreferencePair],
        val: list[PreferencePair],
        tokenizer: Tokenizer,
        template: ChatTemplate | None,
        block_size: int,
    ) -> None:
        self.block_size = block_size
        self.splits: dict[str, list[torch.Tensor]] = {}
        for name, pairs in (("train", train), ("val", val)):
            chosen, rejected = [], []
            for pair in pairs:
                prompt = render_prompt(pair.prompt, template)
                chosen.append(encode_answer(tokenizer, prompt, render_answer(pair.chosen, template), block_size))
                rejected.append(encode_answer(tokenizer, prompt, render_answer(pair.rejected, template), block_size))
            c_ids, c_mask = pad_rows(chosen)
            r_ids, r_mask = pad_rows(rejected)
            zeros = torch.zeros(len(pairs))
            self.splits[name] = [c_ids, c_mask, r_ids, r_mask, zeros, zeros.clone()]
        self.stats = {f"{k}_pairs": len(v[0]) for k, v in self.splits.items()}

    @torch.no_grad()
    def set_reference(self, reference: nn.Module, batch_size: int = 32) -> None:
        """Store the frozen reference model's answer log-probabilities of every pair (DPO)."""
        reference.eval()
        for tensors in self.splits.values():
            c_ids, c_mask, r_ids, r_mask, ref_c, ref_r = tensors
            for i in range(0, len(c_ids), batch_size):
                s = slice(i, i + batch_size)
                ref_c[s] = answer_logprobs(reference, c_ids[s], c_mask[s])
                ref_r[s] = answer_logprobs(reference, r_ids[s], r_mask[s])

    def batch(self, split: str, idx: torch.Tensor) -> PairBatch:
        c_ids, c_mask, r_ids, r_mask, ref_c, ref_r = (t[idx] for t in self.splits[split])
        c_w, r_w = int(last_token_index(c_mask).max()) + 1, int(last_token_index(r_mask).max()) + 1
        return c_ids[:, :c_w], c_mask[:, :c_w], r_ids[:, :r_w], r_mask[:, :r_w], ref_c, ref_r

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> PairBatch:
        idx = torch.randint(len(self.splits[split][0]), (batch_size,), generator=generator)
        return self.batch(split, idx)

    def batches(self, split: str, batch_size: int = 32) -> list[PairBatch]:
        """Every pair of a split once, in order (for exact held-out metrics)."""
        n = len(self.splits[split][0])
        return [self.batch(split, torch.arange(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


# ---- reward model ----------------------------------------------------------------------------


@dataclass
class RewardConfig:
    val_fraction: float = 0.1  # share of pairs (by a hash of the prompt) held out for pair accuracy
    scrub_pii: bool | tuple[str, ...] = False  # personal data in the JSONL → placeholders (genloom/data/pii.py)
    train: TrainConfig = field(default_factory=lambda: default_train(lr=1e-4, min_lr=1e-5))

    def __post_init__(self) -> None:
        parse_kinds(self.scrub_pii, "scrub_pii")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


class RewardModel(nn.Module):
    """A genloom LM with a scalar head on its final hidden state at the answer's last token."""

    def __init__(self, lm: GPT) -> None:
        super().__init__()
        self.lm = lm
        n_embd = lm.config.n_embd
        self.head = nn.Linear(n_embd, 1)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1.0 / (n_embd + 1) ** 0.5)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Args: ids (B, T); mask (B, T) of answer tokens. Returns rewards (B,)."""
        hidden = self.lm.hidden_states(ids)  # (B, T, C)
        last = hidden[torch.arange(len(ids)), last_token_index(mask)]  # (B, C)
        return self.head(last)[:, 0]

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c_ids, c_mask, r_ids, r_mask = batch[:4]
        r_c, r_r = self(c_ids, c_mask), self(r_ids, r_mask)
        return bradley_terry_loss(r_c, r_r), {"accuracy": float((r_c > r_r).float().mean())}


@torch.no_grad()
def reward_accuracy(model: RewardModel, data: PairData, split: str = "val") -> dict[str, float]:
    """Pair accuracy and mean margin r(chosen) - r(rejected) over every pair of a split."""
    model.eval()
    margins = []
    for c_ids, c_mask, r_ids, r_mask, *_ in data.batches(split):
        margins.append(model(c_ids, c_mask) - model(r_ids, r_mask))
    m = torch.cat(margins)
    return {"pair_accuracy": float((m > 0).float().mean()), "mean_margin": float(m.mean()), "pairs": len(m)}


# ---- DPO ---------------------------------------------------------------------------------------


@dataclass
class DPOConfig:
    beta: float = 0.1  # strength of the KL constraint to the reference (eq. 7); larger stays closer
    label_smoothing: float = 0.0  # probability that a preference label is wrong (cDPO); 0: plain DPO
    val_fraction: float = 0.1  # share of pairs (by a hash of the prompt) held out for the reported metrics
    use_lora: bool = False  # train LoRA adapters instead of every weight
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    scrub_pii: bool | tuple[str, ...] = False  # personal data in the JSONL → placeholders (genloom/data/pii.py)
    train: TrainConfig = field(default_factory=lambda: default_train(lr=1e-4, min_lr=1e-5))

    def __post_init__(self) -> None:
        parse_kinds(self.scrub_pii, "scrub_pii")
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


class DPOObjective(nn.Module):
    """The policy trained with the DPO loss; the reference's log-probabilities come with each batch."""

    def __init__(self, policy: GPT, beta: float, label_smoothing: float) -> None:
        super().__init__()
        self.policy = policy
        self.beta = beta
        self.label_smoothing = label_smoothing

    def terms(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c_ids, c_mask, r_ids, r_mask, ref_c, ref_r = batch
        pol_c = answer_logprobs(self.policy, c_ids, c_mask)
        pol_r = answer_logprobs(self.policy, r_ids, r_mask)
        return dpo_loss(pol_c, pol_r, ref_c, ref_r, self.beta, self.label_smoothing)

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        losses, chosen, rejected = self.terms(batch)
        return losses.mean(), {"reward_margin": float((chosen - rejected).mean())}


@torch.no_grad()
def dpo_metrics(objective: DPOObjective, data: PairData, split: str = "val") -> dict[str, float]:
    """Mean loss, implicit rewards of chosen and rejected answers, their margin and the accuracy
    (how often the chosen answer's implicit reward is higher), over every pair of a split."""
    objective.eval()
    parts = [objective.terms(b) for b in data.batches(split)]
    losses, chosen, rejected = (torch.cat([p[i] for p in parts]) for i in range(3))
    return {
        "loss": float(losses.mean()),
        "chosen_reward": float(chosen.mean()),
        "rejected_reward": float(rejected.mean()),
        "reward_margin": float((chosen - rejected).mean()),
        "reward_accuracy": float((chosen > rejected).float().mean()),
        "pairs": len(losses),
    }
