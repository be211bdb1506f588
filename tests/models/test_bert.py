"""BERT family: smoke test, bidirectionality, padding, embeddings, and parity with Hugging Face
`BertForMaskedLM` both ways (load a `save_pretrained` directory; export and let transformers load it)."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import genloom as gl
from genloom.errors import UserError
from genloom.models.bert import PRESETS, Bert, BertConfig, read_hf_dir, write_hf_dir
from genloom.tokenizers import WordPieceTokenizer

from ..conftest import SHAKESPEARE


def tiny(**kw) -> Bert:
    torch.manual_seed(0)
    return Bert(BertConfig(vocab_size=60, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0, **kw))


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_smoke_loss_backward_and_init(norm_position):
    model = tiny(norm_position=norm_position)
    x = torch.randint(5, 60, (3, 16))
    labels = torch.full_like(x, -100)
    labels[:, 3:6] = x[:, 3:6]
    loss, terms = model.loss((x, labels))
    assert abs(loss.item() - torch.log(torch.tensor(60.0)).item()) < 0.5  # ≈ uniform at init
    assert int(terms["targets"]) == 9 and 0 <= float(terms["accuracy"]) <= 1
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.head.decoder.weight.data_ptr() == model.embeddings.tokens.weight.data_ptr()  # tied
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_bidirectional_and_padding_mask():
    model = tiny().eval()
    x = torch.randint(5, 60, (2, 10))
    later = x.clone()
    later[:, 8] = (later[:, 8] + 1) % 55 + 5
    with torch.no_grad():
        assert not torch.allclose(model(x)[:, :8], model(later)[:, :8])  # the encoder sees the future
        padded = torch.cat([x, torch.zeros(2, 6, dtype=torch.long)], dim=1)
        mask = torch.cat([torch.ones(2, 10), torch.zeros(2, 6)], dim=1).long()
        assert torch.allclose(model(padded, attention_mask=mask)[:, :10], model(x), atol=1e-5)
        assert not torch.allclose(model(padded)[:, :10], model(x), atol=1e-3)  # without the mask, pads matter
        emb = model.embed(padded, mask)
        assert torch.allclose(emb, model.encode(x).mean(dim=1), atol=1e-5)  # mean over non-pad tokens only


def test_too_long_input_and_bad_configs():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by n_head"):
        BertConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="pad_id"):
        BertConfig(vocab_size=10, pad_id=10)
    for preset in PRESETS.values():
        BertConfig(**preset.get("model", {}))


# ---- Hugging Face parity ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordpiece() -> WordPieceTokenizer:
    return WordPieceTokenizer.train([SHAKESPEARE.read_text()[:50_000]], vocab_size=300)


def hf_model(vocab_size: int):
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    config = HFBertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=24,
        type_vocab_size=2,
    )
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():  # move every parameter off its init (LayerNorm at 1/0, zero biases) so all matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def inputs(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (3, 20), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 7:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 10:] = 1
    return ids, mask, types


def test_load_hf_checkpoint_matches_transformers_logits(tmp_path, wordpiece):
    hf = hf_model(wordpiece.vocab_size)
    hf.save_pretrained(tmp_path)
    wordpiece.save(tmp_path / "tokenizer.json")
    lm = gl.load(tmp_path)  # a Hugging Face directory loads through the same entry point
    assert isinstance(lm, gl.MaskedLanguageModel)
    ids, mask, types = inputs(wordpiece.vocab_size)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types).logits
        assert torch.allclose(lm.model(ids, token_type_ids=types), ref, atol=1e-4)  # without padding
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        ours = lm.model(ids, attention_mask=mask, token_type_ids=types)
    keep = mask.bool()
    assert torch.allclose(ours[keep], ref[keep], atol=1e-4)  # with padding: every real position
    fillers = lm.fill_mask("to be or not to [MASK]", top_k=3)
    text_ids = torch.tensor([[wordpiece.cls_id, *wordpiece.encode("to be or not to [MASK]"), wordpiece.sep_id]])
    with torch.no_grad():
        probs = hf(input_ids=text_ids).logits[0, -2].softmax(-1)
    top = probs.topk(3)
    assert [t for t, _ in fillers[0]] == [wordpiece.id_to_token(int(i)) for i in top.indices]
    assert [p for _, p in fillers[0]] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_export_loads_in_transformers_with_the_same_logits(tmp_path, wordpiece):
    from transformers import AutoTokenizer, BertForMaskedLM

    torch.manual_seed(0)
    ours = Bert(BertConfig(vocab_size=wordpiece.vocab_size, block_size=24, n_layer=2, n_head=4, n_embd=32)).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    write_hf_dir(ours, tmp_path / "hf")
    hf = BertForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    ids, mask, types = inputs(wordpiece.vocab_size)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types)
    assert torch.allclose(got[mask.bool()], ref[mask.bool()], atol=1e-4)
    cfg, state, _ = read_hf_dir(tmp_path / "hf")  # and back: the round trip is exact
    assert cfg == dataclasses.replace(ours.config, mlp_hidden=4 * 32)  # the default width, written out
    assert all(torch.equal(state[k], v) for k, v in ours.state_dict().items())
    wordpiece.save(tmp_path / "hf" / "tokenizer.json")
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok("To be or not to be")["input_ids"] == [wordpiece.cls_id, *wordpiece.encode("To be or not to be"), 3]


def test_pre_norm_cannot_be_exported(tmp_path):
    with pytest.raises(UserError, match="only post-norm BERT"):
        write_hf_dir(tiny(norm_position="pre"), tmp_path)


def test_hf_directory_with_missing_or_foreign_weights(tmp_path, wordpiece):
    hf = hf_model(wordpiece.vocab_size)
    hf.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["bert.encoder.layer.1.attention.self.key.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match=r"missing weight 'bert\.encoder\.layer\.1\.attention\.self\.key\.weight'"):
        read_hf_dir(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"no model\.safetensors"):
        read_hf_dir(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(UserError, match="only 'bert' checkpoints"):
        read_hf_dir(tmp_path)
