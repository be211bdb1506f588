"""The shared loop: schedule, accumulation, exact resume, atomic checkpoints, Ctrl-C."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genloom as gl
from genloom import run as rundir
from genloom.train import TrainConfig, Trainer, lr_at

from ..conftest import FAST


def test_lr_schedule_warmup_cosine_floor():
    cfg = TrainConfig(max_iters=1000, lr=1e-3, min_lr=1e-4, warmup_iters=100)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 101)
    assert lr_at(99, cfg) == pytest.approx(1e-3 * 100 / 101)
    assert lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(550, cfg) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))
    assert lr_at(1000, cfg) == pytest.approx(1e-4)
    assert lr_at(5000, cfg) == 1e-4
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(100, 1000))


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in rundir.read_metrics(run)}


def test_resume_gives_the_same_loss_at_every_later_step(tmp_path, small_text):
    # dropout makes the RNG matter; lr_decay_iters pins the schedule so stopping at 4 changes nothing
    sets = [*FAST, "train.max_iters=8", "train.lr_decay_iters=8", "train.eval_interval=4", "model.dropout=0.1"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    gl.train("gpt", out=whole, data=str(small_text), preset="debug", sets=sets)
    gl.train("gpt", out=part, data=str(small_text), preset="debug", sets=[*sets, "train.max_iters=4"])
    assert max(losses(part)) == 4
    gl.train("gpt", out=part, data=str(small_text), preset="debug", sets=sets, resume=True)
    assert losses(part) == losses(whole)  # exact equality, every step
    assert len(losses(whole)) == 8
    assert torch.equal(
        torch.load(part / rundir.STATE, weights_only=True)["rng_data"],
        torch.load(whole / rundir.STATE, weights_only=True)["rng_data"],
    )


class FixedBatches:
    """A data source returning preset batches, to compare accumulation with one big batch."""

    block_size = 8

    def __init__(self, batches):
        self.batches = list(batches)

    def get_batch(self, split, batch_size, generator):
        return self.batches.pop(0)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    from genloom.models.gpt import GPT, GPTConfig

    x = torch.randint(0, 20, (8, 8))
    y = torch.randint(0, 20, (8, 8))
    results = []
    for accum, batches in ((1, [(x, y)]), (2, [(x[:4], y[:4]), (x[4:], y[4:])])):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
        cfg = TrainConfig(max_iters=1, batch_size=8 // accum, grad_accum=accum, grad_clip=0.0, progress=False)
        trainer = Trainer(model, cfg, FixedBatches(batches), tmp_path)
        trainer.train_step()
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_gradient_clipping_bounds_the_update(tmp_path):
    from genloom.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
    x = torch.randint(0, 20, (4, 8))
    cfg = TrainConfig(max_iters=1, grad_clip=1e-3, progress=False)
    trainer = Trainer(model, cfg, FixedBatches([(x, x)]), tmp_path)
    seen = {}
    orig = trainer.optimizer.step

    def spy(*a, **k):
        seen["norm"] = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
        return orig(*a, **k)

    trainer.optimizer.step = spy
    trainer.train_step()
    assert seen["norm"] == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_kill_during_checkpoint_save_never_breaks_the_run(tmp_path, small_text, monkeypatch, fail_at):
    """Simulate a kill at each rename of a save: the run stays loadable and resumable."""
    out = tmp_path / "run"
    gl.train("gpt", out=out, data=str(small_text), preset="debug", sets=[*FAST, "train.max_iters=3"])
    trainer_state = rundir.load_state(out)
    assert trainer_state["step"] == 3 and rundir.weights_step(out / rundir.WEIGHTS) == 3
    model = gl.load(out).model
    calls = {"n": 0}
    real_replace = os.replace

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        rundir.save_checkpoint(out, model, {**trainer_state, "marker": 1}, step=4)
    monkeypatch.setattr(os, "replace", real_replace)
    rundir.recover(out)
    state_step = rundir.load_state(out)["step"]
    assert rundir.weights_step(out / rundir.WEIGHTS) == state_step == (3 if fail_at == 1 else 4)
    assert not list(out.rglob("*.tmp"))
    gl.load(out)  # still loadable


def test_metrics_lines_have_step_train_loss_and_val_loss_on_eval(trained_run):
    records = [json.loads(line) for line in (trained_run / rundir.METRICS).read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 21))
    assert all(math.isfinite(r["train_loss"]) for r in records)
    assert [r["step"] for r in records if "val_loss" in r] == [10, 20]
    assert records[0]["train_loss"] > records[-1]["train_loss"]


def test_bf16_autocast_trains(tmp_path, small_text):
    out = tmp_path / "bf16"
    result = gl.train("gpt", out=out, data=str(small_text), preset="debug", sets=[*FAST, "train.dtype=bfloat16"])
    assert result.step == 6 and math.isfinite(result.train_loss)


def test_ctrl_c_saves_and_exits_cleanly_then_resumes(tmp_path, small_text):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "genloom",
        "train",
        "gpt",
        "--preset",
        "debug",
        "--data",
        str(small_text),
        "--out",
        str(out),
    ]
    cmd += ["--set", "train.max_iters=100000", "--set", "train.eval_interval=100000", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(rundir.read_metrics(out)) < 5:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopped at step" in stderr
    step = rundir.load_state(out)["step"]
    assert step >= 5 and rundir.weights_step(out / rundir.WEIGHTS) == step
    assert max(r["step"] for r in rundir.read_metrics(out)) == step
    result = gl.train("gpt", out=out, resume=True, sets=[f"train.max_iters={step + 2}", "train.progress=false"])
    assert result.step == step + 2


def test_torch_compile_trains_like_eager(tmp_path, small_text):
    sets = [*FAST, "train.max_iters=3", "train.eval_interval=3"]
    gl.train("gpt", out=tmp_path / "eager", data=str(small_text), preset="debug", sets=sets)
    gl.train("gpt", out=tmp_path / "compiled", data=str(small_text), preset="debug", sets=[*sets, "train.compile=true"])
    eager, compiled = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert eager.keys() == compiled.keys() == {1, 2, 3}
    for step in eager:
        assert compiled[step] == pytest.approx(eager[step], rel=1e-4)
