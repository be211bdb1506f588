"""Shared fixtures: small corpora and one tiny trained run reused by the read-only tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # tests run beside other processes on 2 cores: never oversubscribe

import genloom as gl  # noqa: E402
from genloom.data.text import DATA_DIR  # noqa: E402

SHAKESPEARE = DATA_DIR / "tinyshakespeare" / "input.txt"
FAST = ["train.max_iters=6", "train.eval_interval=3", "train.eval_iters=1", "train.progress=false"]


@pytest.fixture(scope="session")
def small_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 20k characters of Tiny Shakespeare as a user's own file."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(SHAKESPEARE.read_text()[:20_000])
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, small_text: Path) -> Path:
    """A debug-preset run trained once for the tests that only read a run."""
    out = tmp_path_factory.mktemp("runs") / "debug"
    gl.train("gpt", out=out, data=str(small_text), preset="debug", sets=["train.progress=false"])
    return out
