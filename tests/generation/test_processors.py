"""Each logits processor against its `transformers` counterpart on random logits; the order and the
"a neutral setting adds nothing" rule."""

import pytest
import torch
from transformers.generation import logits_process as hf

from genloom.generation import GenerationConfig
from genloom.generation.processors import (
    BannedTokens,
    FrequencyPresencePenalty,
    LogitBias,
    MinP,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    build_processors,
)

V = 50


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, V, (4, 12), generator=g)
    logits = torch.randn(4, V, generator=g) * 3
    return tokens, logits


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (RepetitionPenalty(1.3), hf.RepetitionPenaltyLogitsProcessor(1.3)),
        (RepetitionPenalty(0.7), hf.RepetitionPenaltyLogitsProcessor(0.7)),
        (Temperature(0.7), hf.TemperatureLogitsWarper(0.7)),
        (TopK(5), hf.TopKLogitsWarper(5)),
        (TopP(0.8), hf.TopPLogitsWarper(0.8)),
        (TopP(0.3), hf.TopPLogitsWarper(0.3)),
        (MinP(0.1), hf.MinPLogitsWarper(0.1)),
        (LogitBias({3: 2.0, 7: -1.5}, V), hf.SequenceBiasLogitsProcessor([[[3], 2.0], [[7], -1.5]])),
        (BannedTokens([3, 9], V), hf.NoBadWordsLogitsProcessor([[3], [9]])),
    ],
    ids=lambda p: type(p).__name__,
)
def test_matches_transformers(data, ours, theirs):
    tokens, logits = data
    expected = theirs(tokens, logits.clone())
    got = ours(tokens, logits.clone())
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    finite = torch.isfinite(expected)
    assert torch.allclose(got[finite], expected[finite], atol=1e-6)
    assert not torch.equal(got, logits)  # each one really changes something on these logits


def test_frequency_and_presence_penalties_follow_their_definition(data):
    tokens, logits = data
    got = FrequencyPresencePenalty(0.5, 0.25)(tokens, logits)
    expected = logits.clone()
    for b in range(tokens.shape[0]):
        for t in tokens[b].tolist():
            expected[b, t] -= 0.5
        for t in set(tokens[b].tolist()):
            expected[b, t] -= 0.25
    assert torch.allclose(got, expected, atol=1e-6)


def test_padding_ids_count_as_nothing(data):
    tokens, logits = data
    padded = torch.cat((torch.full((4, 5), V), tokens), dim=1)  # id V marks padding
    for proc in (RepetitionPenalty(1.5), FrequencyPresencePenalty(1.0, 1.0)):
        assert torch.equal(proc(padded, logits), proc(tokens, logits))


def test_neutral_settings_add_no_processor_and_order_is_fixed():
    assert build_processors(GenerationConfig(), V) == ([], [])
    cfg = GenerationConfig(
        temperature=0.5,
        top_k=3,
        top_p=0.9,
        min_p=0.1,
        repetition_penalty=1.2,
        frequency_penalty=0.1,
        logit_bias={1: 1.0},
        banned_tokens=(2,),
    )
    edits, warpers = build_processors(cfg, V)
    assert [type(p) for p in edits] == [RepetitionPenalty, FrequencyPresencePenalty, LogitBias, BannedTokens]
    assert [type(p) for p in warpers] == [Temperature, TopK, TopP, MinP]
    assert build_processors(GenerationConfig(temperature=0, top_k=3), V)[1] == []  # greedy: no warpers
    assert build_processors(GenerationConfig(top_k=V + 5), V)[1] == []  # k ≥ vocabulary keeps everything
