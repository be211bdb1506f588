"""Benchmark (issue 6 bars): translation SFT, reward model, PPO and DPO on a programmatic preference,
and LoRA vs full fine-tuning memory. Figures go to the `tune` section of bench/RESULTS.md.

The chain, one process, one torch thread (the machine is shared with other jobs):
1. Base run: a character-level GPT (4 layers × 128, RoPE, byte fallback) pretrained on the sentences of
   both languages of the Tatoeba *train* split, one sentence per line, never as a translation pair. It
   knows English and French text, not the task.
2. Translation SFT (`genloom tune sft`) on the train pairs ("Translate to French: ..." → French), capped
   at 20 minutes of training. BLEU/chrF (sacrebleu) on the held-out *test* split of data/parallel.py,
   greedy, before (the base run prompted with the same request, as plain role lines) and after.
3. Alignment with a preference a program scores: "the answer ends with a question mark". Pairs are built
   by the program from two sampled answers of the SFT run to train-split prompts (recipes.preference_pairs);
   a reward model is trained on them (held-out pair accuracy); PPO with that reward-model run as reward
   and DPO on the pairs both start from the SFT run. Preferred-rate = share of greedy answers to held-out
   (test-split) prompts that end with "?"; KL to the SFT run is measured on sampled answers.
4. LoRA vs full fine-tuning peak memory (peak RSS of separate `genloom tune` processes) on one larger run.
5. Summarization (not a bar): DialogSum SFT from the base run, ROUGE before/after, short time cap.

    python bench/tune.py --out runs/bench-tune
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402

REWARD = "ends-with-question"
PEAK = (  # run the CLI, then print this process's peak resident memory
    "import sys\nfrom genloom.cli import main\ncode = main(sys.argv[1:])\n"
    "print('VmHWM_KB=' + open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\nsys.exit(code)"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def quiet(msg: str) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench-tune")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every time budget (0.05: a quick check)")
    parser.add_argument("--test-pairs", type=int, default=500)
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    parser.add_argument(
        "--from-stage", type=int, default=1, help="resume the chain at stage 3 (ppo only), 4 or 5, reusing --out"
    )
    parser.add_argument("--stop-after", type=int, default=5, help="end the chain after this stage")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import genloom as gl
    from genloom.tune import recipes as R

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s = args.scale
    figures: dict[str, Any] = {"threads": args.threads, "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    t_start = time.time()
    train, _val, test = R.translation_splits()
    test = test[: args.test_pairs]
    corpus = out / "corpus.txt"
    corpus.write_text(R.monolingual_text(train))

    if args.from_stage > 1:
        figures = json.loads((out / "figures.json").read_text())
        return rest_of_chain(args, out, figures, train, test, t_start)
    # 1. base run
    log("base run: pretraining on monolingual sentences")
    base_sets = [
        "model.n_layer=4", "model.n_head=4", "model.n_embd=128", "model.block_size=128", "model.pos_encoding=rope",
        "data.byte_fallback=true", "train.max_iters=100000", f"train.max_time={420 * s}", "train.batch_size=16",
        "train.lr=2e-3", "train.min_lr=2e-4", "train.warmup_iters=100", "train.lr_decay_iters=3500",
        "train.eval_interval=500", "train.eval_iters=5", "train.dtype=bfloat16", "train.sample_tokens=0", "train.progress=false",
    ]  # fmt: skip
    base = gl.train("gpt", out=out / "base", data=str(corpus), sets=base_sets, overwrite=True, log=quiet)
    figures["base"] = {"steps": base.step, "val_loss": base.val_loss, "seconds": round(base.elapsed_s)}

    # 2. translation SFT
    sft_data = R.write_records(out / "translation_train.jsonl", R.translation_records(train))
    prompts = [R.TRANSLATE + p.source for p in test]
    refs = [p.target for p in test]
    log("BLEU before")
    before = R.bleu_chrf(R.respond(gl.load(out / "base"), prompts), refs)
    log(f"before {before}; translation SFT")
    sft_sets = [
        "train.max_iters=100000", f"train.max_time={1080 * s}", "train.batch_size=16", "train.lr=1e-3", "train.min_lr=1e-4",
        "train.warmup_iters=50", "train.lr_decay_iters=4000", "train.eval_interval=500", "train.eval_iters=5",
        "train.dtype=bfloat16", "train.progress=false", "val_fraction=0.02",
    ]  # fmt: skip
    t0 = time.time()
    sft = gl.tune("sft", out / "base", data=sft_data, out=out / "sft", sets=sft_sets, overwrite=True, log=quiet)
    sft_seconds = time.time() - t0
    sft_lm = gl.load(out / "sft")
    hyps = R.respond(sft_lm, prompts)
    after = R.bleu_chrf(hyps, refs)
    log(f"after {after}")
    figures["translation"] = {
        "before": before, "after": after, "sft_steps": sft.training.step, "sft_train_seconds": round(sft.training.elapsed_s),
        "sft_wall_seconds": round(sft_seconds), "test_pairs": len(test),
        "examples": [{"source": p.source, "reference": p.target, "output": h} for p, h in zip(test[:5], hyps[:5], strict=True)],
    }  # fmt: skip

    save(out, figures, args.no_write)

    rest_of_chain(args, out, figures, train, test, t_start)


def rest_of_chain(
    args: argparse.Namespace, out: Path, figures: dict[str, Any], train: list[Any], test: list[Any], t_start: float
) -> None:
    import genloom as gl
    from genloom.tune import recipes as R

    s = args.scale
    sft_lm = gl.load(out / "sft")
    held_out = [R.TRANSLATE + p.source for p in test[:300]]
    common = ["train.dtype=bfloat16", "train.progress=false", "train.eval_iters=2"]
    corpus = out / "corpus.txt"
    if args.from_stage <= 2:
        alignment = figures["alignment"] = alignment_stage(args, out, train, held_out, sft_lm, common)
    elif args.from_stage == 3:
        alignment = figures["alignment"]
        alignment["ppo"] = ppo_stage(out, s, common, sft_lm, held_out)
    if args.from_stage <= 3:
        save(out, figures, args.no_write)
    if args.stop_after <= 3:
        return

    # 4. LoRA vs full fine-tuning memory, each in its own process. Peak = VmHWM of /proc/self/status
    # (ru_maxrss is not used: on Linux it carries the forking parent's size across exec)
    log("memory: a larger run, full vs LoRA fine-tuning")
    mem_sets = [
        "model.n_layer=8", "model.n_head=8", "model.n_embd=512", "model.block_size=128", "data.byte_fallback=true",
        "train.max_iters=1", "train.eval_iters=1", "train.sample_tokens=0", "train.progress=false",
    ]  # fmt: skip
    gl.train("gpt", out=out / "mem-base", data=str(corpus), sets=mem_sets, overwrite=True, log=quiet)
    small = R.write_records(out / "mem_sft.jsonl", R.translation_records(train[:2000]))
    memory = {}
    for method in ("sft", "lora", "sft", "lora"):  # alternately, twice
        cmd = [sys.executable, "-c", PEAK, "tune", method, str(out / "mem-base"), "--data", str(small),
               "--out", str(out / f"mem-{method}"), "--overwrite", "--no-progress",
               "--set", "train.max_iters=10", "--set", "train.eval_interval=10", "--set", "train.eval_iters=1",
               "--set", "train.batch_size=16", "--set", "lora.r=8", "--set", "lora.target=attn|mlp"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        peak = float(proc.stdout.split("VmHWM_KB=")[1].split()[0]) / 1024
        memory.setdefault(method, []).append(peak)
    params = sum(p.numel() for p in gl.load(out / "mem-base").model.parameters())
    figures["memory"] = {
        "parameters": params,
        "full_peak_rss_mb": min(memory["sft"]),
        "lora_peak_rss_mb": min(memory["lora"]),
    }
    log(f"memory {figures['memory']}")

    save(out, figures, args.no_write)
    if args.stop_after <= 4:
        return

    # 5. summarization (no bar): DialogSum from the base run, short
    log("summarization")
    sum_train = R.write_records(out / "dialogsum_train.jsonl", R.dialogsum("train", 4000))
    sum_test = R.dialogsum("test", 100)
    sum_prompts, sum_refs = [r["prompt"] for r in sum_test], [r["response"] for r in sum_test]
    rouge_before = R.rouge(R.respond(gl.load(out / "base"), sum_prompts, max_new_tokens=80), sum_refs)
    summ = gl.tune(
        "sft", out / "base", data=sum_train, out=out / "summarize", overwrite=True, log=quiet,
        sets=["train.max_iters=100000", f"train.max_time={180 * s}", "train.batch_size=16", "train.lr=1e-3",
              "train.warmup_iters=50", "train.lr_decay_iters=2000", "train.eval_interval=500", "train.eval_iters=2",
              "train.dtype=bfloat16", "train.progress=false", "val_fraction=0.02"],
    )  # fmt: skip
    rouge_after = R.rouge(R.respond(gl.load(out / "summarize"), sum_prompts, max_new_tokens=80), sum_refs)
    figures["summarization"] = {
        "before": rouge_before,
        "after": rouge_after,
        "steps": summ.training.step,
        "test_dialogues": len(sum_test),
    }
    figures["total_seconds"] = round(time.time() - t_start)
    figures["load"] = os.getloadavg()[0]
    save(out, figures, args.no_write)
    log(json.dumps(figures, indent=2))


def alignment_stage(
    args: argparse.Namespace, out: Path, train: list[Any], held_out: list[str], sft_lm: Any, common: list[str]
) -> dict[str, Any]:
    """Stage 3: programmatic pairs, reward model, DPO and PPO from the SFT run."""
    import genloom as gl
    from genloom.tune import recipes as R

    s = args.scale
    log("preference pairs")
    pair_prompts = [R.TRANSLATE + p.source for p in train[:: max(1, len(train) // int(2000 * max(s, 0.05)))]]
    pairs = R.preference_pairs(sft_lm, pair_prompts, REWARD)
    pairs_path = R.write_records(out / "pairs.jsonl", pairs)
    R.write_records(out / "ppo_prompts.jsonl", [{"prompt": p} for p in pair_prompts])
    base_rate = R.preferred_rate(R.respond(sft_lm, held_out), REWARD)
    log(f"{len(pairs)} pairs; SFT preferred-rate {base_rate:.3f}; reward model")
    rm = gl.tune(
        "reward", out / "sft", data=pairs_path, out=out / "reward", overwrite=True, log=quiet,
        sets=[*common, f"train.max_iters={max(4, int(300 * s))}", "train.eval_interval=100", "train.lr=3e-4", "train.batch_size=16"],
    )  # fmt: skip
    log(f"reward {rm.metrics}; DPO")
    dpo = gl.tune(
        "dpo", out / "sft", data=pairs_path, out=out / "dpo", overwrite=True, log=quiet,
        sets=[*common, f"train.max_iters={max(4, int(250 * s))}", "train.eval_interval=100", "train.lr=1e-4", "train.batch_size=8", "beta=0.1"],
    )  # fmt: skip
    lm = gl.load(out / "dpo")
    alignment: dict[str, Any] = {"pairs": len(pairs), "reward_model": rm.metrics, "sft_preferred_rate": base_rate}
    alignment["dpo"] = {
        "preferred_rate": R.preferred_rate(R.respond(lm, held_out), REWARD),
        **R.score_and_kl(lm, sft_lm, held_out, REWARD),
        "training": dpo.metrics,
    }
    log(f"dpo {alignment['dpo']}")
    alignment["ppo"] = ppo_stage(out, s, common, sft_lm, held_out)
    return alignment


PPO_SETS = ["train.eval_interval=50", "train.eval_iters=1", "train.lr=3e-5", "train.batch_size=32", "minibatch_size=16",
            "ppo_epochs=2", "max_new_tokens=48", "kl_coef=0.2", "adaptive_kl=true", "target_kl=6", "kl_horizon=2000",
            "val_fraction=0.05"]  # fmt: skip


def ppo_stage(out: Path, s: float, common: list[str], sft_lm: Any, held_out: list[str]) -> dict[str, Any]:
    """PPO from the SFT run with the reward-model run as reward."""
    import genloom as gl
    from genloom.tune import recipes as R

    log("PPO")
    ppo = gl.tune(
        "ppo", out / "sft", data=out / "ppo_prompts.jsonl", out=out / "ppo", reward=str(out / "reward"), overwrite=True,
        log=quiet, sets=[*common, f"train.max_iters={max(4, int(100 * s))}", *PPO_SETS],
    )  # fmt: skip
    lm = gl.load(out / "ppo")
    result = {
        "preferred_rate": R.preferred_rate(R.respond(lm, held_out), REWARD),
        **R.score_and_kl(lm, sft_lm, held_out, REWARD),
    }
    result["training"] = ppo.metrics
    result["settings"] = " ".join(PPO_SETS)
    log(f"ppo {result}")
    return result


def save(out: Path, figures: dict[str, Any], no_write: bool) -> None:
    """Figures so far to figures.json and (unless no_write) RESULTS.md: a stopped run keeps what it measured."""
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    if not no_write:
        update_results("tune", "Fine-tuning and alignment (issue 6): bench/tune.py", report(figures))


def report(f: dict[str, Any]) -> str:
    lines = [
        "Command: `python bench/tune.py --out runs/bench-tune` (one process, 1 torch thread; the 2-core machine was "
        "shared with other jobs, so wall-clock figures are noisy). Figures: `runs/bench-tune/figures.json`.",
        "",
        "| bar | measured | met? |",
        "|---|---|---|",
    ]
    t = f["translation"]
    gain = t["after"]["bleu"] - t["before"]["bleu"]
    lines += [
        f"| translation SFT: BLEU +5 over the base run within 20 min | BLEU {t['before']['bleu']:.2f} → {t['after']['bleu']:.2f} "
        f"(+{gain:.2f}); chrF {t['before']['chrf']:.1f} → {t['after']['chrf']:.1f}; {t['sft_steps']} steps in {t['sft_train_seconds']} s | {'yes' if gain >= 5 else 'no'} |",
    ]
    a = f.get("alignment")
    if a is None:
        lines.append("| reward model, PPO, DPO | not measured: the run stopped before this stage | no |")
    else:
        sft_rate = a["sft_preferred_rate"]
        lines.append(
            f"| reward model held-out pair accuracy ≥ 90% | {100 * a['reward_model']['val_pair_accuracy']:.1f}% on {a['reward_model']['val_pairs']} held-out pairs | "
            f"{'yes' if a['reward_model']['val_pair_accuracy'] >= 0.9 else 'no'} |"
        )
    for name in ("ppo", "dpo") if a else ():
        d = a[name]
        pts = 100 * (d["preferred_rate"] - sft_rate)
        lines.append(
            f"| {name.upper()}: preferred-rate +30 points over SFT | {100 * sft_rate:.1f}% → {100 * d['preferred_rate']:.1f}% "
            f"({pts:+.1f} points); mean KL to the SFT run {d['kl_to_reference']:.2f} nats/answer | {'yes' if pts >= 30 else 'no'} |"
        )
    m = f.get("memory")
    if m is None:
        lines.append(
            "| LoRA uses less memory than full fine-tuning | not measured: the run stopped before this stage | no |"
        )
    else:
        lines.append(
            f"| LoRA uses less memory than full fine-tuning | peak resident memory (VmHWM) full {m['full_peak_rss_mb']:.0f} MB, LoRA {m['lora_peak_rss_mb']:.0f} MB "
            f"({m['parameters'] / 1e6:.1f}M-parameter run, r=8 on the attention and MLP projections) | {'yes' if m['lora_peak_rss_mb'] < m['full_peak_rss_mb'] else 'no'} |"
        )
    lines += [
        "",
        f"Base run: character-level GPT (4 × 128, RoPE, byte fallback) pretrained {f['base']['steps']} steps "
        f"({f['base']['seconds']} s, val loss {f['base']['val_loss']:.3f}) on the sentences of both languages of the Tatoeba "
        'train split, one per line, never paired. "Before" is that run asked the same request in plain role lines '
        '(`User: Translate to French: ...\\nAssistant:`), greedy, first line; "after" is the SFT run with its chat template. '
        f"Held-out: the first {t['test_pairs']} pairs of the test split of `data/parallel.py`.",
    ]
    if a:
        lines += [
            "",
            f"Alignment: {a['pairs']} pairs built by the program (`ends-with-question`) from two sampled answers of the SFT run; "
            "reward model, PPO (reward = the reward-model run) and DPO all start from the SFT run. Preferred-rate: greedy "
            "answers to 300 held-out test prompts; KL: sampled answers, Σ log π - log π_SFT per answer.",
        ]
    su = f.get("summarization")
    if su:
        lines += [
            "",
            f"Summarization (DialogSum, CC BY-NC-SA 4.0, non-commercial; no bar): ROUGE-1/2/L {su['before']['rouge1']:.1f}/"
            f"{su['before']['rouge2']:.1f}/{su['before']['rougeL']:.1f} → {su['after']['rouge1']:.1f}/{su['after']['rouge2']:.1f}/"
            f"{su['after']['rougeL']:.1f} on {su['test_dialogues']} test dialogues after {su['steps']} SFT steps from the same base run.",
        ]
    if m:
        lines += [
            "",
            "LoRA memory: peak resident memory of separate `genloom tune sft|lora` processes (VmHWM, 2 runs each, "
            "alternately, minimum reported), 10 steps of batch 16 × 128 tokens. Activations dominate at this size; "
            "LoRA's adapted Linear is one autograd node (`LoRAFunction`) that adds its update into the frozen "
            "output in place and saves only the input and a rank-r tensor, so LoRA adds no activation memory and "
            "saves the gradients and AdamW state of every frozen weight.",
        ]
    total = f.get("total_seconds")
    lines += [
        "",
        f"Run: one pass of all five stages started {f.get('started', '?')} UTC"
        + (f", {total / 60:.0f} minutes" if total else "")
        + f", {f.get('threads', 1)} thread(s)"
        + (f"; load average {f['load']:.1f} at the end" if "load" in f else "")
        + " (2 cores: another single-thread job may share the second one).",
        "",
        "Translation examples (test split): "
        + "; ".join(f"`{e['source']}` → `{e['output']}` (ref. `{e['reference']}`)" for e in t["examples"][:3]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
