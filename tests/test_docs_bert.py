"""Runs every `bash` block and the Python block of docs/bert.md in a scratch directory."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "bert.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_bert_doc_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = [line for block in blocks("bash") for line in block.strip().splitlines()]
    assert len(commands) == 5
    outputs = []
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        proc = subprocess.run(
            [sys.executable, "-m", "genloom", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        outputs.append(proc.stdout)
    assert outputs[1].startswith("[MASK] #1:") and len(outputs[1].splitlines()) == 6
    assert "masked-token accuracy" in outputs[2]
    assert (tmp_path / "hf" / "bert-debug" / "model.safetensors").exists()
    (python,) = blocks("python")
    proc = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "torch.Size([2, 32])" in proc.stdout
