"""Continuous batching: rows that join and leave a running batch get exactly their tokens alone."""

import dataclasses

import pytest
import torch

import genloom as gl
from genloom.api.text import generation_config
from genloom.errors import UserError
from genloom.generation.continuous import ContinuousBatcher

REQUESTS = [
    ("ROMEO:", {"max_new_tokens": 20, "temperature": 0.9, "seed": 1}),
    ("First Citizen:\nWe", {"max_new_tokens": 12, "temperature": 0, "repetition_penalty": 1.3}),
    ("A", {"max_new_tokens": 30, "top_k": 5, "seed": 3, "frequency_penalty": 0.5, "logprobs": True, "top_logprobs": 2}),
    ("What", {"max_new_tokens": 25, "top_p": 0.8, "seed": 4, "stop": ["e"], "logit_bias": {3: 2.0}}),
    ("To be", {"max_new_tokens": 26, "min_p": 0.1, "seed": 5, "presence_penalty": 0.7}),
    ("O", {"max_new_tokens": 31, "temperature": 1.3, "seed": 6}),
    # rows with equal settings share one (G, V) block of processors: each must still get its own tokens
    ("I", {"max_new_tokens": 18, "temperature": 0.9, "seed": 7}),
    ("We", {"max_new_tokens": 22, "temperature": 0.9, "seed": 8}),
    ("The", {"max_new_tokens": 10, "temperature": 0}),
    ("And", {"max_new_tokens": 14, "temperature": 0}),
    ("So", {"max_new_tokens": 16, "temperature": 0.7, "top_k": 5, "top_p": 0.9, "seed": 9}),
    ("Is", {"max_new_tokens": 20, "temperature": 0.7, "top_k": 5, "top_p": 0.9, "seed": 10}),
]


def run_staggered(lm, batcher, requests, join_every):
    """Add one request every `join_every` steps while stepping the batch; returns rows and streamed texts."""
    rows, texts, pending, step = {}, {}, list(requests), 0
    while pending or batcher.rows:
        if pending and step % join_every == 0 and batcher.free > 0:
            prompt, options = pending.pop(0)
            rows[prompt] = batcher.add(lm.prompt_ids(prompt), generation_config(**options))
            texts[prompt] = ""
        for row, piece in batcher.step():
            (key,) = [k for k, r in rows.items() if r is row]
            texts[key] += piece
        step += 1
    return rows, texts


@pytest.mark.parametrize("join_every,max_batch", [(1, 12), (3, 4), (7, 2)])
def test_rows_joining_and_leaving_get_their_tokens_alone(trained_run, join_every, max_batch):
    lm = gl.load(trained_run)
    batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=max_batch)
    rows, texts = run_staggered(lm, batcher, REQUESTS, join_every)
    assert batcher.rows == [] and batcher.cache is None
    for prompt, options in REQUESTS:
        alone = lm.complete(prompt, **options)[0]
        got = rows[prompt].completion()
        assert got.token_ids == alone.token_ids, prompt
        assert got.text == alone.text == texts[prompt]  # streamed pieces add up to the text
        assert got.finish_reason == alone.finish_reason
        if options.get("logprobs"):
            assert [t.token for t in got.logprobs] == [t.token for t in alone.logprobs]
            assert torch.allclose(
                torch.tensor([t.logprob for t in got.logprobs]),
                torch.tensor([t.logprob for t in alone.logprobs]),
                atol=1e-4,
            )


def test_the_shared_cache_compacts_and_never_outgrows_the_context(trained_run):
    lm = gl.load(trained_run)
    block = lm.model.config.block_size
    batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=2)
    lengths, added = [], 0
    # short and long rows alternate, so rows overlap in time and the shared slots would outgrow the
    # context without compaction
    while added < 6 or batcher.rows:
        if added < 6 and batcher.free:
            batcher.add(
                lm.prompt_ids("The"), generation_config(max_new_tokens=10 if added % 2 else block - 3, seed=added)
            )
            added += 1
        batcher.step()
        lengths.append(batcher.cache.length if batcher.cache is not None else 0)
    assert max(lengths) <= block
    assert len(lengths) > 2 * block  # many more steps than slots: compaction kept it within the context


def test_the_shared_cache_holds_what_the_rows_can_use_not_the_whole_context(trained_run):
    """Keys and values are allocated for the rows' tokens plus the most any may still produce (16 rows of
    SmolLM2 at its 8k context would otherwise hold 6 GB); rows joining later still get their tokens alone."""
    from genloom.models.gpt import GPT, GPTConfig

    lm = gl.load(trained_run)
    torch.manual_seed(0)  # a long context, as a pretrained model has
    cfg = GPTConfig(vocab_size=lm.model.config.vocab_size, block_size=1024, n_layer=2, n_head=2, n_embd=32)
    lm.model = GPT(dataclasses.replace(cfg, pos_encoding="rope")).eval()
    batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=4)
    rows, most = [], 0
    for k, (prompt, n) in enumerate([("ROMEO:", 12), ("First Citizen:\nWe", 20), ("O", 6)]):
        rows.append((prompt, n, batcher.add(lm.prompt_ids(prompt), generation_config(max_new_tokens=n, seed=k))))
        for _ in range(3):
            batcher.step()
            most = max(most, batcher.cache.max_len if batcher.cache is not None else 0)
    while batcher.rows:
        batcher.step()
        most = max(most, batcher.cache.max_len if batcher.cache is not None else 0)
    longest = max(len(lm.prompt_ids(p)) + n for p, n, _ in rows)
    assert most <= longest + 20 + 6  # spans (rows joined later sit further right) plus tokens to come
    assert most < 1024 // 8
    for k, (prompt, n, row) in enumerate(rows):
        assert row.completion().token_ids == lm.complete(prompt, max_new_tokens=n, seed=k)[0].token_ids


def test_cancelled_rows_leave_and_bad_requests_are_refused(trained_run):
    lm = gl.load(trained_run)
    batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=2)
    a = batcher.add(lm.prompt_ids("A"), generation_config(max_new_tokens=20, seed=0))
    b = batcher.add(lm.prompt_ids("B"), generation_config(max_new_tokens=20, seed=1))
    assert batcher.free == 0
    batcher.step()
    a.cancelled = True
    events = batcher.step()
    assert a.finish_reason == "cancelled" and len(a.ids) == 1 and batcher.rows == [b]
    assert [r for r, _ in events] == [a, b]
    block = lm.model.config.block_size
    with pytest.raises(UserError, match="context"):
        batcher.check(lm.prompt_ids("A"), generation_config(max_new_tokens=block))
    with pytest.raises(UserError, match="logit_bias"):
        batcher.check(lm.prompt_ids("A"), generation_config(max_new_tokens=2, logit_bias={10_000: 1.0}))
    zero = batcher.add(lm.prompt_ids("A"), generation_config(max_new_tokens=0)) if batcher.free else None
    assert zero is not None and zero.finish_reason == "length" and zero not in batcher.rows


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope", "alibi"])
@pytest.mark.parametrize("n_kv_head", [None, 2])
def test_every_positional_encoding_and_gqa_survive_joining_and_compaction(pos, n_kv_head):
    from genloom.generation import GenerationConfig, complete
    from genloom.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=61, block_size=24, n_layer=2, n_head=4, n_kv_head=n_kv_head, n_embd=32, pos_encoding=pos)
    model = GPT(cfg).eval()

    def decode(ids):
        return "".join(chr(65 + i) for i in ids)

    prompts = [[(7 * i + j) % 61 for j in range(1 + 3 * i % 9)] for i in range(8)]
    configs = [
        GenerationConfig(max_new_tokens=24 - len(p) - i % 3, temperature=0.8 + 0.1 * (i % 2), seed=i)
        for i, p in enumerate(prompts)
    ]
    batcher = ContinuousBatcher(model, decode, None, max_batch=3)
    rows, pending = [], list(zip(prompts, configs, strict=True))
    while pending or batcher.rows:
        while pending and batcher.free:
            rows.append(batcher.add(*pending.pop(0)))
        batcher.step()
    for row, prompt, cfg_ in zip(rows, prompts, configs, strict=True):
        assert row.ids == complete(model, [prompt], cfg_, decode)[0].token_ids
