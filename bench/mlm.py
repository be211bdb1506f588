"""Benchmark (issue 7 bar): held-out masked-token accuracy of the `shakespeare` BERT preset.

Trains `genloom train bert --data tinyshakespeare --preset shakespeare` once (the preset caps the run at
its `train.max_time`), then measures over the WHOLE validation split, every window masked by the BERT
recipe with seed 0 (`genloom eval`): masked-token accuracy and loss. For scale, the same masked positions
are scored by a unigram baseline that always answers the most frequent training token. Fill-mask examples
from the trained model follow. The section `mlm` of bench/RESULTS.md is replaced with the figures.

    python bench/mlm.py --out runs/bench-bert --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402

PROMPTS = [
    "To be or not to [MASK].",
    "O Romeo, Romeo! wherefore art thou [MASK]?",
    "My lord, the [MASK] is come.",
    "I will not [MASK] thee.",
    "Good [MASK], my lord.",
]


def unigram_baseline(run_dir: Path) -> float:
    """Accuracy on the held-out masked positions of always answering the most frequent training token."""
    import torch

    import genloom as gl
    from genloom.api.text import masked_data, prepare_text

    lm = gl.load(run_dir)
    pipe = prepare_text(lm.config, lm.tokenizer)
    data = masked_data(lm.config, pipe)
    counts = torch.bincount(pipe.data.splits["train"], minlength=lm.tokenizer.vocab_size)
    counts[lm.tokenizer.special_ids] = 0
    guess = int(counts.argmax())
    hits = total = 0
    for _, labels in data.windows("val", 64, seed=0):
        chosen = labels != -100
        hits += int((labels[chosen] == guess).sum())
        total += int(chosen.sum())
    return hits / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench-bert", help="run directory (replaced)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--preset", default="shakespeare", help="the bert preset (debug: check this script quickly)")
    args = parser.parse_args()

    import torch

    import genloom as gl

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    sets = [f"train.threads={args.threads}", "train.progress=false"]
    start = time.perf_counter()
    result = gl.train("bert", out=out, data="tinyshakespeare", preset=args.preset, sets=sets, overwrite=out.exists())
    wall = time.perf_counter() - start
    metrics = gl.evaluate(out)
    baseline = unigram_baseline(out)
    lm = gl.load(out)
    assert isinstance(lm, gl.MaskedLanguageModel)
    examples = []
    for prompt in PROMPTS:
        fillers = lm.fill_mask(prompt, top_k=5)[0]
        examples.append(f"| `{prompt}` | " + ", ".join(f"{t} ({p:.2f})" for t, p in fillers) + " |")
    summary = json.loads((out / "summary.json").read_text())
    cpu = summary["training"].get("cpu", platform.processor())
    cfg = lm.config.model
    command = f"python bench/mlm.py --out {args.out} --threads {args.threads} --preset {args.preset}"
    body = f"""
Command: `{command}` (trains `genloom train bert --data tinyshakespeare --preset {args.preset}`, then `genloom eval`).
Machine: {cpu}, torch {torch.__version__}, {args.threads} thread(s), Python {platform.python_version()}. Date: {time.strftime("%Y-%m-%d")}.
The machine was shared with other helpers' test runs while this ran: the time figures are noisy, the accuracy is not.

Model: {cfg.n_layer} layers × {cfg.n_head} heads × {cfg.n_embd} wide, post-norm, {cfg.block_size}-token windows, uncased WordPiece vocabulary of {cfg.vocab_size}, {summary["model"]["parameters"]:,} parameters.
Training: {result.step} steps of {lm.config.train.batch_size} windows in {wall:.0f} s wall ({result.ms_per_iter:.0f} ms/step median){", stopped by the preset's time budget" if result.stopped_by_time else ""}.

| held-out metric (whole validation split, masking seed 0) | value |
|---|---|
| masked-token accuracy | **{metrics["val_masked_accuracy"]:.4f}** |
| masked-token loss (nats) | {metrics["val_masked_loss"]:.4f} |
| masked positions scored | {metrics["val_masked_targets"]:,} |
| unigram baseline accuracy (most frequent training token) | {baseline:.4f} |

Fill-mask examples (top 5 with probabilities):

| text | fillers |
|---|---|
""" + "\n".join(examples)
    if args.preset == "shakespeare":  # only the preset the bar names is recorded
        update_results("mlm", "Masked LM on Tiny Shakespeare (issue 7)", body)
    print(body)


if __name__ == "__main__":
    main()
