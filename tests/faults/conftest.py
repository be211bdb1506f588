"""Fault injection (issue 13): every case fails cleanly — its exit status, at most three lines of output
and no traceback — and an existing run's files are byte-identical afterwards (sha256 before/after)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from genloom.cli import main

# a tiny, fast run: checkpoints every 2 steps, no samples (their log lines are not what is tested)
TINY = ["train.max_iters=4", "train.eval_interval=2", "train.eval_iters=1", "train.sample_tokens=0"]


def train_args(data: Path | str, out: Path, *extra: str) -> list[str]:
    sets = [a for s in TINY for a in ("--set", s)]
    return ["train", "gpt", "--data", str(data), "--preset", "debug", "--out", str(out), "--no-progress", *sets, *extra]


@dataclass
class Outcome:
    code: int
    output: str  # stdout and stderr together


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    """The CLI in this process (an uncaught exception fails the test with its traceback)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Outcome(code, out + err)


def cli_process(*argv: str, prelude: str = "", user: int | None = None, timeout: float = 120) -> Outcome:
    """The CLI in a fresh interpreter; `prelude` runs first (to inject a fault), `user` drops root."""
    code = f"import sys\n{prelude}\nfrom genloom.cli import main\nsys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def drop() -> None:
        if user is not None:
            os.setgid(user)
            os.setuid(user)

    proc = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        preexec_fn=drop if user is not None else None,
        cwd=Path(__file__).resolve().parents[2],
    )
    return Outcome(proc.returncode, proc.stdout + proc.stderr)


def assert_clean(outcome: Outcome, code: int = 2, *fragments: str) -> None:
    """The exit status, no traceback, at most three lines, and each fragment in the output."""
    assert outcome.code == code, outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    assert len(outcome.output.strip().splitlines()) <= 3, outcome.output
    for fragment in fragments:
        assert fragment in outcome.output, outcome.output


def digest(path: Path) -> dict[str, str]:
    """sha256 of every file under `path` (the writer lock's pid line excluded: it is not run data)."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != "writer.lock"
    }


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory, small_text: Path) -> Path:
    """A finished debug run with a checkpoint, made once; tests copy it (`run`) or only read it."""
    out = tmp_path_factory.mktemp("faults") / "base"
    assert main(train_args(small_text, out)) == 0
    return out


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of `base_run` that a test may break."""
    copy = tmp_path / "run"
    shutil.copytree(base_run, copy)
    return copy


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-conditional GAN on the bundled digits, two steps: enough to load, serve and export."""
    import genloom as gl

    out = tmp_path_factory.mktemp("faults-images") / "digits-gan"
    gl.train("gan", out=out, preset="debug", sets=["train.progress=false", "train.max_iters=2"])
    return out
