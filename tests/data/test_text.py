import json

import pytest
import torch

from genloom.data.text import (
    CHAR_DOC_SEPARATOR,
    TextDataConfig,
    TokenData,
    build_tokenizer,
    clean_whitespace,
    encode_documents,
    load_corpus,
    preprocess,
    read_documents,
    split,
)
from genloom.errors import UserError


def test_bundled_corpus_split_matches_nanogpt():
    corpus = load_corpus(TextDataConfig(source="tinyshakespeare"))
    assert corpus.stats["split"] == "position"
    assert len(corpus.train[0]) == 1_003_854 and len(corpus.val[0]) == 111_540
    assert len(build_tokenizer(corpus, TextDataConfig()).itos) == 65


def test_directory_is_read_recursively_with_glob(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "one.txt").write_text("first")
    (tmp_path / "a" / "b" / "two.txt").write_text("second")
    (tmp_path / "a" / "skip.md").write_text("not read")
    (tmp_path / "a" / "image.png").write_bytes(b"\x89PNG not text")
    txt = TextDataConfig(source=str(tmp_path), glob="**/*.txt")
    assert read_documents(txt) == ["second", "first"]  # sorted paths
    assert read_documents(TextDataConfig(source=str(tmp_path), glob="**/*.md")) == ["not read"]
    report: dict = {}  # the default: every text or code file, and a report of what was skipped
    assert read_documents(TextDataConfig(source=str(tmp_path)), report) == ["second", "not read", "first"]
    assert report == {
        "files_matched": 4,
        "files_read": 3,
        "files_skipped": 1,
        "read_by_suffix": ".txt 2, .md 1",
        "skipped_by_suffix": ".png 1",
    }
    with pytest.raises(UserError, match=r"no files matching '\*\.csv'"):
        read_documents(TextDataConfig(source=str(tmp_path), glob="*.csv"))


def test_jsonl_field_and_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"body": "one"}) + "\n\n" + json.dumps({"body": "two"}) + "\n")
    assert read_documents(TextDataConfig(source=str(path), jsonl_field="body")) == ["one", "two"]
    with pytest.raises(UserError, match=r"d.jsonl:1: no field 'text'"):
        read_documents(TextDataConfig(source=str(path)))
    path.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(UserError, match=r"d.jsonl:2: field 'text' must be a string"):
        read_documents(TextDataConfig(source=str(path)))
    path.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(UserError, match=r"d.jsonl:2: not valid JSON"):
        read_documents(TextDataConfig(source=str(path)))


def test_undecodable_bytes_name_file_and_offset_and_replace_goes_on(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello \xff world")
    with pytest.raises(
        UserError, match=r"bad.txt: undecodable utf-8 bytes at byte offset 6; pass --encoding-errors replace"
    ):
        read_documents(TextDataConfig(source=str(path)))
    assert read_documents(TextDataConfig(source=str(path), encoding_errors="replace")) == ["hello \ufffd world"]


def test_nfc_normalization_whitespace_cleanup_and_dedup():
    decomposed = "cafe\u0301"  # e + combining acute
    docs = [decomposed, "café", "  a  \r\n\n\n\nb \n", "x", "x", "   "]
    out, stats = preprocess(docs, TextDataConfig(clean_whitespace=True))
    assert out == ["café", "a\n\nb", "x"]
    assert stats == {"documents_read": 6, "duplicates_removed": 2, "documents": 3}
    kept, _ = preprocess(docs, TextDataConfig(normalize="none", dedup=False))
    assert kept[0] == decomposed and kept.count("x") == 2


def test_clean_whitespace_is_idempotent():
    text = "a \t\r\nb\r\r\r\rc  "
    assert clean_whitespace(clean_whitespace(text)) == clean_whitespace(text) == "a\nb\n\nc"


def test_empty_corpus_and_missing_source(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="the corpus is empty"):
        load_corpus(TextDataConfig(source=str(empty)))
    with pytest.raises(UserError, match=r"nope.txt: no such file or directory \(bundled datasets: tinyshakespeare\)"):
        load_corpus(TextDataConfig(source=str(tmp_path / "nope.txt")))


def test_document_split_is_deterministic_and_disjoint():
    docs = [f"document number {i}" for i in range(100)]
    cfg = TextDataConfig(val_fraction=0.2, split_seed=3)
    train_a, val_a, how = split(docs, cfg)
    train_b, val_b, _ = split(docs, cfg)
    assert how == "documents" and (train_a, val_a) == (train_b, val_b)
    assert len(val_a) == 20 and not set(train_a) & set(val_a) and set(train_a) | set(val_a) == set(docs)
    _, val_c, _ = split(docs, TextDataConfig(val_fraction=0.2, split_seed=4))
    assert val_c != val_a


def test_few_documents_split_by_position():
    train, val, how = split(["a" * 50, "b" * 50], TextDataConfig(val_fraction=0.1))
    assert how == "position"
    assert train[0] + val[0] == "a" * 50 + CHAR_DOC_SEPARATOR + "b" * 50


def test_token_data_batches_are_shifted_windows():
    ids = torch.arange(1000)
    data = TokenData(ids, ids.clone(), block_size=16)
    x, y = data.get_batch("train", 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    again, _ = data.get_batch("train", 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    windows = data.windows("val", batch_size=10)
    assert sum(w[1].numel() for w in windows) == (999 // 16) * 16


def test_corpus_shorter_than_block_size_is_refused():
    with pytest.raises(UserError, match=r"the validation split has 10 tokens, fewer than model.block_size \+ 2 = 66"):
        TokenData(torch.arange(100), torch.arange(10), block_size=64, source="tiny.txt")


def test_bpe_streams_end_documents_with_eos():
    docs = [f"doc {i} text" for i in range(30)]
    corpus = load_corpus_from(docs)
    tok = build_tokenizer(corpus, TextDataConfig(tokenizer="bpe", vocab_size=300))
    ids = encode_documents(corpus.train, tok)
    assert (ids == tok.eos_id).sum() == len(corpus.train)


def load_corpus_from(docs):
    from genloom.data.text import Corpus

    train, val, _ = split(docs, TextDataConfig())
    return Corpus(train, val)
