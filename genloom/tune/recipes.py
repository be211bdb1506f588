"""Task recipes: data for translation and summarization fine-tuning, answering a batch of prompts with
a run, the metrics (BLEU/chrF with `sacrebleu`, ROUGE with `rouge-score`), and the pairs of the
alignment demonstration (a preference a program can score).

- Translation: bundled Tatoeba English-French pairs (`data/tatoeba_eng_fra/`, CC BY 2.0 FR), split by
  `data/parallel.py` (a hash of the English sentence); the held-out set is its *test* split.
- Summarization: bundled DialogSum (`data/dialogsum/`, CC BY-NC-SA 4.0: **non-commercial use only**).
- Alignment: `preference_pairs` samples two answers per prompt from a run and lets a named reward of
  `ppo.REWARDS` decide which is chosen; where both score the same, the program edits one answer so it
  satisfies the preference (for `ends-with-question`: the final punctuation becomes "?"), so every pair
  is decided by the program alone, with no human rater.
`sacrebleu` and `rouge-score` are the `tune` extra (and dev dependencies); they are imported inside.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genloom.chat import stop_sequences
from genloom.data.parallel import DATA_DIR, Pair, read_pairs, split_pairs
from genloom.tune.ppo import REWARDS

TRANSLATE = "Translate to French: "
SUMMARIZE = "Summarize the dialogue:\n"


def translation_splits() -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Tatoeba English→French (train, val, test) by the hash of the English sentence."""
    splits = split_pairs(read_pairs("tatoeba-eng-fra"))
    return splits.train, splits.val, splits.test


def translation_records(pairs: Sequence[Pair]) -> list[dict[str, str]]:
    return [{"prompt": TRANSLATE + p.source, "response": p.target} for p in pairs]


def monolingual_text(pairs: Sequence[Pair]) -> str:
    """Both languages' sentences, one per line, English then French per pair but never as a pair on one
    line: a base corpus that knows both languages without having seen the translation task's format."""
    seen: set[str] = set()
    lines = []
    for p in pairs:
        for s in (p.source, p.target):
            if s not in seen:
                seen.add(s)
                lines.append(s)
    return "\n".join(lines) + "\n"


def dialogsum(split: str, limit: int | None = None) -> list[dict[str, str]]:
    """DialogSum records `{"prompt", "response"}` of one split (train, dev or test; the test split has three
    reference summaries per dialogue, the first is used)."""
    path = DATA_DIR / "dialogsum" / f"dialogsum.{split}.jsonl"
    raw = gzip.decompress(path.with_suffix(".jsonl.gz").read_bytes()).decode() if split == "train" else path.read_text()
    records = []
    for line in raw.splitlines()[:limit]:
        r = json.loads(line)
        records.append({"prompt": SUMMARIZE + r["dialogue"], "response": r.get("summary") or r["summary1"]})
    return records


def hh_rlhf_pairs(limit: int | None = None) -> list[dict[str, str]]:
    """Anthropic HH-RLHF helpful-base (bundled test split, MIT) as `{"prompt", "chosen", "rejected"}`,
    split on the last "\n\nAssistant:"; pairs whose transcripts do not share that prefix, or whose
    answers are empty or identical, are dropped (its SOURCE.md: 2,345 of 2,354 share the prefix)."""
    from genloom.tune.data import hh_rlhf_pair

    raw = gzip.decompress((DATA_DIR / "hh_rlhf" / "helpful-base" / "test.jsonl.gz").read_bytes()).decode()
    pairs = []
    for line in raw.splitlines():
        record = json.loads(line)
        pair = hh_rlhf_pair(record)
        if not record["rejected"].startswith(pair.prompt):
            continue
        chosen, rejected = pair.chosen.strip(), pair.rejected.strip()
        if chosen and rejected and chosen != rejected:
            pairs.append({"prompt": pair.prompt, "chosen": chosen, "rejected": rejected})
    return pairs[:limit]


def respond(
    lm: Any, prompts: Sequence[str], max_new_tokens: int = 64, batch_size: int = 32, **options: Any
) -> list[str]:
    """One assistant turn per prompt from a loaded run (`gl.load`), greedy unless options say otherwise;
    a base run is prompted with plain role lines. The answer is cut at its first newline."""
    stops = stop_sequences(lm.chat_template)
    options = {"temperature": 0.0, "context_overflow": "truncate"} | options
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        chunk = [lm.chat_prompt([{"role": "user", "content": p}]) for p in prompts[i : i + batch_size]]
        done = lm.complete(chunk, max_new_tokens=max_new_tokens, stop=stops, **options)
        out += [c.text.strip().split("\n")[0].strip() for c in done]
    return out


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenization, chrF n=6, β=2)."""
    import sacrebleu

    refs = [list(references)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(hypotheses), refs).score),
        "chrf": float(sacrebleu.corpus_chrf(list(hypotheses), refs).score),
    }


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (×100, with stemming) of `rouge-score`."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hypotheses, references, strict=True):
        for k, s in scorer.score(r, h).items():
            totals[k] += s.fmeasure
    return {k: 100 * v / max(1, len(hypotheses)) for k, v in totals.items()}


def satisfy(reward: str, answer: str) -> str:
    """The program's edit that makes `answer` satisfy a named preference."""
    if reward == "ends-with-question":
        return answer.rstrip().rstrip(".!?…").rstrip() + " ?"
    if reward == "shorter":
        return answer[: max(1, len(answer) // 2)].rstrip()
    if reward == "positive-words":
        return answer.rstrip() + " good"
    raise KeyError(reward)


def preference_pairs(
    lm: Any, prompts: Sequence[str], reward: str = "ends-with-question", seed: int = 0, max_new_tokens: int = 48
) -> list[dict[str, str]]:
    """`{"prompt", "chosen", "rejected"}` for each prompt, decided by the named programmatic reward."""
    score = REWARDS[reward]
    a = respond(lm, prompts, max_new_tokens, temperature=1.0, seed=seed)
    b = respond(lm, prompts, max_new_tokens, temperature=1.0, seed=seed + 1)
    pairs = []
    for p, x, y in zip(prompts, a, b, strict=True):
        sx, sy = score([p], [x])[0], score([p], [y])[0]
        if sx == sy:  # the program breaks the tie by editing one answer
            x, y = satisfy(reward, x), y
            sx, sy = score([p], [x])[0], score([p], [y])[0]
        chosen, rejected = (x, y) if sx > sy else (y, x)
        if chosen != rejected and chosen.strip() and rejected.strip() and sx != sy:
            pairs.append({"prompt": p, "chosen": chosen, "rejected": rejected})
    return pairs


def preferred_rate(answers: Sequence[str], reward: str = "ends-with-question", threshold: float = 1.0) -> float:
    """Share of answers the named reward scores at least `threshold` (1.0: satisfied, for 0/1 rewards)."""
    scores = REWARDS[reward]([""] * len(answers), list(answers))
    return sum(s >= threshold for s in scores) / max(1, len(answers))


def write_records(path: str | Path, records: Sequence[dict[str, str]]) -> Path:
    from genloom.tune.data import write_jsonl

    return write_jsonl(path, records)


def score_and_kl(
    lm: Any, reference: Any, prompts: Sequence[str], reward: str, max_new_tokens: int = 48
) -> dict[str, float]:
    """On responses sampled (temperature 1, seed 0) from `lm`: the mean programmatic score and the mean
    KL to `reference` per response, Σ_t log π(y_t) - log π_ref(y_t) (a Monte-Carlo estimate of KL(π‖π_ref))."""
    import torch

    from genloom.tune.ppo import PPOConfig, PPOObjective, render_prompts

    cfg = PPOConfig(max_new_tokens=max_new_tokens)
    objective = PPOObjective(lm.model, reference.model, REWARDS[reward], lm.tokenizer, lm.chat_template, cfg)
    scores, kls = [], []
    rendered = render_prompts(list(prompts), lm.chat_template)
    with torch.no_grad():
        for i in range(0, len(rendered), 32):
            r = objective.rollout(rendered[i : i + 32], seed=i)
            logprobs, _ = objective.evaluate_policy(r.seq, r.index, r.tokens)
            kls.append(((logprobs - objective.reference_logprobs(r)) * r.mask).sum(1))
            scores.append(r.scores)
    return {"sampled_score": float(torch.cat(scores).mean()), "kl_to_reference": float(torch.cat(kls).mean())}
