"""Runs the Python and `bash` blocks of docs/fine-tuning.md, in order, in a scratch directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "fine-tuning.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_fine_tuning_doc_runs(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prepare, api = blocks("python")
    proc = subprocess.run([sys.executable, "-c", prepare], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    (bash,) = blocks("bash")
    outputs = []
    for command in bash.strip().splitlines():
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        proc = subprocess.run(
            [sys.executable, "-m", "genloom", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        outputs.append(proc.stdout)
    assert "val_response_loss" in outputs[1] and "val_pair_accuracy" in outputs[2]
    assert "val_reward_margin" in outputs[3] and "after_val_kl" in outputs[4]
    assert (tmp_path / "runs" / "lora" / "adapters.safetensors").exists()
    assert outputs[6].startswith("<|user|>Translate to French: Thank you.")
    proc = subprocess.run([sys.executable, "-c", api], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "after_val_score" in proc.stdout and proc.stdout.strip().endswith("True")
