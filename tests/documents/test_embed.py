"""all-MiniLM-L6-v2 loaded by genloom embeds as sentence-transformers does; the fast path keeps cosine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import genloom as gl

TEXTS = [
    "A man is eating food.",
    "The new movie is awesome.",
    "Glaciers in the Alps lost a tenth of their ice in two years.",
    "short",
    "Rotate the API keys every 90 days; old keys stop working one hour after a rotation. " * 12,  # > 256 tokens
    "Café prices rose 3.5% in Zürich — naïve estimates said otherwise.",
] + [f"Sentence {i} about proteins, cells and the immune response in mice." * (1 + i % 4) for i in range(14)]


def test_parity_with_sentence_transformers(minilm: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm), device="cpu").encode(TEXTS, convert_to_numpy=True)
    ours = gl.load(minilm).embed(TEXTS).numpy()
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999


def test_length_sorted_batches_return_vectors_in_input_order(minilm: Path) -> None:
    model = gl.load(minilm)
    batched = model.embed(TEXTS, batch_size=4, dtype=torch.bfloat16)  # sorted by length inside
    alone = torch.cat([model.embed([t]) for t in TEXTS])
    similarity = batched @ alone.T  # each vector is nearest to its own text's
    assert torch.equal(similarity.argmax(dim=1), torch.arange(len(TEXTS)))
    assert torch.diagonal(similarity).min() >= 0.999


def test_bf16_keeps_cosine_to_fp32(minilm: Path) -> None:
    model = gl.load(minilm)
    fp32 = model.embed(TEXTS)
    bf16 = model.embed(TEXTS, dtype=torch.bfloat16)
    cosine = torch.nn.functional.cosine_similarity(fp32, bf16)
    assert cosine.min() >= 0.999
