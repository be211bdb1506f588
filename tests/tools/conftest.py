"""Fixtures of the tool tests: a randomly initialised model over a byte-level BPE, and BFCL's items."""

from __future__ import annotations

from pathlib import Path

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
