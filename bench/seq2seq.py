"""Benchmark (issue 7 bar): held-out BLEU of the `tatoeba-cpu` encoder-decoder vs a decoder-only GPT
trained on the same pairs for the same wall-clock budget.

Contenders, run one after the other in this one process (never at the same time), each with the same
number of torch threads and the same training budget in seconds (`train.max_time`; tokenization and
evaluation are not counted):
- seq2seq: `genloom train seq2seq --data tatoeba-eng-fra --preset tatoeba-cpu`.
- gpt: the same training pairs, each written as one document "English<TAB>French" (BPE documents are
  separated by end-of-text, so the model learns to stop), a GPT of about the same size (6 blocks of width
  256, 64-token windows, BPE of the same vocabulary size, bf16, same learning rate). It translates by
  continuing the prompt "English<TAB>" greedily up to a newline, tab or end-of-text.
Both learning-rate schedules are fitted to the budget: a 40-step probe measures each contender's step
time, and `max_iters` is set so the cosine decay ends as the budget runs out (on a shared machine the
probe can be off; the table gives the training seconds each contender actually used).

Scoring: the distinct English sentences of the test split (split by a hash of the English sentence, so
no test sentence is seen in training by either model), greedy decoding, sacrebleu corpus BLEU and chrF
against all French references of each sentence. The seq2seq model is also scored with beam search (4).
The section `seq2seq` of bench/RESULTS.md is replaced with the figures.

    python bench/seq2seq.py --out runs/bench-s2s --threads 1 --budget 900
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402
from genloom.models.seq2seq import PRESETS  # noqa: E402

EXAMPLES = [
    "I am hungry.",
    "Where is the train station?",
    "Tom doesn't like cheese.",
    "We will go to the beach tomorrow.",
]
GPT_MODEL = {"n_layer": 6, "n_head": 4, "n_embd": 256, "block_size": 64, "pos_encoding": "rope", "dropout": 0.1}
# the preset's optimizer settings, with 16 windows of 64 tokens per step: ~1k tokens, as many as the
# seq2seq batch of 64 pairs holds on its two sides (~7.5 + 9 tokens a pair)
GPT_TRAIN = {k: v for k, v in PRESETS["tatoeba-cpu"]["train"].items() if k not in ("max_iters", "max_time")}
GPT_TRAIN |= {"batch_size": 16, "sample_tokens": 0}


def sets_of(section: str, values: dict[str, Any]) -> list[str]:
    return [f"{section}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]


def train(family: str, out: Path, data: str, preset: str | None, sets: list[str]) -> Any:
    import genloom as gl

    return gl.train(family, out=out, data=data, preset=preset, sets=sets, overwrite=out.exists())


def fitted_iters(
    family: str, out: Path, data: str, preset: str | None, sets: list[str], budget: float
) -> tuple[int, float]:
    """A 40-step probe of the contender's median step time → the steps that fit the budget. On a loaded
    machine the estimate can be off either way: a run then stops at its planned steps before the budget
    is spent, or at the budget before its schedule ends; the table reports the seconds each one used."""
    probe = train(
        family, out, data, preset, [*sets, "train.max_iters=40", "train.eval_interval=40", "train.eval_iters=1"]
    )
    ms = float(probe.ms_per_iter)
    return int(budget * 1000 / ms), ms


def gpt_translate(lm: Any, sources: list[str]) -> list[str]:
    """Greedy continuation of "English<TAB>" up to the end of the French side."""
    out = []
    for s in range(0, len(sources), 64):
        chunk = [f"{src}\t" for src in sources[s : s + 64]]
        completions = lm.complete(chunk, temperature=0.0, max_new_tokens=47, stop=("\n", "\t"))
        out += [c.text.strip() for c in completions]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench-s2s", help="directory for both runs (replaced)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--budget", type=float, default=900.0, help="training seconds per contender")
    parser.add_argument("--max-sentences", type=int, default=None, help="score only this many test sentences")
    args = parser.parse_args()

    import torch

    import genloom as gl
    from genloom.api.seq2seq import evaluate_seq2seq
    from genloom.data.pairs import PairDataConfig, load_pair_splits
    from genloom.evaluate.translation import bleu_chrf

    torch.set_num_threads(args.threads)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    common = [f"train.threads={args.threads}", "train.progress=false", f"train.max_time={args.budget}"]

    # --- the encoder-decoder preset ---
    s2s_out = root / "seq2seq"
    s2s_iters, s2s_ms = fitted_iters("seq2seq", s2s_out, "tatoeba-eng-fra", "tatoeba-cpu", common, args.budget)
    start = time.perf_counter()
    s2s_result = train("seq2seq", s2s_out, "tatoeba-eng-fra", "tatoeba-cpu", [*common, f"train.max_iters={s2s_iters}"])
    s2s_wall = time.perf_counter() - start
    tr = gl.load(s2s_out)
    assert isinstance(tr, gl.Translator)
    beam = evaluate_seq2seq(tr, max_sentences=args.max_sentences, num_beams=4)
    greedy = evaluate_seq2seq(tr, max_sentences=args.max_sentences)  # last, so card.md shows `genloom eval`

    # --- the decoder-only GPT on the same training pairs ---
    cfg = PairDataConfig()
    splits = load_pair_splits(cfg)
    docs = root / "gpt-pairs.jsonl"
    docs.write_text(
        "".join(json.dumps({"text": f"{p.source}\t{p.target}"}, ensure_ascii=False) + "\n" for p in splits.train)
    )
    gpt_out = root / "gpt"
    gpt_sets = [
        *common,
        *sets_of("model", GPT_MODEL),
        *sets_of("train", GPT_TRAIN),
        "data.tokenizer=bpe",
        f"data.vocab_size={tr.config.data.vocab_size}",
        "data.val_fraction=0.05",
        "data.dedup=false",
    ]
    gpt_iters, gpt_ms = fitted_iters("gpt", gpt_out, str(docs), None, gpt_sets, args.budget)
    start = time.perf_counter()
    gpt_result = train("gpt", gpt_out, str(docs), None, [*gpt_sets, f"train.max_iters={gpt_iters}"])
    gpt_wall = time.perf_counter() - start
    lm = gl.load(gpt_out)
    assert isinstance(lm, gl.LanguageModel)
    references: dict[str, list[str]] = {}
    for p in splits.test:
        references.setdefault(p.source, []).append(p.target)
    sources = list(references)[: args.max_sentences]
    gpt_hyps = gpt_translate(lm, sources)
    gpt_scores = bleu_chrf(gpt_hyps, [references[s] for s in sources])

    # --- the figure ---
    s2s_examples = tr.translate(EXAMPLES, num_beams=4)
    gpt_examples = gpt_translate(lm, EXAMPLES)
    rows = "\n".join(f"| {e} | {a} | {b} |" for e, a, b in zip(EXAMPLES, s2s_examples, gpt_examples, strict=True))
    s2s_summary = json.loads((s2s_out / "summary.json").read_text())
    gpt_summary = json.loads((gpt_out / "summary.json").read_text())
    cpu = s2s_summary["training"].get("cpu", platform.processor())
    diff = greedy["bleu"] - gpt_scores["bleu"]
    if diff > 0:
        verdict = (
            f"The encoder-decoder wins by {diff:.1f} BLEU (greedy vs greedy). Why, at equal time: each of its "
            "predictions is a French token conditioned on the whole English sentence (read bidirectionally), "
            "while the GPT spends about half of its loss and compute on modelling the English side, which "
            "translation never asks of it, and reads the English left to right only."
        )
    else:
        verdict = (
            f"The encoder-decoder falls short by {-diff:.1f} BLEU (greedy vs greedy): at this budget the GPT's "
            "single stack, trained on every token of the pair, learned the mapping faster than the "
            "encoder-decoder learned its cross-attention."
        )
    m = tr.config.model
    command = f"python bench/seq2seq.py --out <scratch dir> --threads {args.threads} --budget {args.budget:.0f}"
    if args.max_sentences:
        command += f" --max-sentences {args.max_sentences}"
    body = f"""
Command: `{command}`. Machine: {cpu}, torch {torch.__version__}, {args.threads} thread(s), Python {platform.python_version()}. Date: {time.strftime("%Y-%m-%d")}.
The machine was shared with another helper's work while this ran (2 cores): step times are noisy, which the
budget-fitted schedules absorb; the BLEU figures are deterministic given the trained weights. The two contenders
trained one after the other in one process, never at the same time.

Data: bundled Tatoeba English→French ({len(splits.train):,} training pairs; the test split is {len(splits.test):,} pairs
with {len(references):,} distinct English sentences, split by a hash of the English side). Both models get the same
training pairs and at most {args.budget:.0f} s of training each; each learning-rate schedule is fitted to that budget
from a 40-step probe of its step time.

| | seq2seq `tatoeba-cpu` | decoder-only GPT |
|---|---|---|
| model | {m.n_layer}+{m.n_decoder_layer or m.n_layer} layers × {m.n_embd}, {m.pos_encoding}, {m.norm_position}-norm, label smoothing {m.label_smoothing} | {GPT_MODEL["n_layer"]} layers × {GPT_MODEL["n_embd"]}, {GPT_MODEL["pos_encoding"]}, 64-token windows of "English⇥French" documents |
| parameters | {s2s_summary["model"]["parameters"]:,} | {gpt_summary["model"]["parameters"]:,} |
| shared BPE vocabulary | {m.vocab_size} | {lm.config.model.vocab_size} |
| steps in the budget (ms/step median) | {s2s_result.step:,} of {s2s_iters:,} planned ({s2s_result.ms_per_iter:.0f}; probe {s2s_ms:.0f}) | {gpt_result.step:,} of {gpt_iters:,} planned ({gpt_result.ms_per_iter:.0f}; probe {gpt_ms:.0f}) |
| training seconds used (of the {args.budget:.0f} s budget) | {s2s_summary["training"]["train_seconds_total"]:.0f} s | {gpt_summary["training"]["train_seconds_total"]:.0f} s |
| wall time of `train` (incl. tokenizer, periodic evaluation) | {s2s_wall:.0f} s | {gpt_wall:.0f} s |
| test BLEU, greedy | **{greedy["bleu"]:.2f}** | **{gpt_scores["bleu"]:.2f}** |
| test chrF, greedy | {greedy["chrf"]:.2f} | {gpt_scores["chrf"]:.2f} |
| test BLEU / chrF, beam search (4) | {beam["bleu"]:.2f} / {beam["chrf"]:.2f} | — |
| test loss (nats per French token, teacher-forced) | {greedy["test_loss"]:.3f} | — |

{verdict}

sacrebleu signature: `{greedy["bleu_signature"]}`; {greedy["test_sentences"]:,} sentences scored.

Examples (seq2seq with beam search 4; GPT greedy):

| English | seq2seq | GPT |
|---|---|---|
{rows}
"""
    if args.budget >= 600:  # only a run at the preset's budget is recorded
        update_results("seq2seq", "Encoder-decoder vs decoder-only GPT on Tatoeba English→French (issue 7)", body)
    print(body)


if __name__ == "__main__":
    main()
