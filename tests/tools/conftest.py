"""Fixtures of the tool tests: a randomly initialised model over a byte-level BPE, and BFCL's items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from genloom.data.text import DATA_DIR
from genloom.models.gpt.model import GPT, GPTConfig
from genloom.tokenizers import BPETokenizer

BFCL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bfcl"


@pytest.fixture(scope="session")
def bpe() -> BPETokenizer:
    """A small byte-level BPE (every string encodes; `<|endoftext|>` is its end token)."""
    text = (DATA_DIR / "tinyshakespeare" / "input.txt").read_text()[:100_000]
    return BPETokenizer.train([text], vocab_size=600)


@pytest.fixture(scope="session")
def random_model(bpe: BPETokenizer) -> GPT:
    """A model nobody trained: constrained outputs must be valid anyway."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=bpe.vocab_size, block_size=1024, n_layer=1, n_head=2, n_embd=32)
    return GPT(cfg).eval()


@pytest.fixture(scope="session")
def bfcl_dir() -> Path:
    if not (BFCL / "BFCL_v4_simple_python.json").exists():
        pytest.skip(f"BFCL data not found at {BFCL}")
    return BFCL


@pytest.fixture(scope="session")
def bpe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A barely trained GPT over a byte-level BPE (it has an end-of-text token), with a context that fits
    a tools prompt."""
    import genloom as gl

    out = tmp_path_factory.mktemp("runs") / "tools-bpe"
    corpus = out.parent / "corpus.txt"
    corpus.write_text((DATA_DIR / "tinyshakespeare" / "input.txt").read_text()[:200_000])
    sets = ["train.progress=false", "train.max_iters=2", "data.tokenizer=bpe", "data.vocab_size=400"]
    gl.train(
        "gpt",
        out=out,
        data=str(corpus),
        preset="debug",
        sets=[*sets, "model.block_size=4096", "model.pos_encoding=rope"],
    )
    return out


@pytest.fixture(scope="session")
def tools_server(bpe_run: Path) -> Iterator[Any]:
    """A live server on 127.0.0.1 over that run, with an API key."""
    from tests.serve.conftest import API_KEY, start_server

    live = start_server([bpe_run], api_key=API_KEY, max_batch=4, max_queue=8)
    yield live
    live.stop()
