"""Fill-in-the-middle batches (Bavarian et al. 2022): rearranged at context level after packing, same length,
the parts intact, validation untouched, and reproducible from the trainer's generator."""

from __future__ import annotations

import pytest
import torch

from genloom.data.code import FIMTokenData
from genloom.tokenizers import CodeTokenizer

DOCS = [f"def function_{i}(value):\n    total = value * {i}\n    return total + {i}\n" * 3 for i in range(40)]


@pytest.fixture(scope="module")
def tok() -> CodeTokenizer:
    return CodeTokenizer.train(DOCS, vocab_size=400)


def stream(tok: CodeTokenizer) -> torch.Tensor:
    ids: list[int] = []
    for doc in DOCS:
        ids += [*tok.encode(doc), tok.eos_id]  # type: ignore[list-item]
    return torch.tensor(ids)


def data(tok: CodeTokenizer, rate: float, spm: float = 0.0) -> FIMTokenData:
    ids = stream(tok)
    return FIMTokenData(ids, ids, 96, tok, rate, spm)


def parts(tok: CodeTokenizer, ids: list[int]) -> list[list[int]]:
    """A context's documents (split after each end-of-text) of 10 tokens or more (a shorter piece at the end
    of a context cannot keep its length once rearranged, and is left as it is)."""
    docs: list[list[int]] = [[]]
    for t in ids:
        docs[-1].append(t)
        if t == tok.eos_id:
            docs.append([])
    return [d for d in docs if len(d) >= 10]


def test_every_document_is_rearranged_and_keeps_its_text(tok: CodeTokenizer) -> None:
    d = data(tok, 1.0)
    g = torch.Generator().manual_seed(0)
    x, y = d.get_batch("train", 8, g)
    assert x.shape == y.shape == (8, 96)
    assert torch.equal(x[:, 1:], y[:, :-1])  # still one shifted context
    checked = kept = 0
    for row in torch.cat((x, y[:, -1:]), 1).tolist():
        for doc in parts(tok, row):
            body = [t for t in doc if t not in (tok.eos_id, tok.fim_pad_id)]
            if body[0] != tok.fim_prefix_id:  # too little code beside the middle to pay for the sentinels
                kept += 1
                continue
            i_suf, i_mid = body.index(tok.fim_suffix_id), body.index(tok.fim_middle_id)
            prefix, suffix, middle = body[1:i_suf], body[i_suf + 1 : i_mid], body[i_mid + 1 :]
            text = tok.decode(prefix) + tok.decode(middle) + tok.decode(suffix)
            assert text.replace("\ufffd", "") in "".join(DOCS)  # PSM: the parts put back give the original text
            checked += 1
    assert checked >= 8 and kept <= checked // 4  # fim_rate 1: (almost) every document rearranged


def test_spm_order(tok: CodeTokenizer) -> None:
    d = data(tok, 1.0, spm=1.0)
    x, _ = d.get_batch("train", 4, torch.Generator().manual_seed(1))
    for row in x.tolist():
        doc = parts(tok, row)[0]
        assert doc[:2] == [tok.fim_prefix_id, tok.fim_suffix_id]  # SPM: <PRE><SUF> suffix <MID> prefix middle


def test_rate_zero_and_validation_are_left_to_right(tok: CodeTokenizer) -> None:
    ids = stream(tok)
    specials = {tok.fim_prefix_id, tok.fim_suffix_id, tok.fim_middle_id, tok.fim_pad_id}
    for d, split in ((data(tok, 0.0), "train"), (data(tok, 1.0), "val")):
        x, _ = d.get_batch(split, 8, torch.Generator().manual_seed(0))
        assert not specials & set(x.flatten().tolist())
        for row in x.tolist():  # each row is a window of the stream, as it is
            assert any(ids[s : s + 96].tolist() == row for s in range(len(ids) - 96))


def test_about_half_the_documents_at_rate_one_half(tok: CodeTokenizer) -> None:
    x, _ = data(tok, 0.5).get_batch("train", 64, torch.Generator().manual_seed(0))
    docs = [doc for row in x.tolist() for doc in parts(tok, row)]
    share = sum(doc[0] == tok.fim_prefix_id for doc in docs) / len(docs)
    assert 0.35 < share < 0.65


def test_the_same_generator_state_gives_the_same_batch(tok: CodeTokenizer) -> None:
    d = data(tok, 0.5, 0.5)
    a = d.get_batch("train", 8, torch.Generator().manual_seed(5))
    b = d.get_batch("train", 8, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["data.fim_rate=0.5"], "needs the fill-in-the-middle tokens of tokenizer='code'"),
        (["data.tokenizer=code", "data.fim_rate=1.5"], "fim_rate must be between 0 and 1"),
        (["data.tokenizer=code", "data.fim_spm_rate=-0.1"], "fim_spm_rate must be between 0 and 1"),
    ],
)
def test_bad_fim_settings_are_one_line(sets: list[str], message: str) -> None:
    from genloom.api.runs import resolve_config
    from genloom.errors import UserError

    with pytest.raises(UserError, match=message):
        resolve_config("gpt", "debug", None, None, sets)
