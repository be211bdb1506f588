"""End to end on the bundled corpus: the debug preset's loss curve against a recorded one.

The recorded values come from `genloom train gpt --data tinyshakespeare --preset debug` with torch 2.13.0 on
CPU. The tolerance absorbs kernel-level float differences between machines; a real change to the data
pipeline, the model, the initialization or the optimizer moves the curve by far more.
"""

import pytest

import genloom as gl
from genloom import run as rundir

RECORDED = {5: 4.0811, 10: 3.8867, 15: 3.8455, 20: 3.8614}


def test_debug_preset_on_tinyshakespeare_follows_the_recorded_curve(tmp_path):
    out = tmp_path / "run"
    gl.train("gpt", out=out, data="tinyshakespeare", preset="debug", sets=["train.progress=false"])
    losses = {r["step"]: r["train_loss"] for r in rundir.read_metrics(out)}
    for step, expected in RECORDED.items():
        assert losses[step] == pytest.approx(expected, abs=0.02), step
