"""The encoder-decoder model: decoder causality, the source padding mask, incremental decoding with the
cache equal to the full forward pass, and the config checks."""

import itertools

import pytest
import torch

from genloom.models.seq2seq import Seq2Seq, Seq2SeqConfig

VARIANTS = list(itertools.product(["sinusoidal", "learned", "rope"], ["post", "pre"]))
V = 37


def tiny(pos: str = "sinusoidal", norm: str = "post", **kw) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0) | kw
    return Seq2Seq(Seq2SeqConfig(pos_encoding=pos, norm_position=norm, **cfg)).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(0, V, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 6:] = False  # row 1 has 6 real source tokens, row 2 has 3
    mask[2, 3:] = False
    tgt = torch.randint(0, V, (3, 10), generator=g)
    return src, mask, tgt


@pytest.mark.parametrize(("pos", "norm"), VARIANTS)
@torch.no_grad()
def test_decoder_is_causal(pos, norm):
    model = tiny(pos, norm)
    src, mask, tgt = batch()
    logits = model(src, tgt, mask)
    for t in (0, 4, 9):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        other = model(src, changed, mask)
        assert torch.equal(other[:, :t], logits[:, :t])  # earlier positions never see a later token
        assert not torch.allclose(other[:, t:], logits[:, t:])  # ... and the change does matter from t on


@pytest.mark.parametrize(("pos", "norm"), VARIANTS)
@torch.no_grad()
def test_cross_attention_ignores_source_padding(pos, norm):
    model = tiny(pos, norm)
    src, mask, tgt = batch()
    logits = model(src, tgt, mask)
    noisy = torch.where(mask, src, (src + 5) % V)  # different ids under the padding only
    assert torch.equal(model(noisy, tgt, mask), logits)
    # the row alone, without any padding, gets the same logits
    alone = model(src[2:, :3], tgt[2:], None)
    torch.testing.assert_close(alone, logits[2:], atol=1e-5, rtol=1e-5)
    # while a real source token does change them
    real = src.clone()
    real[2, 0] = (real[2, 0] + 1) % V
    assert not torch.allclose(model(real, tgt, mask)[2], logits[2])


@pytest.mark.parametrize(("pos", "norm"), VARIANTS)
@torch.no_grad()
def test_incremental_decoding_with_cache_equals_full_forward(pos, norm):
    model = tiny(pos, norm)
    src, mask, tgt = batch()
    full = model(src, tgt, mask)  # (B, T, V)
    decoder = model.bind(src, mask)  # the encoder runs once
    cache = decoder.new_cache(3, 16)
    pieces = [decoder(tgt[:, :4], cache=cache)]  # a prefix, then one token at a time
    pieces += [decoder(tgt[:, t : t + 1], cache=cache) for t in range(4, 7)]
    pieces.append(decoder(tgt[:, 7:], cache=cache))  # and a chunk after the prefix
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 10


def test_cache_reorder_moves_the_source_with_the_row():
    model = tiny()
    src, mask, tgt = batch()
    with torch.no_grad():
        full = model(src, tgt, mask)
        decoder = model.bind(src, mask)
        cache = decoder.new_cache(3, 16)
        decoder(tgt[:, :5], cache=cache)
        index = torch.tensor([2, 2, 0, 1])  # beam search follows its beams: rows copied and permuted
        cache.reorder(index)
        rest = decoder(tgt[index, 5:], cache=cache)
    torch.testing.assert_close(rest, full[index, 5:], atol=1e-5, rtol=1e-5)


def test_loss_ignores_padding_and_smooths_labels():
    model = tiny(label_smoothing=0.1)
    src, mask, tgt = batch()
    labels = tgt.clone()
    labels[0, 7:] = -100
    loss, terms = model.loss((src, mask, tgt, labels))
    loss.backward()
    assert torch.isfinite(loss) and loss > terms["nll"]  # smoothing adds the cross-entropy to the uniform
    changed = tgt.clone()
    changed[0, 8:] = 0  # a padding position's input never reaches an earlier, counted position
    assert torch.equal(model.loss((src, mask, changed, labels))[1]["nll"], terms["nll"])
    assert model.lm_head.weight is model.src_embed.weight is model.tgt_embed.weight  # tied (§3.4)
    untied = tiny(tie_embeddings=False)
    assert untied.lm_head.weight is not untied.src_embed.weight


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("n_embd", 30, "divisible by n_head"),
        ("label_smoothing", 1.0, "label_smoothing"),
        ("norm_position", "middle", "norm_position"),
        ("eos_id", V, "eos_id"),
        ("n_decoder_layer", 0, "n_decoder_layer"),
    ],
)
def test_config_checks_name_the_field(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        Seq2SeqConfig(**{"vocab_size": V, "n_embd": 32, "n_head": 4, field: value})


def test_too_long_inputs_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    decoder = model.bind(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="bound sources"):
        decoder.new_cache(3)
