"""SFT pieces: special tokens, embedding resize, masked loss, packing; and a tuned run that chats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import genloom as gl
from genloom.chat import ChatTemplate
from genloom.models.gpt import GPT, GPTConfig
from genloom.tokenizers import BPETokenizer, CharTokenizer, add_special_tokens, load_tokenizer
from genloom.tune.data import SFTExample
from genloom.tune.sft import IGNORE, build_rows, packed_attention, sft_loss, tokenize_example

MARKERS = ChatTemplate().special_tokens


@pytest.mark.parametrize("kind", ["char", "char-bytes", "bpe"])
def test_chat_markers_become_single_ids_and_round_trip(tmp_path: Path, kind: str):
    text = "hello world,\nhow are you? fine thanks " * 20
    base = BPETokenizer.train([text], vocab_size=300) if kind == "bpe" else CharTokenizer.train([text], kind != "char")
    tok = add_special_tokens(base, MARKERS)
    assert tok.vocab_size == base.vocab_size + 4
    s = "<|user|>how are you?<|end|>\n<|assistant|>fine<|end|>"
    ids = tok.encode(s)
    assert tok.decode(ids) == s
    for marker in MARKERS:
        (one,) = tok.encode(marker)
        assert one >= base.vocab_size and (one in ids) == (marker in s)
    assert ids[: len(base.encode("how"))] != base.encode("how")  # the first id is the marker, not '<'
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert again.encode(s) == ids and again.vocab_size == tok.vocab_size
    assert add_special_tokens(tok, MARKERS).vocab_size == tok.vocab_size  # adding twice adds nothing


def test_resize_keeps_old_rows_and_starts_new_ones_at_the_mean():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8))
    x = torch.randint(0, 20, (2, 8))
    before = model(x)
    old = model.wte.weight.detach().clone()
    model.resize_token_embeddings(24)
    assert model.config.vocab_size == 24 and model.lm_head.weight is model.wte.weight
    torch.testing.assert_close(model.wte.weight[:20], old)
    torch.testing.assert_close(model.wte.weight[20:], old.mean(0).expand(4, -1))
    torch.testing.assert_close(model(x)[..., :20], before)
    torch.testing.assert_close(model.lm_head(model.hidden_states(x)), model(x))


def test_changing_prompt_labels_changes_nothing_in_the_loss():
    torch.manual_seed(0)
    tok = add_special_tokens(CharTokenizer.train(["abcdefghij klmnop?\n"]), MARKERS)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=8))
    example = SFTExample(
        ("<|user|>abc<|end|>\n", "<|assistant|>", "def<|end|>", "\n"), (False, False, True, False), "k"
    )
    x, y, mask, _, _ = build_rows([tokenize_example(example, tok)], 16, packing=True)
    assert int(mask.sum()) == 4 and bool((y[~mask] == IGNORE).all())  # d, e, f, <|end|>
    loss = sft_loss(model, x, y, mask)
    scrambled = y.clone()
    scrambled[~mask] = torch.randint(0, tok.vocab_size, (int((~mask).sum()),))
    assert torch.equal(sft_loss(model, x, scrambled, mask), loss)
    changed = y.clone()
    changed[mask] = (changed[mask] + 1) % tok.vocab_size
    assert not torch.equal(sft_loss(model, x, changed, mask), loss)  # the response labels do count


def test_packing_fills_rows_and_padding_does_not():
    examples = [([1, 2, 3, 4], [False, False, True, True])] * 6
    x, _, mask, truncated, segments = build_rows(examples, block_size=11, packing=True)
    assert x.shape == (2, 11) and int(mask.sum()) == 12 and truncated == 0
    assert segments[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    x, _, mask, _, _ = build_rows(examples, block_size=11, packing=False)
    assert x.shape == (6, 3) and int(mask.sum()) == 12
    x, y, mask, truncated, _ = build_rows([(list(range(20)), [False] * 16 + [True] * 4)], block_size=7, packing=False)
    assert truncated == 1 and x[0].tolist() == list(range(12, 19)) and y[mask].tolist() == [16, 17, 18, 19]


@pytest.mark.parametrize("pos_encoding", ["learned", "rope", "alibi"])
@torch.no_grad()
def test_packed_examples_compute_what_they_would_alone(pos_encoding: str):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=24, n_layer=2, n_head=2, n_embd=16, pos_encoding=pos_encoding))
    g = torch.Generator().manual_seed(3)
    examples = [(torch.randint(0, 30, (n,), generator=g).tolist(), [False] * 2 + [True] * (n - 2)) for n in (6, 9, 7)]
    x, y, mask, _, segments = build_rows(examples, block_size=23, packing=True)
    assert x.shape == (1, 21) and segments[0, -1] == 2  # three examples in one row
    positions, attention = packed_attention(segments)
    assert positions[0, :6].tolist() == list(range(6)) and positions[0, 5:8].tolist() == [5, 0, 1]
    packed = model.lm_head(model.hidden_states(x, positions, attention))  # (1, T, V)
    start = 0
    for ids, _ in examples:
        alone = model(torch.tensor([ids[:-1]]))  # (1, n-1, V)
        torch.testing.assert_close(packed[:, start : start + len(ids) - 1], alone, atol=1e-5, rtol=1e-5)
        start += len(ids)
    singles = [build_rows([e], 23, packing=False) for e in examples]
    n = [int(m.sum()) for _, _, m, _, _ in singles]
    alone_loss = sum(float(sft_loss(model, xs, ys, ms)) * k for (xs, ys, ms, _, _), k in zip(singles, n, strict=True))
    assert float(sft_loss(model, x, y, mask, segments)) == pytest.approx(alone_loss / sum(n), rel=1e-5)


def test_sft_run_has_template_lineage_and_chats(sft_run: Path, trained_run: Path):
    lm = gl.load(sft_run)
    assert isinstance(lm, gl.LanguageModel) and lm.chat_template == ChatTemplate()
    assert lm.model.config.vocab_size == gl.load(trained_run).model.config.vocab_size + 4
    assert len(lm.tokenizer.encode("<|assistant|>")) == 1
    card = (sft_run / "card.md").read_text()
    assert str(trained_run) in card and "data_sha256" in card and "supervised fine-tuning" in card
    tune_toml = (sft_run / "tune.toml").read_text()
    assert 'method = "sft"' in tune_toml and "base_weights_sha256" in tune_toml
    reply = lm.chat([{"role": "user", "content": "say to"}], max_new_tokens=8, temperature=0)
    assert reply.finish_reason in ("stop", "length")


def test_chat_format_and_resume(tmp_path: Path, trained_run: Path, tune_data: dict[str, Path]):
    out = tmp_path / "chat"
    sets = ["train.max_iters=2", "train.eval_interval=2", "train.eval_iters=1", "train.progress=false", "packing=false"]
    gl.tune("sft", trained_run, data=tune_data["chat"], out=out, sets=sets)
    resumed = gl.tune(
        "sft", trained_run, data=tune_data["chat"], out=out, sets=[*sets[1:], "train.max_iters=4"], resume=True
    )
    assert resumed.training.step == 4
    with pytest.raises(gl.UserError, match="data_sha256"):
        gl.tune("sft", trained_run, data=tune_data["sft"], out=out, sets=sets, resume=True)
