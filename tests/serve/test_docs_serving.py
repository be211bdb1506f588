"""Runs docs/serving.md: trains the run, starts `genloom serve` as a real process, runs every curl
command and the Python example against it, then stops it with Ctrl-C."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def test_serving_how_to_runs(tmp_path):
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    lines = [line.replace("8000", port) for block in blocks("bash") for line in block.strip().splitlines()]
    train, serve, *curls = lines
    assert shlex.split(train)[:2] == ["genloom", "train"] and shlex.split(serve)[:2] == ["genloom", "serve"]
    argv = [*shlex.split(train)[1:], "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "genloom", *argv], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "genloom", *shlex.split(serve)[1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "genloom serve did not come up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert len(curls) >= 5
        for command in curls:
            argv = shlex.split(command)
            assert argv[0] == "curl"
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, command
            if "stream" in command:  # Server-Sent Events ending in [DONE]
                events = [e for e in out.stdout.split("\n\n") if e]
                assert len(events) >= 2 and events[-1] == "data: [DONE]", out.stdout  # pieces may coalesce
                chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
                assert "".join(c["choices"][0]["text"] for c in chunks) and chunks[-1]["choices"][0]["finish_reason"]
            else:
                body = json.loads(out.stdout)
                assert "error" not in body, out.stdout
        (python,) = blocks("python")
        run = subprocess.run(
            [sys.executable, "-c", python.replace("8000", port)], capture_output=True, text=True, env=env, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert "['shakespeare']" in run.stdout
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn shuts down cleanly
        try:
            server.wait(timeout=20)
        finally:
            if server.poll() is None:
                server.kill()
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""
