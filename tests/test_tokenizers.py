import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, normalizers, pre_tokenizers, processors

import genloom as gl
from genloom.errors import UserError
from genloom.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    WordPieceTokenizer,
    load_pretrained_tokenizer,
    load_tokenizer,
)

CORPUS = ["To be, or not to be, that is the question:", "Whether 'tis nobler in the mind to suffer", "ça, 東京 🙂"] * 20
# Any valid Unicode string: every code point except lone surrogates, which are not valid Unicode text.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200)


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, vocab_size=300)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_bpe_round_trips_any_unicode(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_char_with_byte_fallback_round_trips_any_unicode(text):
    tok = CharTokenizer.train(CORPUS, byte_fallback=True)
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(set("".join(CORPUS)))), max_size=200))
def test_char_round_trips_text_over_its_alphabet(text):
    tok = CharTokenizer.train(CORPUS)
    assert tok.decode(tok.encode(text)) == text


def test_char_without_fallback_names_unknown_character():
    tok = CharTokenizer.train(["abc"])
    with pytest.raises(UserError, match=r"character 'z' at position 2 is not in the tokenizer's vocabulary"):
        tok.encode("abz")


def test_bpe_learns_merges_and_compresses(bpe):
    text = CORPUS[0]
    assert len(bpe.encode(text)) < len(text.encode("utf-8"))
    assert bpe.vocab_size > 257


@pytest.mark.parametrize("byte_fallback", [False, True])
def test_char_tokenizer_json_is_read_by_hf_tokenizers_with_same_ids(tmp_path, byte_fallback):
    tok = CharTokenizer.train(CORPUS, byte_fallback=byte_fallback)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    hf = HFTokenizer.from_file(str(path))
    text = "To be, or not 🙂 ça" + ("ß€" if byte_fallback else "")
    assert hf.encode(text).ids == tok.encode(text)
    assert hf.decode(tok.encode(text)) == text
    again = load_tokenizer(path)
    assert isinstance(again, CharTokenizer) and again.itos == tok.itos and again.byte_fallback == byte_fallback


def test_bpe_save_load_round_trip(tmp_path, bpe):
    path = tmp_path / "tokenizer.json"
    bpe.save(path)
    again = load_tokenizer(path)
    assert isinstance(again, BPETokenizer)
    assert again.encode(CORPUS[1]) == bpe.encode(CORPUS[1])


def test_bpe_vocab_too_small_is_refused():
    with pytest.raises(UserError, match="at least 257"):
        BPETokenizer.train(CORPUS, vocab_size=100)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(UserError, match="tokenizer file not found"):
        load_tokenizer(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match=r"not a valid tokenizer\.json"):
        load_tokenizer(bad)


def test_wordpiece_special_tokens_mask_in_text_and_round_trip(tmp_path):
    tok = WordPieceTokenizer.train(CORPUS * 5, vocab_size=200)
    assert [tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id] == [0, 1, 2, 3, 4]
    ids = tok.encode("To be or not to [MASK]")
    assert ids[-1] == tok.mask_id and tok.mask_id not in ids[:-1]  # [MASK] stays one token
    assert tok.decode(ids[:-1]) == "to be or not to"  # uncased
    assert any(tok.continuation) and not any(tok.continuation[i] for i in tok.special_ids)
    assert all(tok.id_to_token(i).startswith("##") == tok.continuation[i] for i in range(tok.vocab_size))
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(loaded, WordPieceTokenizer) and loaded.encode("Whether 'tis nobler") == tok.encode(
        "Whether 'tis nobler"
    )
    assert HFTokenizer.from_file(str(tmp_path / "tokenizer.json")).encode("to be").ids == [2, *tok.encode("to be"), 3]


def test_wordpiece_file_without_mask_token(tmp_path):
    tok = WordPieceTokenizer.train(CORPUS, vocab_size=150)
    spec = json.loads(tok.hf.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "[MASK]"]
    del spec["model"]["vocab"]["[MASK]"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"needs the special mask token \[MASK\]"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_wordpiece_training_is_deterministic():
    texts = [" ".join(CORPUS) * 3]
    vocabs = [WordPieceTokenizer.train(texts, vocab_size=250).hf.get_vocab() for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]  # the library alone numbers pieces in hash-map order


# ---- pretrained checkpoints' tokenizers ---------------------------------------------------------------


def test_stored_padding_and_truncation_are_dropped(tmp_path):
    tok = WordPieceTokenizer.train(CORPUS * 5, vocab_size=200)
    tok.hf.enable_padding(length=32, pad_id=tok.pad_id, pad_token="[PAD]")
    tok.hf.enable_truncation(4)
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_pretrained_tokenizer(tmp_path, masked=True)
    ids = loaded.encode_framed("whether tis nobler in the mind to suffer")
    assert tok.pad_id not in ids and len(ids) > 4 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id


@pytest.mark.parametrize("kind", ["wordlevel", "unigram"])
def test_any_model_kind_serves_a_masked_lm(tmp_path, kind):
    """A BERT directory whose tokenizer is not WordPiece: special tokens come from tokenizer_config.json."""
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    words = sorted(set(" ".join(CORPUS).lower().split()))
    if kind == "wordlevel":  # (byte-level BPE is the kind genloom's own causal runs use, tested above)
        hf = HFTokenizer(models.WordLevel({t: i for i, t in enumerate([*specials, *words])}, unk_token="<unk>"))
    else:
        hf = HFTokenizer(models.Unigram([(t, 0.0) for t in specials] + [(w, -float(len(w))) for w in words], unk_id=1))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.normalizer = normalizers.Lowercase()
    hf.add_special_tokens(specials)
    hf.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    hf.save(str(tmp_path / "tokenizer.json"))
    names = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), specials, strict=True))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(names))
    tok = load_pretrained_tokenizer(tmp_path, masked=True)
    assert tok.kind == kind and (tok.cls_id, tok.sep_id, tok.mask_id) == (2, 3, 4)
    assert tok.encode_framed("Not to <mask>") == [2, hf.token_to_id("not"), hf.token_to_id("to"), 4, 3]


def test_vocab_txt_only_bert_directory_matches_transformers(tmp_path):
    import transformers

    tok = WordPieceTokenizer.train(CORPUS * 5, vocab_size=200)
    vocab = tok.hf.get_vocab()
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True})
    )
    ours = load_pretrained_tokenizer(tmp_path, masked=True)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in ["Whether 'tis nobler in the mind", "To be, or NOT to be [MASK]", "unknownword café"]:
        assert ours.encode_framed(text) == theirs(text)["input_ids"]


def test_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    import transformers

    tok = WordPieceTokenizer.train(CORPUS * 5, vocab_size=200)
    cfg = transformers.BertConfig(
        vocab_size=tok.vocab_size - 10, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path)
    tok.save(tmp_path / "tokenizer.json")
    with pytest.raises(
        UserError,
        match=rf"the tokenizer has a vocabulary of {tok.vocab_size}, the model's embedding {cfg.vocab_size} rows",
    ):
        gl.load(tmp_path)
