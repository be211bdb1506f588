"""Benchmark: genloom's `nanogpt-cpu` preset against nanoGPT's own `train.py`, same recipe, side by side.

The recipe is nanoGPT's README CPU command: character-level Tiny Shakespeare (90/10 split), n_layer=4,
n_head=4, n_embd=128, block_size=64, batch_size=12, dropout 0, lr 1e-3 → 1e-4 cosine over 2000 steps
with 100 warmup, AdamW (0.9, 0.99), weight decay 0.1, clip 1.0, eval every 250 steps on 20 batches.

Runs, one after another (never concurrently: two torch processes on 2 cores distort both), repeated
`--rounds` times in alternation so drift hits every contender alike:
  - nanoGPT  : karpathy/nanoGPT `train.py`, fetched outside this repo (`--nanogpt DIR`), run unchanged;
  - genloom-learned-fp32 : our trainer with nanoGPT's exact architecture (learned positions) in fp32;
  - genloom-rope-fp32    : the preset's architecture (RoPE) in fp32;
  - genloom-preset       : the `nanogpt-cpu` preset as shipped: RoPE, bf16 autocast for the matmuls
                           (AVX-512-BF16; fp32 master weights, optimizer state and attention).
Reported: median ms/iteration, training tokens/s, whole-run wall time, validation loss at step 2000
(nanoGPT's 20-batch estimate, and for genloom also the exact loss over the whole validation split), and
peak RSS. The ratio is nanoGPT's median ms/iteration over ours. Results go to bench/RESULTS.md.

    python bench/train_gpt.py --nanogpt ../peers/nanoGPT --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402

CORPUS = REPO / "data" / "tinyshakespeare" / "input.txt"
NANOGPT_ARGS = [
    "config/train_shakespeare_char.py",
    "--device=cpu",
    "--compile=False",
    "--eval_iters=20",
    "--log_interval=1",
    "--block_size=64",
    "--batch_size=12",
    "--n_layer=4",
    "--n_head=4",
    "--n_embd=128",
    "--max_iters=2000",
    "--lr_decay_iters=2000",
    "--dropout=0.0",
]
# A child process that runs a script or module and reports its own peak resident memory.
PEAK_WRAPPER = (
    "import resource, runpy, sys\n"
    "target = sys.argv[1]; sys.argv = sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module(target, run_name='__main__', alter_sys=True) if target == 'genloom' "
    "else runpy.run_path(target, run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)\n"
)


def prepare_nanogpt_data(nanogpt: Path) -> None:
    """Write nanoGPT's shakespeare_char files from our local corpus (its prepare.py downloads)."""
    out = nanogpt / "data" / "shakespeare_char"
    out.mkdir(parents=True, exist_ok=True)
    text = CORPUS.read_text()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    cut = int(len(text) * 0.9)
    np.array([stoi[c] for c in text[:cut]], dtype=np.uint16).tofile(out / "train.bin")
    np.array([stoi[c] for c in text[cut:]], dtype=np.uint16).tofile(out / "val.bin")
    with open(out / "meta.pkl", "wb") as f:  # nanoGPT reads its vocab size from here; we only write it
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)


def run_child(argv: list[str], cwd: Path, log: Path) -> tuple[str, float, float]:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *argv], cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed (exit {proc.returncode}); see {log}")
    peak = float(re.findall(r"PEAK_RSS_KB (\d+)", proc.stdout)[-1]) / 1024
    return proc.stdout, wall, peak


def run_nanogpt(nanogpt: Path, logdir: Path, tag: str) -> dict[str, float]:
    out, wall, peak = run_child(
        ["train.py", *NANOGPT_ARGS, f"--out_dir={logdir / tag}"], nanogpt, logdir / f"{tag}.log"
    )
    times = [float(t) for t in re.findall(r"^iter \d+: loss [\d.]+, time ([\d.]+)ms", out, re.M)]
    val = float(re.findall(r"step 2000: train loss [\d.]+, val loss ([\d.]+)", out)[-1])
    ms = statistics.median(times)
    return {
        "ms_per_iter": ms,
        "tokens_per_s": 12 * 64 / ms * 1000,
        "wall_s": wall,
        "val_estimate": val,
        "peak_rss_mb": peak,
    }


def run_genloom(logdir: Path, tag: str, sets: list[str]) -> dict[str, float]:
    run = logdir / tag
    argv = ["genloom", "train", "gpt", "--preset", "nanogpt-cpu", "--out", str(run), "--overwrite", "--no-progress"]
    argv += [x for s in sets for x in ("--set", s)]
    _, wall, peak = run_child(argv, REPO, logdir / f"{tag}.log")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ms = statistics.median(r["ms"] for r in records)
    val = next(r["val_loss"] for r in records if r["step"] == 2000 and "val_loss" in r)
    exact = subprocess.run(
        [sys.executable, "-m", "genloom", "eval", str(run)], capture_output=True, text=True, check=True
    ).stdout
    val_exact = float(re.findall(r"val loss ([\d.]+)", exact)[0])
    return {
        "ms_per_iter": ms,
        "tokens_per_s": 12 * 64 / ms * 1000,
        "wall_s": wall,
        "val_estimate": val,
        "val_exact": val_exact,
        "peak_rss_mb": peak,
    }


CONTENDERS = {
    "genloom-learned-fp32": ["model.pos_encoding=learned", "train.dtype=float32"],  # nanoGPT's model, fp32
    "genloom-rope-fp32": ["train.dtype=float32"],
    "genloom-preset (rope, bf16)": [],  # nanogpt-cpu exactly as shipped
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--nanogpt", type=Path, required=True, help="a checkout of karpathy/nanoGPT (outside this repo)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of all contenders")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    prepare_nanogpt_data(args.nanogpt)
    results: dict[str, list[dict[str, float]]] = {"nanoGPT": [], **{k: [] for k in CONTENDERS}}
    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp)
        for r in range(args.rounds):
            results["nanoGPT"].append(run_nanogpt(args.nanogpt, logdir, f"nanogpt{r}"))
            print("nanoGPT", results["nanoGPT"][-1], flush=True)
            for name, sets in CONTENDERS.items():
                results[name].append(run_genloom(logdir, f"{name.split()[0]}{r}", sets))
                print(name, results[name][-1], flush=True)
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in results.items()}
    base = med["nanoGPT"]["ms_per_iter"]
    rows = [
        "| run | ms/iter (median) | tokens/s | speed vs nanoGPT | wall time (s) | val loss @2000 (20-batch estimate) | val loss @2000 (exact, whole split) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in med.items():
        exact = f"{m['val_exact']:.4f}" if "val_exact" in m else "n/a (not computed by nanoGPT)"
        rows.append(
            f"| {name} | {m['ms_per_iter']:.2f} | {m['tokens_per_s']:,.0f} | {base / m['ms_per_iter']:.2f}× | "
            f"{m['wall_s']:.0f} | {m['val_estimate']:.4f} | {exact} | {m['peak_rss_mb']:.0f} |"
        )
    import torch

    from genloom.api.runs import machine_info

    cpu = machine_info()["cpu"]

    body = "\n".join(
        [
            f"Command: `python bench/train_gpt.py --nanogpt <nanoGPT checkout> --rounds {args.rounds}` "
            f"(medians over {args.rounds} alternating round(s); each run 2000 iterations, one process at a time).",
            f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} (CPU), {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}. Date: {time.strftime('%Y-%m-%d')}.",
            "",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        update_results("train_gpt", "GPT training vs nanoGPT (issue 2)", body)


if __name__ == "__main__":
    main()
