"""The code tokenizer: its FIM and end-of-text ids never come from text, indentation and digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from genloom.tokenizers import CODE_SPECIAL_TOKENS, CodeTokenizer, load_tokenizer

CODE = (Path(__file__).resolve().parents[2] / "genloom" / "data" / "code.py").read_text()


@pytest.fixture(scope="module")
def tok() -> CodeTokenizer:
    return CodeTokenizer.train([CODE], vocab_size=600)


@pytest.mark.parametrize("special", CODE_SPECIAL_TOKENS)
def test_special_tokens_written_as_text_are_text(tok: CodeTokenizer, special: str) -> None:
    text = f"x = '{special}'\n# {special}{special}"
    ids = tok.encode(text)
    assert not set(ids) & set(tok.special_ids)
    assert tok.decode(ids) == text  # escaped, never interpreted, and round-trips


def test_the_reserved_ids_are_distinct_and_named(tok: CodeTokenizer) -> None:
    ids = [tok.fim_prefix_id, tok.fim_suffix_id, tok.fim_middle_id, tok.fim_pad_id, tok.eos_id]
    assert len(set(ids)) == 5 and sorted(ids) == tok.special_ids
    assert tok.decode([tok.fim_middle_id]) == "<fim_middle>"


def test_indentation_is_one_token_and_digits_are_split(tok: CodeTokenizer) -> None:
    assert len(tok.encode("\n        ")) == 1  # a line break and two levels of indentation, learned from code
    digits = tok.encode("12345")
    assert len(digits) == 5 and tok.decode(digits[:1]) == "1"


@pytest.mark.parametrize("text", ["def f(x):\n\treturn x  \r\n", "ünïcödé = '日本'  # 😀\n\n\n    ", "", "\x00\x1b"])
def test_any_text_round_trips(tok: CodeTokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_saved_and_loaded_it_still_keeps_text_as_text(tok: CodeTokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(loaded, CodeTokenizer)
    assert loaded.encode("<fim_middle>") == tok.encode("<fim_middle>") != [tok.fim_middle_id]


def test_a_lone_surrogate_is_one_line(tok: CodeTokenizer) -> None:
    from genloom.errors import UserError

    with pytest.raises(UserError, match="unpaired surrogate U\\+D800"):
        tok.encode("x = '\ud800'")
