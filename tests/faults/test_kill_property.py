"""Issue 13's property: kill -9 at 50 random moments of a training with frequent checkpoints, resume each
time; the final metrics.jsonl has every step exactly once, and its losses equal an unbroken run's.

Each attempt is a forked child of a process that has already imported torch and genloom (a fresh
interpreter would spend ~2 s of every attempt importing), SIGKILLed after a random delay: no Python
handler, `finally` or atexit runs, exactly as with `kill -9`.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import genloom as gl
from genloom import run as rundir
from genloom.errors import UserError

KILLS = 50
STEPS = 200
SETS = [
    f"train.max_iters={STEPS}",
    "train.eval_interval=3",  # a checkpoint every 3 steps
    "train.eval_iters=1",
    "train.sample_tokens=0",
    "train.batch_size=4",
    "train.progress=false",
    "train.threads=1",
    "model.dropout=0.1",  # the RNG state matters to the losses, so its restore is checked too
]


def attempt(out: Path, data: Path) -> None:
    """What a user does after a kill: resume the run if there is one, start it again if it never got
    going, or follow the error's advice (--overwrite) if it stopped while being set up."""
    log = lambda message: None  # noqa: E731
    try:
        if rundir.is_run(out):
            gl.train("gpt", out=out, preset="debug", sets=SETS, resume=True, log=log)
        else:
            gl.train("gpt", out=out, data=str(data), preset="debug", sets=SETS, log=log)
    except UserError as e:
        if "--overwrite" not in str(e):
            raise
        gl.train("gpt", out=out, data=str(data), preset="debug", sets=SETS, overwrite=True, log=log)


def checkpoint_step(out: Path) -> int:
    return int(rundir.load_state(out)["step"]) if (out / rundir.STATE).exists() else 0


def test_fifty_kill_9s_lose_and_duplicate_no_metrics_row(tmp_path, small_text):
    whole = tmp_path / "whole"
    started = time.perf_counter()
    gl.train("gpt", out=whole, data=str(small_text), preset="debug", sets=SETS)
    unbroken = time.perf_counter() - started
    rng = random.Random(13)
    fork = multiprocessing.get_context("fork")
    out = tmp_path / "killed"
    kills = 0
    window = unbroken / 20  # seconds after the start of an attempt in which its kill lands
    while kills < KILLS:
        before = checkpoint_step(out)
        child = fork.Process(target=attempt, args=(out, small_text))
        child.start()
        child.join(timeout=rng.uniform(0.0, window))  # a random moment of the attempt
        if child.exitcode is not None:  # it finished (or failed) before the kill
            assert child.exitcode == 0, f"attempt {kills} failed with status {child.exitcode}"
            break
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join()
        kills += 1
        # keep the kills spread over the whole training: about two steps of progress per attempt
        progress = checkpoint_step(out) - before
        window *= 0.8 if progress > 3 else 1.1 if progress == 0 else 1.0
    print(f"{kills} kills; checkpoint at step {checkpoint_step(out)} of {STEPS} before the last resume")
    attempt(out, small_text)  # the last resume runs to the end
    rows = rundir.read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1)), "every step exactly once"
    assert [(r["train_loss"], r.get("val_loss")) for r in rows] == [
        (r["train_loss"], r.get("val_loss")) for r in rundir.read_metrics(whole)
    ]
    assert kills == KILLS
