"""Runs every `bash` block and every Python block of docs/translation.md in a scratch directory."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "translation.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_translation_doc_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = [line for block in blocks("bash") for line in block.strip().splitlines()]
    assert len(commands) == 4
    outputs = []
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        proc = subprocess.run(
            [sys.executable, "-m", "genloom", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        outputs.append(proc.stdout)
    assert len(outputs[1].splitlines()) == 1 and len(outputs[2].splitlines()) == 1
    assert outputs[3].startswith("BLEU ")
    card = (tmp_path / "runs" / "s2s-debug" / "card.md").read_text()
    assert "CC-BY 2.0 (France)" in card and "bleu" in card  # the bundled data's license, the evaluation
    api, engine = blocks("python")
    proc = subprocess.run([sys.executable, "-c", api], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "'bleu', 'bleu_signature', 'checkpoint', 'chrf'" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", engine], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(",") >= 9  # two rows of five token ids
