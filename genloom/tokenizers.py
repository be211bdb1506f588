"""Text tokenizers: character-level and byte-level BPE, both stored as a Hugging Face `tokenizer.json`.

- `CharTokenizer`: one id per character seen in the corpus (nanoGPT's shakespeare_char). With
  `byte_fallback=True`, characters outside the vocabulary become their UTF-8 bytes (`<0x..>` tokens, as
  in Llama's tokenizer), so any Unicode string round-trips. It is saved as a BPE model with no merges,
  which is exactly character-level, so the `tokenizers` library reads the same file and gives the same ids.
- `BPETokenizer`: byte-level BPE (GPT-2, Radford et al. 2019) trained on the user's corpus with the
  `tokenizers` library. Byte-level means every string round-trips. Unicode normalization is done by the
  data pipeline, never inside the tokenizer, so `decode(encode(s)) == s` holds for any `s`.
- `WordPieceTokenizer`: BERT's WordPiece (Devlin et al. 2019, §3; Wu et al. 2016) with the special
  tokens [PAD] [UNK] [CLS] [SEP] [MASK], trained here (uncased) or read from a Hugging Face BERT
  `tokenizer.json`. Words split into pieces; a piece that continues a word starts with `##`, which is
  what whole-word masking needs. Lossy by design (lower-casing, whitespace), so it is for masked LMs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from genloom.errors import UserError

EOS = "<|endoftext|>"
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4 when trained here
_WORD_START = "▁"  # marks the first piece of a word while WordPiece merges are learned
_BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


class CharTokenizer:
    """Character-level tokenizer over a fixed alphabet, optionally with UTF-8 byte fallback."""

    kind = "char"

    def __init__(self, chars: Sequence[str], byte_fallback: bool = False, specials: Sequence[str] = ()) -> None:
        self.chars = list(chars)
        self.byte_fallback = byte_fallback
        self.specials = list(specials)  # multi-character tokens with one id each (chat markers), after the bytes
        self.itos = self.chars + (_BYTE_TOKENS if byte_fallback else []) + self.specials
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.byte_offset = len(self.chars)
        self.special_offset = len(self.itos) - len(self.specials)
        self.special_ids = {t: self.special_offset + i for i, t in enumerate(self.specials)}
        self.eos_id: int | None = None

    @classmethod
    def train(cls, texts: Iterable[str], byte_fallback: bool = False) -> CharTokenizer:
        """The sorted set of characters in `texts` becomes the vocabulary."""
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise UserError("cannot build a character vocabulary from an empty corpus")
        return cls(sorted(chars), byte_fallback)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        if self.specials and any(t in text for t in self.specials):
            return split_on_specials(text, self.special_ids, self._encode_plain)
        return self._encode_plain(text)

    def _encode_plain(self, text: str) -> list[int]:
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            pass
        ids: list[int] = []
        for pos, c in enumerate(text):
            if c in stoi:
                ids.append(stoi[c])
            elif self.byte_fallback:
                ids.extend(self.byte_offset + b for b in c.encode("utf-8"))
            else:
                raise UserError(
                    f"character {c!r} at position {pos} is not in the tokenizer's vocabulary "
                    f"({len(self.chars)} characters; train with data.byte_fallback=true to accept any text)"
                ) from None
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out: list[str] = []
        pending = bytearray()  # fallback bytes wait until they form whole UTF-8 characters
        for i in ids:
            if i >= self.special_offset:  # a special token: flush pending bytes, then the token's text
                if pending:
                    out.append(pending.decode("utf-8", errors="replace"))
                    pending.clear()
                out.append(self.itos[i])
                continue
            if i >= self.byte_offset:
                pending.append(i - self.byte_offset)
                continue
            if pending:
                out.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            out.append(self.itos[i])
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def to_hf(self) -> HFTokenizer:
        """This tokenizer as a `tokenizers.Tokenizer`: BPE without merges is character-level."""
        vocab = {tok: i for i, tok in enumerate(self.itos[: self.special_offset])}
        tok = HFTokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=self.byte_fallback))
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        if self.specials:
            tok.add_special_tokens(self.specials)  # ids continue after the vocabulary, in this order
        return tok

    def save(self, path: str | Path) -> None:
        from genloom.run import atomic_write_text

        atomic_write_text(path, self.to_hf().to_str(pretty=True))


class _HFBacked:
    """Encoding, decoding and saving through a `tokenizers.Tokenizer` (shared by BPE and WordPiece).

    `encode` adds no template tokens ([CLS]/[SEP]); special tokens written in the text (`[MASK]`) stay."""

    hf: HFTokenizer

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def save(self, path: str | Path) -> None:
        from genloom.run import atomic_write_text

        atomic_write_text(path, self.hf.to_str(pretty=True))


class BPETokenizer(_HFBacked):
    """Byte-level BPE trained with Hugging Face `tokenizers`; `<|endoftext|>` separates documents."""

    kind = "bpe"

    def __init__(self, hf: HFTokenizer) -> None:
        self.hf = hf
        self.eos_id: int | None = hf.token_to_id(EOS)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> BPETokenizer:
        if vocab_size < 257:
            raise UserError(f"data.vocab_size: byte-level BPE needs at least 257 tokens, got {vocab_size}")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()


class WordPieceTokenizer(_HFBacked):
    """BERT's WordPiece with its special tokens, through Hugging Face `tokenizers`."""

    kind = "wordpiece"

    def __init__(self, hf: HFTokenizer, source: str = "tokenizer.json") -> None:
        self.hf = hf
        ids = {}
        for token in BERT_SPECIAL_TOKENS:
            i = hf.token_to_id(token)
            if i is None:
                raise UserError(f"{source}: a BERT tokenizer needs the special token {token}; it is missing")
            ids[token] = i
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (ids[t] for t in BERT_SPECIAL_TOKENS)
        self.special_ids = sorted(ids.values())
        self.eos_id: int | None = None  # documents are joined without a separator token
        prefix = getattr(hf.model, "continuing_subword_prefix", "##") or "##"
        vocab = hf.get_vocab(with_added_tokens=True)
        self.continuation = [False] * self.vocab_size  # id -> does this piece continue a word (`##ing`)?
        for token, i in vocab.items():
            self.continuation[i] = token.startswith(prefix) and len(token) > len(prefix)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096) -> WordPieceTokenizer:
        """An uncased BERT tokenizer: BERT's normalizer and pre-tokenizer, `[CLS] A [SEP]` template.

        The pieces are learned by byte-pair merges over words marked with a leading `▁`, then written as
        WordPiece: `▁piece` starts a word (`piece`), any other piece continues one (`##piece`); every
        character is kept in both forms so nothing seen in training becomes [UNK]. (The library's own
        WordPiece trainer breaks ties in hash-map order, so the same corpus gave different vocabularies.)"""
        texts = list(texts)
        if vocab_size < 100:
            raise UserError(f"data.vocab_size: WordPiece needs at least 100 tokens, got {vocab_size}")
        normalizer = normalizers.BertNormalizer(lowercase=True)
        chars = sorted(set("".join(normalizer.normalize_str(t) for t in texts)) - set(" \t\n\r"))
        marked = HFTokenizer(models.BPE())
        marked.normalizer = normalizer
        marked.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Metaspace(replacement=_WORD_START, split=False)]
        )
        trainer = trainers.BpeTrainer(
            vocab_size=max(vocab_size - len(chars) - len(BERT_SPECIAL_TOKENS), len(chars) + 2),
            initial_alphabet=[*chars, _WORD_START],
            show_progress=False,
        )
        marked.train_from_iterator(texts, trainer)
        pieces = {*chars, *(f"##{c}" for c in chars)}
        for token in marked.get_vocab():
            if token.startswith(_WORD_START):
                pieces.add(token[len(_WORD_START) :])
            else:
                pieces.add(f"##{token}")
        pieces -= {"", "##", *BERT_SPECIAL_TOKENS}
        vocab = {token: i for i, token in enumerate([*BERT_SPECIAL_TOKENS, *sorted(pieces)])}
        tok = HFTokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
        tok.normalizer = normalizer
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        tok.add_special_tokens(list(BERT_SPECIAL_TOKENS))
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def id_to_token(self, i: int) -> str:
        return self.hf.id_to_token(i) or "[UNK]"


Tokenizer = CharTokenizer | BPETokenizer | WordPieceTokenizer


def train_tokenizer(
    kind: Literal["char", "bpe", "wordpiece"], texts: Sequence[str], vocab_size: int = 4096, byte_fallback: bool = False
) -> Tokenizer:
    """Build the tokenizer a data config asks for from the training texts."""
    if kind == "char":
        return CharTokenizer.train(texts, byte_fallback=byte_fallback)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(texts, vocab_size=vocab_size)
    return BPETokenizer.train(texts, vocab_size=vocab_size)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a `tokenizer.json`: a merge-free BPE without pre-tokenizer is our character tokenizer."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        spec = json.loads(text)
        model = spec["model"]
    except FileNotFoundError:
        raise UserError(f"{path}: tokenizer file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a valid tokenizer.json ({e})") from None
    except OSError as e:  # a directory, unreadable, ...
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not isinstance(model, dict):
        raise UserError(f"{path}: 'model' must be an object, got {type(model).__name__}")
    if model.get("type") == "BPE" and not model.get("merges") and spec.get("pre_tokenizer") is None:
        vocab, added = _char_spec(spec, model, path)
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        byte_fallback = bool(model.get("byte_fallback"))
        chars = tokens[: len(tokens) - 256] if byte_fallback else tokens
        return CharTokenizer(chars, byte_fallback, [content for _, content in sorted(added)])
    if model.get("type") == "WordPiece":
        try:
            return WordPieceTokenizer(HFTokenizer.from_str(text), str(path))
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{path}: not a valid tokenizer.json ({str(e).splitlines()[0]})") from None
    try:
        return BPETokenizer(HFTokenizer.from_str(text))
    except Exception as e:  # the library's own parse error, shortened to one line
        raise UserError(f"{path}: not a valid tokenizer.json ({str(e).splitlines()[0]})") from None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _char_spec(spec: dict[str, Any], model: dict[str, Any], path: Path) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """The vocabulary and added tokens of a character tokenizer's spec, each checked for its JSON type."""
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise UserError(f"{path}: model.vocab must be an object of token → id, got {type(vocab).__name__}")
    for token, token_id in vocab.items():
        if not _is_id(token_id):
            raise UserError(f"{path}: model.vocab[{token!r}] must be a non-negative integer id, got {token_id!r}")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise UserError(f"{path}: model.vocab ids must be 0..{len(vocab) - 1}, each once")
    items = spec.get("added_tokens") or []
    if not isinstance(items, list):
        raise UserError(f"{path}: added_tokens must be a list, got {type(items).__name__}")
    added = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not _is_id(item.get("id")) or not isinstance(item.get("content"), str):
            raise UserError(f"{path}: added_tokens[{i}] must be an object with an integer 'id' and a string 'content'")
        added.append((item["id"], item["content"]))
    return vocab, added


def split_on_specials(text: str, special_ids: dict[str, int], encode: Callable[[str], list[int]]) -> list[int]:
    """Ids of `text` where each special token (longest first) is one id and the rest goes to `encode`."""
    ids: list[int] = []
    rest = text
    while rest:
        hits = [(rest.find(t), -len(t), t) for t in special_ids if t in rest]
        if not hits:
            ids.extend(encode(rest))
            break
        start, _, token = min(hits)
        if start:
            ids.extend(encode(rest[:start]))
        ids.append(special_ids[token])
        rest = rest[start + len(token) :]
    return ids


def add_special_tokens(tokenizer: Tokenizer, tokens: Sequence[str]) -> Tokenizer:
    """A copy of `tokenizer` in which each of `tokens` encodes to one new id (appended after the existing
    ids, in order); tokens it already has as single ids are kept. For chat markers (genloom tune sft)."""
    if isinstance(tokenizer, CharTokenizer):
        new = [t for t in tokens if t not in tokenizer.specials and not (len(t) == 1 and t in tokenizer.stoi)]
        return CharTokenizer(tokenizer.chars, tokenizer.byte_fallback, [*tokenizer.specials, *new])
    hf = HFTokenizer.from_str(tokenizer.hf.to_str())
    hf.add_special_tokens([t for t in tokens if hf.token_to_id(t) is None])
    if isinstance(tokenizer, WordPieceTokenizer):
        return WordPieceTokenizer(hf)
    return BPETokenizer(hf)
