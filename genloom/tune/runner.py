"""`tune(method, base, data=..., out=...)`: one entry for every method, writing a normal run directory.

```
OUT/
  config.toml, tokenizer.json, model.safetensors   the tuned policy (or the reward model's LM): `gl.load(OUT)`
  chat_template.json                                 SFT adds it (and its markers as special tokens)
  tune.toml                                          lineage: method, base run + weights hash, data + hash, config
  adapters.safetensors, adapters.json                LoRA (loadable onto the base run)
  reward_head.safetensors / value_head.safetensors   reward model / PPO's value head
  training/                                          the Trainer's own run: checkpoints, state, metrics (resume)
  summary.json, card.md                              figures and the model card with the lineage
```
The Trainer works on the method's objective (policy plus heads) inside `training/`, so `--resume`
continues exactly; the top-level weights are exported from it when training ends.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file
from torch import nn

from genloom import run as rundir
from genloom.chat import AnyChatTemplate, ChatTemplate, JinjaChatTemplate
from genloom.config import build, dump_toml, merge, parse_sets, read_toml, to_dict
from genloom.data.pii import Scrubber, parse_kinds
from genloom.errors import UserError
from genloom.evaluate import plot_loss_curve, write_card
from genloom.models.gpt import GPT
from genloom.tokenizers import Tokenizer, add_special_tokens
from genloom.train import Trainer, TrainResult
from genloom.tune import data as tdata
from genloom.tune.lora import LoRAConfig, apply_lora, merge_lora, save_adapters
from genloom.tune.ppo import REWARDS, PPOConfig, PPOObjective, PromptData, RewardFn, render_prompts
from genloom.tune.preference import (
    DPOConfig,
    DPOObjective,
    PairData,
    RewardConfig,
    RewardModel,
    dpo_metrics,
    render_answer,
    reward_accuracy,
)
from genloom.tune.sft import SFTConfig, SFTData, SFTObjective, sft_loss

TUNE = "tune.toml"
TRAINING = "training"  # the Trainer's run directory inside OUT
REWARD_HEAD = "reward_head.safetensors"
VALUE_HEAD = "value_head.safetensors"
METHODS: dict[str, type] = {
    "sft": SFTConfig,
    "lora": SFTConfig,  # SFT with use_lora = true
    "reward": RewardConfig,
    "ppo": PPOConfig,
    "dpo": DPOConfig,
}


class BaseRun(Protocol):
    """What `tune` needs of a loaded run (genloom's `LanguageModel`)."""

    model: nn.Module  # a GPT
    tokenizer: Tokenizer
    config: Any  # RunConfig: `to_dict()` gives config.toml's content
    run_dir: Path
    chat_template: AnyChatTemplate | None


@dataclass
class TuneResult:
    method: str
    out: Path
    metrics: dict[str, Any]
    training: TrainResult
    lineage: dict[str, Any] = field(default_factory=dict)


def method_config(method: str, sets: Sequence[str] = ()) -> Any:
    """The method's config dataclass from `--set key=value` overrides (`train.lr=1e-4`, `lora.r=4`, `beta=0.2`)."""
    if method not in METHODS:
        raise UserError(f"unknown tune method {method!r}; choose one of {', '.join(METHODS)}")
    raw = parse_sets(list(sets))
    if method == "lora":
        raw = merge({"use_lora": "true"}, raw)
    defaults = to_dict(METHODS[method]())  # nested sections keep the method's defaults under a --set
    return build(METHODS[method], merge(defaults, raw))


def weights_sha256(run_dir: Path) -> str:
    path = run_dir / rundir.WEIGHTS
    return tdata.file_sha256(path) if path.exists() else "unknown"


def _lineage(method: str, base: BaseRun, data: Path, cfg: Any) -> dict[str, Any]:
    return {
        "method": method,
        "base_run": str(base.run_dir),
        "base_weights_sha256": weights_sha256(base.run_dir),
        "data": str(data),
        "data_sha256": tdata.file_sha256(data),
        "config": to_dict(cfg),
    }


def reward_scorer(lm: GPT, tokenizer: Tokenizer, template: ChatTemplate | None, run_dir: Path) -> RewardFn:
    """A reward-model run as a reward function `(rendered prompts, responses) -> scores`."""
    head_path = run_dir / REWARD_HEAD
    if not head_path.exists():
        raise UserError(
            f"--reward {run_dir}: not a reward-model run (no {REWARD_HEAD}; make one with `genloom tune reward`)"
        )
    model = RewardModel(lm)
    model.head.load_state_dict({k.removeprefix("head."): v for k, v in load_file(str(head_path)).items()})
    model.eval()
    block = lm.config.block_size

    @torch.no_grad()
    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        rows = []
        for p, r in zip(prompts, responses, strict=True):
            prompt_ids = tokenizer.encode(p)
            answer_ids = tokenizer.encode(render_answer(r, template)) or prompt_ids[-1:]
            ids = (prompt_ids + answer_ids)[-block:]
            rows.append((ids, max(0, len(ids) - len(answer_ids))))
        from genloom.tune.preference import pad_rows

        ids_t, mask = pad_rows(rows)
        return model(ids_t, mask).tolist()

    return score


def resolve_reward(reward: str | RewardFn | None, load_run: Callable[[str], BaseRun] | None) -> RewardFn:
    if reward is None:
        raise UserError(f"ppo needs --reward: a reward-model run or one of {', '.join(REWARDS)}")
    if callable(reward):
        return reward
    if reward in REWARDS:
        return REWARDS[reward]
    if load_run is None or not (Path(reward) / rundir.CONFIG).exists():
        raise UserError(f"--reward {reward!r}: neither a run directory nor a named reward ({', '.join(REWARDS)})")
    rm = load_run(reward)
    if not isinstance(rm.model, GPT):
        raise UserError(f"--reward {reward}: not a reward-model run of a gpt")
    assert not isinstance(rm.chat_template, JinjaChatTemplate)  # a genloom run (it has config.toml)
    return reward_scorer(rm.model, rm.tokenizer, rm.chat_template, rm.run_dir)


def tune(
    method: str,
    base: BaseRun,
    *,
    data: str | Path,
    out: str | Path,
    sets: Sequence[str] = (),
    reward: str | RewardFn | None = None,
    load_run: Callable[[str], BaseRun] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Fine-tune `base` with `method` on the JSONL file `data` into the run directory `out`.

    Everything is checked (config, data, reward) before `out` is touched."""
    cfg = method_config(method, sets)
    say = log or print
    data = Path(data)
    if not data.is_file():
        raise UserError(f"--data {data}: no such file (expected a .jsonl file)")
    out = rundir.check_out_dir(out, overwrite=overwrite, resume=resume)
    lineage = _lineage(method, base, data, cfg)
    if resume:
        saved = read_toml(out / TUNE) if (out / TUNE).exists() else {}
        for key in ("method", "base_weights_sha256", "data_sha256"):
            if saved.get(key) != lineage[key]:
                raise UserError(f"--resume {out}: {key} is {saved.get(key)!r} there, {lineage[key]!r} now")
        was = parse_kinds(saved.get("config", {}).get("scrub_pii", False))
        if was != parse_kinds(cfg.scrub_pii):  # the scrubbed data is other data
            raise UserError(f"--resume {out}: scrub_pii is {list(was)} there, {list(parse_kinds(cfg.scrub_pii))} now")
    if not isinstance(base.model, GPT):
        raise UserError(f"{base.run_dir}: genloom tune works on gpt runs, not {type(base.model).__name__}")
    base_model = base.model
    block = base_model.config.block_size
    torch.manual_seed(cfg.train.seed)
    policy = copy.deepcopy(base_model)
    if isinstance(base.chat_template, JinjaChatTemplate):  # its markers are not genloom's ChatTemplate fields
        raise UserError(
            f"{base.run_dir}: fine-tuning a pretrained model that ships its own Jinja chat template is not "
            "supported yet (genloom tune trains genloom's template); use a base model without one"
        )
    tokenizer, template = base.tokenizer, base.chat_template
    kinds = parse_kinds(cfg.scrub_pii)
    scrubber = Scrubber(kinds) if kinds else None  # personal data in the records → placeholders
    objective: Any  # the method's module: SFTObjective, RewardModel, DPOObjective or PPOObjective
    extra_files: dict[str, Callable[[], None]] = {}

    if method in ("sft", "lora"):
        template = template or ChatTemplate()
        tokenizer = add_special_tokens(tokenizer, template.special_tokens)
        examples = tdata.read_sft(data, template, scrubber)
        train, val = tdata.split_by_key(examples, [e.key for e in examples], cfg.val_fraction)
        _say_split(say, data, "examples", len(train), len(val), cfg.val_fraction)
        policy.resize_token_embeddings(tokenizer.vocab_size)
        batches: Any = SFTData(train, val, tokenizer, block, cfg.packing)
        objective = SFTObjective(policy)
    elif method in ("reward", "dpo"):
        pairs = tdata.read_preferences(data, scrubber)
        train_p, val_p = tdata.split_by_key(pairs, [p.prompt for p in pairs], cfg.val_fraction)
        _say_split(say, data, "pairs", len(train_p), len(val_p), cfg.val_fraction)
        batches = PairData(train_p, val_p, tokenizer, template, block)
        if method == "reward":
            objective = RewardModel(policy)
        else:
            batches.set_reference(base_model)
            objective = DPOObjective(policy, cfg.beta, cfg.label_smoothing)
    else:
        reward_fn = resolve_reward(reward, load_run)
        if cfg.max_new_tokens >= block:  # a rollout needs room for at least one prompt token
            raise UserError(
                f"max_new_tokens: rollouts of {cfg.max_new_tokens} tokens do not fit the base run's context of "
                f"{block} tokens with a prompt; set max_new_tokens={max(1, block // 2)} (at most {block - 1})"
            )
        prompts = tdata.read_prompts(data, scrubber)
        train_q, val_q = tdata.split_by_key(prompts, prompts, cfg.val_fraction)
        _say_split(say, data, "prompts", len(train_q), len(val_q), cfg.val_fraction)
        batches = PromptData(render_prompts(train_q, template), render_prompts(val_q, template))
        objective = PPOObjective(policy, base_model, reward_fn, tokenizer, template, cfg)
    lora_cfg: LoRAConfig | None = cfg.lora if getattr(cfg, "use_lora", False) else None
    if lora_cfg is not None:
        apply_lora(policy, lora_cfg)
        if method == "ppo":
            objective.value_head.requires_grad_(True)  # the value head is new: it always trains

    before = _metrics(method, objective, batches, base_policy=base_model) if method == "ppo" else {}
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    run_config = base.config.to_dict()
    run_config["model"]["vocab_size"] = tokenizer.vocab_size
    run_config["train"] = to_dict(cfg.train)
    rundir.atomic_write_text(
        out / rundir.CONFIG, dump_toml(rundir.marked(run_config), f"genloom run config (gpt, tuned with {method})")
    )
    tokenizer.save(out / rundir.TOKENIZER)
    if template is not None:
        template.save(out)
    rundir.atomic_write_text(out / TUNE, dump_toml(lineage, "genloom tune: how this run was made from its base run"))
    (out / TRAINING).mkdir(exist_ok=True)
    trainer = Trainer(objective, cfg.train, batches, out / TRAINING, log=log)
    result = trainer.fit(resume=resume)

    metrics = {**before, **_metrics(method, objective, batches)}
    if lora_cfg is not None:
        base_info = {
            "run": str(base.run_dir),
            "weights_sha256": lineage["base_weights_sha256"],
            "vocab_size": tokenizer.vocab_size,
        }
        save_adapters(policy, out, lora_cfg, base_info)
        merge_lora(policy)
    if method == "reward":
        head = {f"head.{k}": v.contiguous() for k, v in objective.head.state_dict().items()}
        extra_files[REWARD_HEAD] = lambda: rundir.save_tensors(head, out / REWARD_HEAD)
    if method == "ppo":
        vh = {k: v.contiguous() for k, v in objective.value_head.state_dict().items()}
        extra_files[VALUE_HEAD] = lambda: rundir.save_tensors(vh, out / VALUE_HEAD)
    rundir.save_weights(policy, out / rundir.WEIGHTS, result.step)
    for write in extra_files.values():
        write()
    data_stats = dict(getattr(batches, "stats", {}))
    if scrubber is not None:
        data_stats["pii_scrubbed"] = scrubber.report()
    summary = {
        "lineage": lineage,
        "data": data_stats,
        "metrics": metrics,
        "training": _train_figures(result),
    }
    rundir.atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    losses = {
        "sft": "response cross-entropy (nats/token)",
        "lora": "response cross-entropy (nats/token)",
        "reward": "Bradley-Terry loss",
        "dpo": "DPO loss",
        "ppo": "PPO loss (policy + value)",
    }
    plot_loss_curve(out, losses.get(method, "loss"), metrics_dir=out / TRAINING)
    _write_card(out, method, lineage, summary, lora_cfg)
    return TuneResult(method, out, metrics, result, lineage)


def _train_figures(result: TrainResult) -> dict[str, Any]:
    return {
        "steps": result.step,
        "train_loss": result.train_loss,
        "val_loss_estimate": result.val_loss,
        "ms_per_iter_median": result.ms_per_iter,
        "peak_rss_mb": result.peak_rss_mb,
        "seconds": result.elapsed_s,
    }


@torch.no_grad()
def _metrics(method: str, objective: Any, batches: Any, base_policy: nn.Module | None = None) -> dict[str, Any]:
    """Held-out figures of each method (exact, over the whole validation split)."""
    objective.eval()
    if method in ("sft", "lora"):
        n_rows = len(batches.splits["val"][0])
        total, n = 0.0, 0
        for i in range(0, n_rows, 32):
            x, y, mask, segments = batches.rows("val", torch.arange(i, min(i + 32, n_rows)))
            total += float(sft_loss(objective.policy, x, y, mask, segments)) * int(mask.sum())
            n += int(mask.sum())
        return {"val_response_loss": total / n}
    if method == "reward":
        return {f"val_{k}": v for k, v in reward_accuracy(objective, batches).items()}  # type: ignore[arg-type]
    if method == "dpo":
        return {f"val_{k}": v for k, v in dpo_metrics(objective, batches).items()}  # type: ignore[arg-type]
    prefix = "before" if base_policy is not None else "after"
    prompts = batches.splits["val"]
    r = objective.rollout(prompts, greedy=False, seed=0)
    kl = objective.reference_logprobs(r)
    logprobs, _ = objective.evaluate_policy(r.seq, r.index, r.tokens)
    per_response_kl = float(((logprobs - kl) * r.mask).sum(1).mean())
    return {f"{prefix}_val_score": float(r.scores.mean()), f"{prefix}_val_kl": per_response_kl}


VAL_WARN = 50  # fewer held-out items than this make the reported figures noisy


def _say_split(say: Callable[[str], None], data: Path, what: str, train: int, val: int, fraction: float) -> None:
    """What tune read, and a warning when the held-out share is too small to measure anything."""
    say(f"data: {data}: {train + val:,} {what}: {train:,} train / {val:,} validation (val_fraction={fraction})")
    if val < VAL_WARN:
        say(
            f"warning: {data}: only {val} validation {what}: held-out figures under {VAL_WARN} items are noisy; "
            f"add data or raise val_fraction (--set val_fraction=...)"
        )


def _write_card(
    out: Path, method: str, lineage: dict[str, Any], summary: dict[str, Any], lora: LoRAConfig | None
) -> None:
    names = {
        "sft": "supervised fine-tuning",
        "lora": "LoRA fine-tuning",
        "reward": "a reward model",
        "ppo": "RLHF (PPO)",
        "dpo": "DPO",
    }
    sections: dict[str, dict[str, Any] | str] = {
        "Lineage": {k: v for k, v in lineage.items() if k != "config"},
        "Method": f"{names[method]} (genloom tune {method}); full settings in `{TUNE}`."
        + (
            f" LoRA r={lora.r}, alpha={lora.alpha} on layers matching `{lora.target}`; adapters in `adapters.safetensors`, merged into `model.safetensors`."
            if lora
            else ""
        ),
        "Data statistics": summary["data"],
        "Evaluation (held-out split)": summary["metrics"],
        "Training": summary["training"],
        "Intended use": "A small research/teaching model fine-tuned from its base run; it inherits the base run's data and limits.",
    }
    write_card(out, f"Model card: {out.name}", sections)
