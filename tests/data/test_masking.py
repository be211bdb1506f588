"""The BERT masking recipe: proportions over many draws, special tokens, whole words, seeding."""

import pytest
import torch

from genloom.data.masking import IGNORE, MaskedTextDataConfig, MaskedTokenData, MaskingTables, mask_tokens

V, MASK, SPECIAL = 1000, 4, [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]
CONTINUATION = [i >= 500 for i in range(V)]  # ids 500-999 play `##` pieces


def tables() -> MaskingTables:
    return MaskingTables.build(V, MASK, SPECIAL, CONTINUATION)


def batch(B: int = 512, T: int = 128, seed: int = 0) -> torch.Tensor:
    """Ordinary ids framed by [CLS] ... [SEP], with the last 10 places of every other row [PAD]."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    ids[::2, -10:] = 0
    return ids


def test_proportions_hold_over_many_draws():
    ids = batch()
    inputs, labels = mask_tokens(ids, tables(), MaskedTextDataConfig(), torch.Generator().manual_seed(1))
    ordinary = ids >= 5
    chosen = labels != IGNORE
    n = int(chosen.sum())
    # 15% of ~62k ordinary tokens: the binomial standard deviation is ~0.0014, the tolerance 4 of them.
    assert abs(n / int(ordinary.sum()) - 0.15) < 0.006
    masked = (inputs == MASK) & chosen
    kept = (inputs == ids) & chosen
    replaced = (inputs != ids) & (inputs != MASK) & chosen
    assert abs(int(masked.sum()) / n - 0.8) < 0.016  # ~9.4k chosen: sd 0.004
    assert abs(int(replaced.sum()) / n - 0.1 * (1 - 1 / (V - 5))) < 0.012  # a random draw may hit the original
    assert abs(int(kept.sum()) / n - 0.1) < 0.012
    assert torch.equal(labels[chosen], ids[chosen])  # labels are the original tokens
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes


def test_special_tokens_and_padding_are_never_masked_nor_drawn():
    ids = batch(seed=3)
    cfg = MaskedTextDataConfig(mask_prob=0.9, mask_token_frac=0.0, random_token_frac=1.0)  # stress: all random
    inputs, labels = mask_tokens(ids, tables(), cfg, torch.Generator().manual_seed(2))
    special = ids < 5
    assert (labels[special] == IGNORE).all()
    assert torch.equal(inputs[special], ids[special])
    assert (inputs[~special] >= 5).all()  # a random replacement is never a special token
    assert (labels[~special] != IGNORE).float().mean() > 0.85


def test_whole_word_masking_keeps_words_whole():
    ids = batch(seed=4)
    cfg = MaskedTextDataConfig(whole_word=True)
    _, labels = mask_tokens(ids, tables(), cfg, torch.Generator().manual_seed(5))
    chosen = labels != IGNORE
    continues = torch.tensor(CONTINUATION)[ids] & (ids >= 5)  # a `##` piece
    prev_ordinary = torch.zeros_like(continues)
    prev_ordinary[:, 1:] = ids[:, :-1] >= 5
    inside = continues.clone()
    inside[:, 0] = False
    inside &= prev_ordinary  # pieces whose previous piece belongs to the same word
    shifted = torch.zeros_like(chosen)
    shifted[:, 1:] = chosen[:, :-1]
    assert torch.equal(chosen[inside], shifted[inside])  # chosen exactly when the previous piece is
    starts = (ids >= 5) & ~inside
    word_rate = float(chosen[starts].float().mean())
    assert abs(word_rate - 0.15) < 0.01  # 15% of words
    piece_only = mask_tokens(ids, tables(), MaskedTextDataConfig(), torch.Generator().manual_seed(5))[1] != IGNORE
    # the same draws without the option split some words: the test above could fail
    split_words = (piece_only[inside] != torch.cat([piece_only[:, :1], piece_only[:, :-1]], 1)[inside]).sum()
    assert split_words > 0


def test_seeded_and_resumable():
    data = MaskedTokenData(
        torch.randint(5, V, (5000,)), torch.randint(5, V, (800,)), 32, 2, 3, tables(), MaskedTextDataConfig()
    )
    g = torch.Generator().manual_seed(7)
    data.get_batch("train", 4, g)
    state = g.get_state()
    a = data.get_batch("train", 4, g)
    g.set_state(state)
    b = data.get_batch("train", 4, g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    x, _ = a
    assert x.shape == (4, 32) and (x[:, 0] == 2).all() and (x[:, -1] == 3).all()
    w1, w2 = data.windows("val", 8, seed=0), data.windows("val", 8, seed=0)
    assert all(torch.equal(p[1], q[1]) for p, q in zip(w1, w2, strict=True))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tokenizer": "char"}, "tokenizer must be 'wordpiece'"),
        ({"mask_prob": 0.0}, "mask_prob must be in"),
        ({"mask_token_frac": 0.9, "random_token_frac": 0.2}, "sum to at most 1"),
    ],
)
def test_bad_masking_config(kw, message):
    with pytest.raises(ValueError, match=message):
        MaskedTextDataConfig(**kw)
