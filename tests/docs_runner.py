"""Running a doc page's examples the way a reader would: each `genloom` command line of its bash blocks
in a real subprocess, and its Python blocks with `python -c`, all in a scratch directory."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the doc runs share the 2 cores with the rest of the suite


def blocks(doc: str, kind: str) -> list[str]:
    """The code blocks of `docs/<doc>` fenced as `kind` ("bash", "python"), in order."""
    return re.findall(rf"```{kind}\n(.*?)```", (DOCS / doc).read_text(), re.S)


def run_commands(doc: str, cwd: Path) -> list[str]:
    """Run every line of the bash blocks (each a `genloom` command); each must succeed. Their outputs."""
    outputs = []
    for command in [line for block in blocks(doc, "bash") for line in block.strip().splitlines()]:
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        proc = subprocess.run(
            [sys.executable, "-m", "genloom", *argv[1:]], cwd=cwd, capture_output=True, text=True, env=ENV
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        outputs.append(proc.stdout)
    return outputs


def run_python(code: str, cwd: Path) -> str:
    """Run a Python block; it must succeed. Its standard output."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
