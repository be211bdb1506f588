"""`gl.demo` and `genloom demo`: the first thing a new user runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from genloom import run as rundir


def demo(
    out: str | Path = "runs/demo", max_iters: int | None = None, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Train the `demo` preset on Tiny Shakespeare (~2 minutes), then sample and evaluate it.

    `max_iters` shortens the run (the preset's 2000 steps take about two minutes on 2 CPU cores)."""
    from genloom.api import evaluate, load, train  # the public API, of which this module is part

    out = Path(out)
    sets = [f"train.max_iters={max_iters}"] if max_iters is not None else []
    result = train(
        "gpt", out=out, data="tinyshakespeare", preset="demo", sets=sets, overwrite=rundir.is_run(out), log=log
    )
    lm = load(out)
    text = lm.generate("ROMEO:\n", max_new_tokens=500, temperature=0.8, top_k=40, seed=7)
    metrics = evaluate(out)
    return {"result": result, "sample": "ROMEO:\n" + text, "metrics": metrics, "run_dir": out}
