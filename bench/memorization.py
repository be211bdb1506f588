"""Benchmark (issue 25, item 2): extractable memorization with and without the regurgitation guard.

The model: a character-level GPT (the `demo` preset's shape: 4 layers, 4 heads, 128 wide, context 128)
trained (batches of 8) on the first `--chars` characters of Tiny Shakespeare for `--seconds` of wall time, a
small corpus on purpose so that it memorizes (the run is kept in `runs/bench-responsible-gpt` and reused).

1. `genloom eval memorization` (Carlini et al. 2021/2023): `--prompts` prefixes of 64 characters drawn from
   the training split, greedy continuation of 64 tokens; counted: continuations that repeat the training
   text after the prefix for >= 50 characters (extractable), and generations holding any span of >= 50
   characters copied verbatim from the training text (index candidates confirmed by exact search).
2. The same prompts with `block_verbatim=50`: the bar is 0 such spans.
3. Overhead: the same decoding (batches of 50 prompts, 64 new tokens) timed with and without the guard,
   alternating, `--rounds` rounds each; and one prompt at a time (batch 1) for a few prompts. The bar is
   <= 10% of decode time.

    OMP_NUM_THREADS=1 python bench/memorization.py --prompts 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import update_results

RUN = Path(__file__).resolve().parents[1] / "runs" / "bench-responsible-gpt"  # runs/ is not in git


def corpus_of(run: Path) -> Path:
    """The text file a bench run trained on (beside it)."""
    return run.parent / f"{run.name}-corpus.txt"


def train_run(out: Path, chars: int, seconds: float, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Train (once) the small character-level GPT the responsible-generation benches use."""
    import genloom as gl
    from genloom.data.text import DATA_DIR

    corpus = corpus_of(out)
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text((DATA_DIR / "tinyshakespeare" / "input.txt").read_text()[:chars])
    if (out / "model.safetensors").exists() and (out / "memorization" / "ngrams.npy").exists():
        return out
    t0 = time.perf_counter()
    gl.train(
        "gpt",
        out=out,
        data=str(corpus),
        preset="demo",
        sets=[
            "train.max_iters=100000",
            f"train.max_time={seconds}",
            "train.batch_size=8",
            "train.eval_interval=500",
            "train.lr_decay_iters=4000",
            "train.threads=1",
            "train.progress=false",
            "train.sample_tokens=0",
        ],
        overwrite=True,
    )
    log(f"trained {out} in {time.perf_counter() - t0:.0f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--chars", type=int, default=12_000, help="training characters (small: it memorizes)")
    parser.add_argument("--seconds", type=float, default=240.0, help="training wall time")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per setting")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    import genloom as gl
    from genloom.api.responsible import load_index

    run = train_run(RUN, args.chars, args.seconds)
    summary = gl.load(run).config
    settings = {"n_prompts": args.prompts, "prefix_chars": 64, "min_chars": 50, "max_new_tokens": 64}
    t0 = time.perf_counter()
    without = gl.evaluate(run, probe="memorization", **settings)
    t_without = time.perf_counter() - t0
    load_a = os.getloadavg()[0]
    t0 = time.perf_counter()
    with_guard = gl.evaluate(run, probe="memorization", block_verbatim=50, **settings)
    t_with = time.perf_counter() - t0
    load_b = os.getloadavg()[0]
    print(without.line)
    print(with_guard.line)

    # decode-time overhead: the same prompts and settings, with and without the guard, alternating rounds
    lm = gl.load(run)
    text = corpus_of(run).read_text()
    step = max(1, (len(text) - 200) // 200)
    prompts = [text[i : i + 64] for i in range(0, len(text) - 200, step)][:200]
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for name, guard in (("off", 0), ("on", 50)):
            t0 = time.perf_counter()
            for i in range(0, len(prompts), 50):
                lm.complete(prompts[i : i + 50], max_new_tokens=64, temperature=0.0, block_verbatim=guard)
            times[name].append(time.perf_counter() - t0)
    single: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for name, guard in (("off", 0), ("on", 50)):
            t0 = time.perf_counter()
            for p in prompts[:10]:
                lm.complete(p, max_new_tokens=64, temperature=0.0, block_verbatim=guard)
            single[name].append(time.perf_counter() - t0)
    load_c = os.getloadavg()[0]
    med = {k: statistics.median(v) for k, v in times.items()}
    med1 = {k: statistics.median(v) for k, v in single.items()}
    overhead = med["on"] / med["off"] - 1
    overhead1 = med1["on"] / med1["off"] - 1
    tokens = len(prompts) * 64
    index = load_index(run, "the bench")
    zero = with_guard["verbatim_generations"] == 0
    m = summary.model
    body = "\n".join(
        [
            f"`OMP_NUM_THREADS=1 python bench/memorization.py --prompts {args.prompts} --chars {args.chars} "
            f"--seconds {args.seconds:g}` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
            f"shared, one thread; load average {load_a:.2f} after the unguarded evaluation, {load_b:.2f} after the "
            f"guarded one, {load_c:.2f} after the timing.",
            "",
            f"Model: character-level GPT ({m.n_layer} layers × {m.n_head} heads × {m.n_embd}, context "
            f"{m.block_size}) trained on the first {args.chars:,} characters of Tiny Shakespeare for "
            f"{args.seconds:g} s (small on purpose, so that it memorizes). Index: {len(index):,} distinct "
            f"{index.order}-byte n-grams of the training split (`RUN/memorization/ngrams.npy`, 8 bytes each).",
            "",
            "| setting | extractable (>= 50 chars of the true continuation) | generations with a >= 50-char training span | spans | longest span | evaluation time |",
            "|---|---|---|---|---|---|",
            f"| no guard | {without['extractable']} ({without['extractable_rate']:.1%}) | "
            f"{without['verbatim_generations']} ({without['verbatim_rate']:.1%}) | {without['verbatim_spans']} | "
            f"{without['longest_verbatim_chars']} | {t_without:.1f} s |",
            f"| `block_verbatim=50` | {with_guard['extractable']} ({with_guard['extractable_rate']:.1%}) | "
            f"{with_guard['verbatim_generations']} ({with_guard['verbatim_rate']:.1%}) | {with_guard['verbatim_spans']} | "
            f"{with_guard['longest_verbatim_chars']} | {t_with:.1f} s |",
            "",
            f"{args.prompts:,} prompts: training prefixes of 64 characters, greedy, 64 new tokens. Spans are "
            "confirmed by exact search in the training text.",
            "",
            f"Decode-time overhead of the guard (200 prompts in batches of 50, 64 tokens each = {tokens:,} tokens, "
            f"median of {args.rounds} alternating rounds): {med['off']:.2f} s without, {med['on']:.2f} s with "
            f"= {overhead:+.1%}; one prompt at a time (10 prompts): {med1['off']:.2f} s vs {med1['on']:.2f} s = "
            f"{overhead1:+.1%}.",
            "",
            f"Bars: 0 spans of >= 50 verbatim training characters with the guard: "
            f"{with_guard['verbatim_generations']} generations ({'met' if zero else 'NOT met'}); without it "
            f"{without['verbatim_generations']}. Overhead <= 10%: batched {overhead:+.1%} "
            f"({'met' if overhead <= 0.10 else 'NOT met'}), single {overhead1:+.1%} "
            f"({'met' if overhead1 <= 0.10 else 'NOT met'}).",
        ]
    )
    print(body)
    if not args.no_write:
        update_results("memorization", "Regurgitation guard and extractable memorization (issue 25)", body)


if __name__ == "__main__":
    main()
