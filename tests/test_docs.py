"""Runs every `bash` block of docs/train-your-own-text.md, and its Python block, in a scratch directory."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .conftest import SHAKESPEARE

DOC = Path(__file__).resolve().parents[1] / "docs" / "train-your-own-text.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_how_to_commands_run(tmp_path):
    text = SHAKESPEARE.read_text()[:60_000]
    (tmp_path / "my_texts" / "act1").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "my_texts" / "act1" / f"part{i}.txt").write_text(text[i * 20_000 : (i + 1) * 20_000])
    (tmp_path / "my_texts" / "README.md").write_text("not a text file of the corpus")
    paragraphs = [p for p in text.split("\n\n") if p.strip()][:300]
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps({"body": p}) + "\n" for p in paragraphs))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = [line for block in blocks("bash") for line in block.strip().splitlines()]
    assert len(commands) >= 5
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        proc = subprocess.run(
            [sys.executable, "-m", "genloom", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    assert (tmp_path / "runs" / "mine" / "card.md").exists()
    assert max(json.loads(x)["step"] for x in (tmp_path / "runs/mine/metrics.jsonl").read_text().splitlines()) == 30
    (python,) = blocks("python")
    proc = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) > 0
