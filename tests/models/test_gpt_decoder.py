"""`GPT.step_function`: the fixed-shape one-token decode step equals the cached forward pass it replaces,
for every position encoding, with and without left padding, eager and through `torch.compile`."""

import pytest
import torch

from genloom.generation import GenerationConfig, complete
from genloom.models.gpt import GPT, GPTConfig


def model(pos: str, n_kv_head: int | None = None) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=24, n_layer=2, n_head=4, n_kv_head=n_kv_head, n_embd=32, pos_encoding=pos)
    return GPT(cfg).eval()


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "rope", "alibi"])
@pytest.mark.parametrize("padded", [False, True])
def test_decoder_matches_cached_forward(pos, padded):
    m = model(pos, n_kv_head=2 if pos == "rope" else None)
    ids = torch.randint(0, 50, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 6, dtype=torch.bool)
    if padded:
        mask[0, :3] = False  # row 0 is a 3-token prompt, left-padded
        mask[2, :1] = False
    new = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref_cache, dec_cache = m.new_cache(3, 12), m.new_cache(3, 12)
        m(ids, cache=ref_cache, attention_mask=mask if padded else None, last_only=True)
        m(ids, cache=dec_cache, attention_mask=mask if padded else None, last_only=True)
        step = m.step_function()
        for t in range(5):
            ref = m(new[:, t : t + 1], cache=ref_cache, last_only=True)[:, -1].float()
            got = step(new[:, t : t + 1], dec_cache)
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        assert dec_cache.length == ref_cache.length == 11
        assert torch.equal(dec_cache.seen, ref_cache.seen)


def test_decoder_refuses_a_full_cache():
    m = model("learned")
    with torch.inference_mode():
        cache = m.new_cache(1, 4)
        m(torch.zeros(1, 4, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="full"):
            m.step_function()(torch.zeros(1, 1, dtype=torch.long), cache)


def test_compiled_generation_gives_the_same_tokens_and_follows_new_weights():
    m = model("rope")
    prompts = [[1, 2, 3, 4], [5, 6]]
    eager = GenerationConfig(max_new_tokens=12, temperature=0)
    compiled = GenerationConfig(max_new_tokens=12, temperature=0, compile=True)
    a = complete(m, prompts, eager, str)
    b = complete(m, prompts, compiled, str)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    torch.manual_seed(3)
    with torch.no_grad():  # the compiled step freezes weights: a change must rebuild it
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    c = complete(m, prompts, compiled, str)
    d = complete(m, prompts, eager, str)
    assert [x.token_ids for x in c] == [x.token_ids for x in d] != [x.token_ids for x in a]
