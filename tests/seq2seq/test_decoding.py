"""Encoder-decoder models decode through the generation engine itself: greedy equals a naive loop,
beam search finds the exhaustive optimum, and the engine's processors and seeded sampling apply."""

import itertools

import torch

from genloom.generation import GenerationConfig, complete
from genloom.models.seq2seq import Seq2Seq, Seq2SeqConfig

V = 6  # small enough to enumerate every 3-token target
START = 0


def tiny() -> Seq2Seq:
    torch.manual_seed(3)
    cfg = Seq2SeqConfig(vocab_size=V, block_size=12, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return Seq2Seq(cfg).eval()


def decode(ids: list[int]) -> str:
    return "".join(chr(97 + i) for i in ids)


SRC = torch.tensor([[1, 4, 2, 5, 3]])


@torch.no_grad()
def naive_greedy(model: Seq2Seq, src: torch.Tensor, n: int) -> list[int]:
    """Reference: the whole target prefix through the full model at every step, no cache."""
    tgt = torch.tensor([[START]])
    for _ in range(n):
        tgt = torch.cat((tgt, model(src, tgt)[:, -1].argmax(-1, keepdim=True)), dim=1)
    return tgt[0, 1:].tolist()


@torch.no_grad()
def sequence_logprob(model: Seq2Seq, src: torch.Tensor, tokens: list[int]) -> float:
    logp = model(src, torch.tensor([[START, *tokens[:-1]]])).log_softmax(-1)[0]  # (T, V)
    return float(sum(logp[t, tok] for t, tok in enumerate(tokens)))


def test_greedy_through_the_engine_equals_a_naive_loop():
    model = tiny()
    cfg = GenerationConfig(max_new_tokens=8, temperature=0.0)
    src = torch.cat((SRC, torch.tensor([[2, 2, 1, 0, 0]])))
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    got = complete(model.bind(src, mask), [[START], [START]], cfg, decode, None)
    assert got[0].token_ids == naive_greedy(model, SRC, 8)
    assert got[1].token_ids == naive_greedy(model, src[1:, :3], 8)  # padding of a batch changes nothing
    assert got[0].text == decode(got[0].token_ids) and got[0].finish_reason == "length"


def test_beam_search_through_the_engine_finds_the_exhaustive_optimum():
    model = tiny()
    n = 3
    best = max(itertools.product(range(V), repeat=n), key=lambda seq: sequence_logprob(model, SRC, list(seq)))
    cfg = GenerationConfig(max_new_tokens=n, num_beams=V * V, temperature=0.0)  # wide enough to be exact
    (beam,) = complete(model.bind(SRC), [[START]], cfg, decode, None)
    assert beam.token_ids == list(best)
    greedy = naive_greedy(model, SRC, n)
    assert sequence_logprob(model, SRC, beam.token_ids) >= sequence_logprob(model, SRC, greedy)


def test_beam_search_stops_at_end_of_text():
    model = tiny()
    eos = naive_greedy(model, SRC, 1)[0]  # the most likely first token, made end-of-text
    cfg = GenerationConfig(max_new_tokens=6, num_beams=3, temperature=0.0, early_stopping=True)
    (beam,) = complete(model.bind(SRC), [[START]], cfg, decode, eos)
    assert eos not in beam.token_ids and beam.finish_reason in ("eos", "length")


def test_processors_and_seeded_sampling_apply():
    model = tiny()
    first = naive_greedy(model, SRC, 1)[0]
    banned = GenerationConfig(max_new_tokens=8, temperature=0.0, banned_tokens=(first,))
    (out,) = complete(model.bind(SRC), [[START]], banned, decode, None)
    assert first not in out.token_ids
    sample = GenerationConfig(max_new_tokens=8, temperature=1.5, seed=11)
    a = complete(model.bind(SRC), [[START]], sample, decode, None)[0].token_ids
    b = complete(model.bind(SRC), [[START]], sample, decode, None)[0].token_ids
    c = complete(model.bind(SRC), [[START]], GenerationConfig(max_new_tokens=8, temperature=1.5, seed=12), decode, None)
    assert a == b and len(a) == 8
    assert a != c[0].token_ids  # another seed, another draw
