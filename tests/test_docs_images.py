"""Runs every `bash` command and the Python blocks of docs/images.md in a scratch directory."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "images.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_images_how_to_runs(tmp_path, tmp_path_factory):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENLOOM_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    commands = [line for block in blocks("bash") for line in block.strip().splitlines()]
    assert len(commands) >= 6
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        if argv[1] == "train":
            argv.append("--no-progress")
        proc = subprocess.run(
            [sys.executable, "-m", "genloom", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    for png in ("vae-threes.png", "diffusion.png", "flow.png"):
        assert (tmp_path / png).stat().st_size > 100
    api, flow = blocks("python")
    proc = subprocess.run([sys.executable, "-c", api], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "torch.Size([8, 1, 8, 8])" in proc.stdout and "fid_floor" in proc.stdout
    assert (tmp_path / "gan-fives.png").exists()
    proc = subprocess.run([sys.executable, "-c", flow], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    bits, shape = proc.stdout.strip().splitlines()
    assert len(bits.split()) == 4 and shape == "torch.Size([4, 1, 8, 8])"
