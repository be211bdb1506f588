"""Tiny tune data files and an SFT run made once from the shared debug run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import genloom as gl

FAST = ["train.max_iters=4", "train.eval_interval=2", "train.eval_iters=1", "train.progress=false"]
WORDS = ["to", "be", "or", "not", "the", "and", "king", "queen", "lord", "good", "sir", "man", "love"]


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def tune_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tune_data")
    sft = [{"prompt": f"say {w}", "response": f"{w} {w}?"} for w in WORDS * 2]
    chat = [
        {
            "messages": [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ]
        }
        for r in sft[:6]
    ]
    pairs = [{"prompt": f"say {w}", "chosen": f"{w}?", "rejected": f"{w}."} for w in WORDS * 2]
    return {
        "sft": write_jsonl(d / "sft.jsonl", sft),
        "chat": write_jsonl(d / "chat.jsonl", chat),
        "pairs": write_jsonl(d / "pairs.jsonl", pairs),
    }


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory: pytest.TempPathFactory, trained_run: Path, tune_data: dict[str, Path]) -> Path:
    out = tmp_path_factory.mktemp("tuned") / "sft"
    gl.tune("sft", trained_run, data=tune_data["sft"], out=out, sets=FAST)
    return out
