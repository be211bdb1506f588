"""Hugging Face `generate` habits: do_sample, num_return_sequences, max_length, stop_strings and
no_repeat_ngram_size, checked against transformers' own processor and against genloom's own options."""

import itertools

import pytest
import torch

from genloom.generation.processors import NoRepeatNGram


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_bans_what_transformers_bans(n):
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

    g = torch.Generator().manual_seed(n)
    tokens = torch.randint(0, 3, (4, 20), generator=g)  # a small vocabulary: many repeats
    logits = torch.randn(4, 3, generator=g)
    ours = NoRepeatNGram(n)(tokens, logits.clone())
    theirs = NoRepeatNGramLogitsProcessor(n)(tokens, logits.clone())
    assert torch.equal(ours.isinf(), theirs.isinf()) and ours.isinf().any()


def test_padding_never_counts_as_a_token():
    tokens = torch.tensor([[9, 9, 1, 2, 1]])  # 9 = the vocabulary size: left padding
    out = NoRepeatNGram(2)(tokens, torch.zeros(1, 9))
    assert out[0].isinf().tolist() == [False, False, True, False, False, False, False, False, False]  # 1 → 2 seen


def test_hf_generate_spellings(trained_run):
    import genloom as gl

    lm = gl.load(trained_run)
    greedy = lm.generate("ROMEO:", max_new_tokens=12, temperature=0)
    assert lm.generate("ROMEO:", max_new_tokens=12, do_sample=False, temperature=0.8) == greedy
    three = lm.generate("ROMEO:", max_new_tokens=12, num_return_sequences=3, seed=4)
    assert isinstance(three, list) and len(three) == 3 and len(set(three)) > 1  # sampled apart
    prompt_len = len(lm.prompt_ids("ROMEO:"))
    (c,) = lm.complete("ROMEO:", max_length=prompt_len + 7, temperature=0, stop_at_eos=False)
    assert len(c.token_ids) == 7
    stop = greedy[3:6]
    assert lm.generate("ROMEO:", max_new_tokens=12, temperature=0, stop_strings=[stop]) == greedy[: greedy.index(stop)]
    unique = lm.complete("ROMEO:", max_new_tokens=40, temperature=0, no_repeat_ngram_size=2, stop_at_eos=False)[0]
    ids = lm.prompt_ids("ROMEO:") + unique.token_ids
    pairs = list(itertools.pairwise(ids))
    assert len(pairs) == len(set(pairs))  # no bigram twice, prompt included
    with pytest.raises(gl.UserError, match="not both"):
        lm.complete("A", max_length=10, max_new_tokens=3)


def test_score_is_the_models_own_likelihood(trained_run):
    import math

    import genloom as gl

    lm = gl.load(trained_run, device="cpu")
    text = "ROMEO: what say you?"
    got = lm.score(text)
    ids = torch.tensor([[*lm.prompt_ids(""), *lm.tokenizer.encode(text)]])
    with torch.no_grad():
        logp = lm.model(ids[:, :-1]).float().log_softmax(-1)[0].gather(1, ids[0, 1:, None])[:, 0]
    assert got["tokens"] == len(text) and got["log_likelihood"] == pytest.approx(float(logp.sum()), rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(-float(logp.mean())), rel=1e-5)
    long = "ROMEO and JULIET: " * 20  # longer than the 32-token context: a sliding window
    windows = lm.score(long, stride=8)
    assert windows["tokens"] == len(long) and math.isfinite(windows["log_likelihood"])
    assert windows["nats_per_token"] < lm.score(long, stride=32)["nats_per_token"]  # more context helps
    with pytest.raises(gl.UserError, match="device 'nope'"):
        gl.load(trained_run, device="nope")
