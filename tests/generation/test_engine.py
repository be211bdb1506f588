"""The decoding engine: KV cache == full forward, batched == one by one, every positional encoding,
stop strings, streaming with split UTF-8 characters, log-probabilities, context overflow, bad input."""

import pytest
import torch

import genloom as gl
from genloom.errors import UserError
from genloom.generation import GenerationConfig, complete, stream
from genloom.generation.text import REPLACEMENT, TextAssembler
from genloom.models.gpt import GPT, GPTConfig
from genloom.tokenizers import BPETokenizer, CharTokenizer

POSITIONS = ["learned", "sinusoidal", "rope", "alibi"]
V = 61


def tiny(pos: str = "learned", **kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, n_embd=32, pos_encoding=pos) | kw
    return GPT(GPTConfig(**cfg)).eval()


def decode(ids: list[int]) -> str:
    return "".join(chr(65 + i) for i in ids)


def naive_greedy(model: GPT, prompt: list[int], n: int) -> list[int]:
    """Reference: the full context through the model at every step, no cache."""
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(n):
            ids = torch.cat((ids, model(ids)[:, -1].argmax(-1, keepdim=True)), dim=1)
    return ids[0, len(prompt) :].tolist()


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("n_kv_head", [None, 2])
def test_kv_cache_incremental_equals_full_forward(pos, n_kv_head):
    model = tiny(pos, n_kv_head=n_kv_head)
    x = torch.randint(0, V, (3, 20))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(3, 20)
        parts = [model(x[:, :7], cache=cache), model(x[:, 7:12], cache=cache)]  # prefill, then a chunk
        parts += [model(x[:, t : t + 1], cache=cache) for t in range(12, 20)]  # then one token at a time
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)
    assert cache.length == 20 and cache.k[0].shape == (3, n_kv_head or 4, 20, 8)


@pytest.mark.parametrize("pos", POSITIONS)
def test_left_padded_rows_get_their_own_logits(pos):
    model = tiny(pos)
    a, b = torch.randint(0, V, (1, 9)), torch.randint(0, V, (1, 4))
    batch = torch.cat((a, torch.cat((torch.zeros(1, 5, dtype=torch.long), b), dim=1)))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, :5] = False
    with torch.no_grad():
        cache = model.new_cache(2, 12)
        logits = model(batch, cache=cache, attention_mask=mask)
        step = model(torch.tensor([[3], [5]]), cache=cache)  # a decode step after the padded prefill
        alone_a = model(torch.cat((a, torch.tensor([[3]])), dim=1))
        alone_b = model(torch.cat((b, torch.tensor([[5]])), dim=1))
    assert torch.allclose(logits[0], alone_a[0, :9], atol=1e-5)
    assert torch.allclose(logits[1, 5:], alone_b[0, :4], atol=1e-5)
    assert torch.allclose(step[0, 0], alone_a[0, -1], atol=1e-5)
    assert torch.allclose(step[1, 0], alone_b[0, -1], atol=1e-5)


@pytest.mark.parametrize("pos", POSITIONS)
def test_greedy_matches_the_uncached_loop_and_batched_matches_one_by_one(pos):
    model = tiny(pos)
    prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [10, 11, 12]]
    cfg = GenerationConfig(max_new_tokens=12, temperature=0, stop_at_eos=False)
    batched = complete(model, prompts, cfg, decode)
    for p, c in zip(prompts, batched, strict=True):
        assert c.token_ids == naive_greedy(model, p, 12)
        assert c.token_ids == complete(model, [p], cfg, decode)[0].token_ids
        assert c.finish_reason == "length" and c.text == decode(c.token_ids)


def test_each_row_stops_independently():
    model = tiny()
    prompts = [[1, 2, 3], [4, 5]]
    greedy = GenerationConfig(max_new_tokens=10, temperature=0)
    first = complete(model, prompts, greedy, decode)
    eos = first[0].token_ids[-1]  # row 0 ends at the first time it produces this token
    out = complete(model, prompts, greedy, decode, eos_id=eos)
    expect_a = first[0].token_ids[: first[0].token_ids.index(eos)]
    assert out[0].finish_reason == "eos" and out[0].token_ids == expect_a
    expect_b = first[1].token_ids
    if eos in expect_b:
        expect_b = expect_b[: expect_b.index(eos)]
    assert out[1].token_ids == expect_b
    assert [c.finish_reason for c in out] == ["eos", "eos" if eos in first[1].token_ids else "length"]


def test_seed_makes_sampling_reproducible_and_processors_apply():
    model = tiny()
    cfg = GenerationConfig(max_new_tokens=20, temperature=1.3, top_k=20, top_p=0.9, min_p=0.05, seed=3)
    a = complete(model, [[1, 2]], cfg, decode)[0].token_ids
    b = complete(model, [[1, 2]], cfg, decode)[0].token_ids
    c = complete(model, [[1, 2]], GenerationConfig(max_new_tokens=20, temperature=1.3, seed=4), decode)[0].token_ids
    assert a == b and a != c
    banned = complete(
        model, [[1, 2]], GenerationConfig(max_new_tokens=30, seed=1, banned_tokens=tuple(range(30))), decode
    )
    assert all(t >= 30 for t in banned[0].token_ids)
    forced = complete(model, [[1, 2]], GenerationConfig(max_new_tokens=5, seed=1, logit_bias={7: 100.0}), decode)
    assert forced[0].token_ids == [7] * 5


def test_stop_string_across_token_boundaries_is_cut():
    model = tiny()
    base = GenerationConfig(max_new_tokens=16, temperature=0, stop_at_eos=False)
    text = complete(model, [[1, 2, 3]], base, decode)[0].text
    stop = text[5:8]  # three one-character tokens: the match spans token boundaries
    cfg = GenerationConfig(max_new_tokens=16, temperature=0, stop_at_eos=False, stop=(stop, "never-there"))
    out = complete(model, [[1, 2, 3]], cfg, decode)[0]
    assert out.finish_reason == "stop" and out.text == text[: text.index(stop)] and stop not in out.text
    pieces = list(stream(model, [1, 2, 3], cfg, decode))
    assert "".join(pieces) == out.text


def test_text_assembler_holds_back_split_characters_and_stop_prefixes():
    tok = BPETokenizer.train(["plain ascii text only, nothing else here " * 20], vocab_size=300)
    text = "a😀b 中文 ok 🎉!"
    ids = tok.encode(text)
    assert len(ids) > len(text)  # the emoji and CJK characters are split into byte tokens
    asm = TextAssembler(tok.decode)
    pieces = [asm.push(i) for i in ids] + [asm.finish()]
    assert all(REPLACEMENT not in p for p in pieces) and "".join(pieces) == text
    asm = TextAssembler(tok.decode, stop=("中文",))
    pieces = [asm.push(i) for i in ids]
    assert "".join(pieces) == "a😀b " and asm.stopped
    char = CharTokenizer(list("ab "), byte_fallback=True)
    asm = TextAssembler(char.decode)
    pieces = [asm.push(i) for i in char.encode("a 😀 中")] + [asm.finish()]
    assert all(REPLACEMENT not in p for p in pieces) and "".join(pieces) == "a 😀 中"


def test_stream_equals_generate_and_never_yields_broken_characters():
    tok = BPETokenizer.train(["short ascii corpus " * 30], vocab_size=280)
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    cfg = GenerationConfig(max_new_tokens=40, seed=0, stop_at_eos=False)
    prompt = tok.encode("short")
    pieces = list(stream(model, prompt, cfg, tok.decode))
    whole = complete(model, [prompt], cfg, tok.decode)[0].text
    assert "".join(pieces) == whole
    # random bytes can be invalid UTF-8 for good (then U+FFFD stays), but no piece may end in the
    # middle of a character that later tokens could still complete
    assert not any(p.endswith(REPLACEMENT) for p in pieces[:-1])


def test_logprobs_are_the_models_and_top_alternatives_are_sorted():
    model = tiny()
    cfg = GenerationConfig(max_new_tokens=4, temperature=0, logprobs=True, top_logprobs=3, stop_at_eos=False)
    out = complete(model, [[1, 2, 3]], cfg, decode)[0]
    assert out.logprobs is not None and len(out.logprobs) == 4
    ids = torch.tensor([[1, 2, 3, *out.token_ids]])
    with torch.no_grad():
        ref = model(ids)[0].log_softmax(-1)
    for t, lp in enumerate(out.logprobs):
        assert lp.logprob == pytest.approx(ref[2 + t, lp.token].item(), abs=1e-5)
        assert next(a[0] for a in lp.top) == lp.token  # greedy: the chosen token is the most likely
        assert [a[2] for a in lp.top] == sorted((a[2] for a in lp.top), reverse=True)


def test_context_overflow_error_truncate_and_sliding_window():
    model = tiny()  # block_size 48
    long = list(range(1, 56))
    with pytest.raises(UserError, match="more than the model's context of 48"):
        complete(model, [long], GenerationConfig(max_new_tokens=2), decode)
    cfg = GenerationConfig(max_new_tokens=1, temperature=0, context_overflow="truncate", stop_at_eos=False)
    assert complete(model, [long], cfg, decode)[0].token_ids == naive_greedy(model, long[-48:], 1)
    out = complete(model, [[1, 2]], GenerationConfig(max_new_tokens=120, temperature=0), decode)[0]
    assert len(out.token_ids) == 120  # past the context: the window slides


def test_bad_generation_options():
    for kwargs, fragment in [
        ({"top_p": -0.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": 2.0}, "min_p"),
        ({"num_beams": 0}, "num_beams"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"num_beams": 2, "top_k": 5}, "beam search"),
    ]:
        with pytest.raises(UserError, match=fragment):
            GenerationConfig(**kwargs)
    model = tiny()
    with pytest.raises(UserError, match="logit_bias: token id 999"):
        complete(model, [[1]], GenerationConfig(logit_bias={999: 1.0}), decode)
    with pytest.raises(UserError, match="banned_tokens"):
        complete(model, [[1]], GenerationConfig(banned_tokens=(-3,)), decode)
    # temperature ≤ 0 is greedy, not an error
    neg = complete(model, [[1, 2]], GenerationConfig(max_new_tokens=6, temperature=-1), decode)[0]
    assert neg.token_ids == naive_greedy(model, [1, 2], 6)


def test_language_model_api(trained_run):
    lm = gl.load(trained_run)
    texts = lm.generate(["ROMEO:", "To be"], max_new_tokens=12, temperature=0)
    assert isinstance(texts, list) and len(texts) == 2
    assert texts[1] == lm.generate("To be", max_new_tokens=12, temperature=0)
    assert "".join(lm.stream("ROMEO:", max_new_tokens=12, temperature=0)) == texts[0]
    assert lm.generate("", max_new_tokens=5, temperature=0)  # char runs start from the separator
    with pytest.raises(UserError, match="unknown generation option 'topp'"):
        lm.generate("x", topp=0.5)
    with pytest.raises(UserError, match="not in the tokenizer's vocabulary"):
        lm.generate("\u4e2d", max_new_tokens=2)


def test_empty_prompt_needs_an_unconditional_start():
    from genloom.api.text import prompt_ids

    tok = BPETokenizer.train(["no special tokens here " * 10], vocab_size=270)
    tok.eos_id = None
    with pytest.raises(UserError, match="empty prompt"):
        prompt_ids(tok, "")


def test_each_decode_step_feeds_one_token_through_the_cache():
    model = tiny()
    seen: list[tuple[int, ...]] = []
    hook = model.wte.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    complete(model, [[1, 2, 3, 4], [5, 6]], GenerationConfig(max_new_tokens=6, temperature=0), decode)
    hook.remove()
    assert seen == [(2, 4)] + [(2, 1)] * 5  # one prefill, then one new token per row per step


def test_decoding_follows_weight_updates():
    from genloom.models.gpt.model import HEAD_TRANSPOSE_MIN

    model = tiny(vocab_size=33_000)  # a projection large enough for the transposed decoding copy
    assert model.lm_head.weight.numel() >= HEAD_TRANSPOSE_MIN
    cfg = GenerationConfig(max_new_tokens=8, temperature=0, stop_at_eos=False)
    complete(model, [[1, 2, 3]], cfg, decode)  # builds the decoding copy of the output projection
    with torch.no_grad():
        model.lm_head.weight.mul_(-1.5)  # an in-place update, as an optimizer step makes
    assert complete(model, [[1, 2, 3]], cfg, decode)[0].token_ids == naive_greedy(model, [1, 2, 3], 8)
