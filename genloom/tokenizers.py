"""Text tokenizers: character-level and byte-level BPE, both stored as a Hugging Face `tokenizer.json`.

- `CharTokenizer`: one id per character seen in the corpus (nanoGPT's shakespeare_char). With
  `byte_fallback=True`, characters outside the vocabulary become their UTF-8 bytes (`<0x..>` tokens, as
  in Llama's tokenizer), so any Unicode string round-trips. It is saved as a BPE model with no merges,
  which is exactly character-level, so the `tokenizers` library reads the same file and gives the same ids.
- `BPETokenizer`: byte-level BPE (GPT-2, Radford et al. 2019) trained on the user's corpus with the
  `tokenizers` library. Byte-level means every string round-trips. Unicode normalization is done by the
  data pipeline, never inside the tokenizer, so `decode(encode(s)) == s` holds for any `s`.
- `CodeTokenizer`: byte-level BPE for source code. Its pre-tokenizer keeps a line break with the
  indentation after it as one piece (so BPE learns `\n    ` and `\n        ` as single tokens, as
  Codex's added whitespace tokens do), splits digits one by one (as PaLM and StarCoder do), and keeps
  identifiers and runs of punctuation together. It reserves the fill-in-the-middle tokens of Bavarian
  et al. 2022 (`<fim_prefix>`, `<fim_suffix>`, `<fim_middle>`, `<fim_pad>`) and `<|endoftext|>`; those
  ids only ever come from code that asks for them by id: text is always encoded as text, so a prompt
  holding the string `<fim_middle>` is bytes like any other (`encode_special_tokens`).
- `WordPieceTokenizer`: BERT's WordPiece (Devlin et al. 2019, §3; Wu et al. 2016) with the special
  tokens [PAD] [UNK] [CLS] [SEP] [MASK], trained here (uncased) or read from a Hugging Face BERT
  `tokenizer.json`. Words split into pieces; a piece that continues a word starts with `##`, which is
  what whole-word masking needs. Lossy by design (lower-casing, whitespace), so it is for masked LMs.
  A pretrained masked LM's tokenizer may be any model kind the `tokenizers` library reads (WordLevel,
  BPE, Unigram); the special tokens are then the ones its `tokenizer_config.json` names.

`load_pretrained_tokenizer` reads a pretrained model's directory so that text encodes exactly as with
the model's own tokenizer (transformers' `AutoTokenizer`): the padding and truncation stored in
`tokenizer.json` are dropped (they are for batches of a fixed shape, not for one text), and the special
tokens around a text are the post-processor's, or `tokenizer_config.json`'s `add_bos_token` /
`add_eos_token` when it sets them. `vocab.txt`-only BERT directories and `tokenizer.model`
(SentencePiece) directories are converted (the latter through transformers' converter).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HFTokenizer

from genloom.errors import UserError

EOS = "<|endoftext|>"
BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4 when trained here
_WORD_START = "▁"  # marks the first piece of a word while WordPiece merges are learned
_BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FIM_PAD = "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>"
CODE_SPECIAL_TOKENS = (EOS, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FIM_PAD)  # ids 0-4 of a code tokenizer
# the pieces BPE may merge within (never across), in order of preference: a line break with the indentation
# after it; trailing blanks; an identifier or keyword (with one leading space); one digit; a run of
# punctuation (with one leading space); any other run of blanks
CODE_PIECES = r"[\r\n]+[ \t]*|[ \t]+(?=[\r\n]|$)| ?[\p{L}_][\p{L}\p{N}_]*|\p{N}| ?[^\s\p{L}\p{N}]+|[ \t]+"


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

    `encode` adds no template tokens ([CLS]/[SEP]); special tokens written in the text (`[MASK]`) stay.
    `encode_framed` adds what the tokenizer's post-processor adds (a pretrained Llama's `<s>`, BERT's
    `[CLS] … [SEP]`): the ids the model's own tokenizer gives for one text."""

    hf: HFTokenizer

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_framed(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=True).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def save(self, path: str | Path) -> None:
        from genloom.run import atomic_write_text

        atomic_write_text(path, self.hf.to_str(pretty=True))


class BPETokenizer(_HFBacked):
    """Byte-level BPE trained with Hugging Face `tokenizers`; `<|endoftext|>` separates documents.

    Also the handle of any pretrained causal LM's tokenizer (`kind` then names its model: "bpe",
    "unigram", "wordlevel", "wordpiece")."""

    kind = "bpe"

    def __init__(self, hf: HFTokenizer) -> None:
        self.hf = hf
        self.kind = type(hf.model).__name__.lower()
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


class CodeTokenizer(BPETokenizer):
    """Byte-level BPE for code with the fill-in-the-middle special tokens (module docstring)."""

    kind = "code"

    def __init__(self, hf: HFTokenizer) -> None:
        super().__init__(hf)
        self.kind = "code"
        hf.encode_special_tokens = True  # text never becomes a special id (not stored in tokenizer.json)
        ids = {t: hf.token_to_id(t) for t in CODE_SPECIAL_TOKENS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise UserError(f"tokenizer.json: a code tokenizer needs the special tokens {', '.join(missing)}")
        self.fim_prefix_id: int = ids[FIM_PREFIX]  # type: ignore[assignment]
        self.fim_suffix_id: int = ids[FIM_SUFFIX]  # type: ignore[assignment]
        self.fim_middle_id: int = ids[FIM_MIDDLE]  # type: ignore[assignment]
        self.fim_pad_id: int = ids[FIM_PAD]  # type: ignore[assignment]
        self.special_ids = sorted(i for i in ids.values() if i is not None)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> CodeTokenizer:
        if vocab_size < 256 + len(CODE_SPECIAL_TOKENS):
            raise UserError(
                f"data.vocab_size: a code tokenizer needs at least {256 + len(CODE_SPECIAL_TOKENS)} tokens, got {vocab_size}"
            )
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(CODE_PIECES), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(CODE_SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        try:
            return super().encode(text)
        except TypeError:  # the library takes only valid Unicode: a lone surrogate (JSON's "\ud800") is refused
            bad = next((c for c in text if 0xD800 <= ord(c) <= 0xDFFF), "?")
            raise UserError(f"text holds an unpaired surrogate U+{ord(bad):04X}, which is not valid Unicode") from None

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        try:
            return super().encode_batch(texts)
        except TypeError:
            return [self.encode(t) for t in texts]  # names the bad text

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; the FIM tokens and `<|endoftext|>` are written as their names."""
        return self.hf.decode(list(ids), skip_special_tokens=False)


class WordPieceTokenizer(_HFBacked):
    """BERT's WordPiece with its special tokens, through Hugging Face `tokenizers`.

    `specials` names the pad, unk, cls, sep and mask tokens (BERT's bracketed ones by default; a
    pretrained checkpoint's `tokenizer_config.json` may name others, such as RoBERTa-style `<s>`)."""

    kind = "wordpiece"

    def __init__(
        self, hf: HFTokenizer, source: str = "tokenizer.json", specials: Mapping[str, str] | None = None
    ) -> None:
        self.hf = hf
        self.kind = type(hf.model).__name__.lower()  # a pretrained checkpoint's may be "bpe", "unigram", ...
        names = dict(zip(("pad", "unk", "cls", "sep", "mask"), BERT_SPECIAL_TOKENS, strict=True)) | dict(specials or {})
        ids = {}
        for role in ("pad", "unk", "cls", "sep", "mask"):
            i = hf.token_to_id(names[role])
            if i is None:
                raise UserError(
                    f"{source}: a BERT tokenizer needs the special {role} token {names[role]}; it is missing"
                )
            ids[role] = i
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids.values()
        self.special_ids = sorted(set(ids.values()))
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

    def encode_framed(self, text: str) -> list[int]:
        """`[CLS] text [SEP]` as the post-processor frames it (or by hand, when the file has none)."""
        if self.hf.post_processor is None:
            return [self.cls_id, *self.encode(text), self.sep_id]
        return self.hf.encode(text, add_special_tokens=True).ids


Tokenizer = CharTokenizer | BPETokenizer | WordPieceTokenizer


def train_tokenizer(
    kind: Literal["char", "bpe", "code", "wordpiece"],
    texts: Sequence[str],
    vocab_size: int = 4096,
    byte_fallback: bool = False,
) -> Tokenizer:
    """Build the tokenizer a data config asks for from the training texts."""
    if kind == "char":
        return CharTokenizer.train(texts, byte_fallback=byte_fallback)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(texts, vocab_size=vocab_size)
    if kind == "code":
        return CodeTokenizer.train(texts, vocab_size=vocab_size)
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
        hf = HFTokenizer.from_str(text)
    except Exception as e:  # the library's own parse error, shortened to one line
        raise UserError(f"{path}: not a valid tokenizer.json ({str(e).splitlines()[0]})") from None
    if hf.token_to_id(FIM_MIDDLE) is not None:  # a code tokenizer (its special tokens stay out of text)
        return CodeTokenizer(hf)
    try:
        return BPETokenizer(hf)
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


# ---- pretrained checkpoints' tokenizers ------------------------------------------------------------

TOKENIZER_CONFIG = "tokenizer_config.json"
BERT_ROLES = ("pad", "unk", "cls", "sep", "mask")


def token_text(value: object) -> str | None:
    """A special token as `tokenizer_config.json` writes it: a string, or an AddedToken dict with `content`."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def read_tokenizer_config(directory: Path) -> dict[str, object]:
    """`tokenizer_config.json` of a pretrained directory ({} when there is none)."""
    path = directory / TOKENIZER_CONFIG
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a JSON object")
    return config


def _bert_from_vocab(vocab: Path, config: Mapping[str, object]) -> HFTokenizer:
    """BERT's tokenizer from a bare `vocab.txt`, built as transformers' `BertConverter` builds it."""
    names = {role: token_text(config.get(f"{role}_token")) or f"[{role.upper()}]" for role in BERT_ROLES}
    try:
        tok = HFTokenizer(models.WordPiece.from_file(str(vocab), unk_token=names["unk"]))
    except Exception as e:
        raise UserError(f"{vocab}: not a readable WordPiece vocabulary ({str(e).splitlines()[0]})") from None
    strip = config.get("strip_accents")
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=strip if isinstance(strip, bool) else None,
        lowercase=bool(config.get("do_lower_case", True)),
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens([t for t in names.values() if tok.token_to_id(t) is not None])
    cls, sep = names["cls"], names["sep"]
    if tok.token_to_id(cls) is not None and tok.token_to_id(sep) is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
        )
    return tok


def _from_sentencepiece(directory: Path) -> HFTokenizer:
    """A `tokenizer.model` (SentencePiece) directory through transformers' own conversion."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(directory)).backend_tokenizer  # type: ignore[no-any-return]
    except ImportError as e:
        raise UserError(
            f"{directory / 'tokenizer.model'}: converting a SentencePiece model needs transformers and "
            f"sentencepiece installed ({e}); or give the directory a tokenizer.json"
        ) from None
    except Exception as e:
        raise UserError(f"{directory / 'tokenizer.model'}: cannot convert it ({str(e).splitlines()[0]})") from None


def set_bos_eos(hf: HFTokenizer, add_bos: bool, add_eos: bool, bos: str | None, eos: str | None) -> None:
    """Frame every text with `bos`/`eos` as transformers' `update_post_processor` does."""
    add_bos = add_bos and bos is not None and hf.token_to_id(bos) is not None
    add_eos = add_eos and eos is not None and hf.token_to_id(eos) is not None
    single = f"{f'{bos}:0 ' if add_bos else ''}$A:0{f' {eos}:0' if add_eos else ''}"
    pair = f"{single}{f' {bos}:1' if add_bos else ''} $B:1{f' {eos}:1' if add_eos else ''}"
    specials = [(t, hf.token_to_id(t)) for t, on in ((bos, add_bos), (eos, add_eos)) if on and t is not None]
    hf.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def load_pretrained_tokenizer(directory: str | Path, masked: bool = False) -> BPETokenizer | WordPieceTokenizer:
    """The tokenizer of a pretrained model directory, encoding exactly as the model's own tokenizer.

    Reads `tokenizer.json` (any model kind), else `vocab.txt` (BERT), else `tokenizer.model`
    (SentencePiece); `masked` gives the masked-LM handle (special tokens named by the config)."""
    directory = Path(directory)
    config = read_tokenizer_config(directory)
    source = directory / "tokenizer.json"
    if source.exists():
        try:
            hf = HFTokenizer.from_file(str(source))
        except Exception as e:  # the library's own parse error, shortened to one line
            raise UserError(f"{source}: not a valid tokenizer.json ({str(e).splitlines()[0]})") from None
    elif (directory / "vocab.txt").exists():
        source = directory / "vocab.txt"
        hf = _bert_from_vocab(source, config)
    elif (directory / "tokenizer.model").exists():
        source = directory / "tokenizer.model"
        hf = _from_sentencepiece(directory)
    else:
        raise UserError(f"{directory}: no tokenizer.json, vocab.txt or tokenizer.model")
    hf.no_padding()  # stored for fixed-shape batches; one text is encoded alone (transformers does the same)
    hf.no_truncation()
    framed_by_config = "add_bos_token" in config or "add_eos_token" in config or hf.post_processor is None
    if not masked and framed_by_config:
        bos, eos = token_text(config.get("bos_token")), token_text(config.get("eos_token"))
        set_bos_eos(hf, bool(config.get("add_bos_token")), bool(config.get("add_eos_token")), bos, eos)
    if masked:
        specials = {role: t for role in BERT_ROLES if (t := token_text(config.get(f"{role}_token")))}
        return WordPieceTokenizer(hf, str(source), specials)
    return BPETokenizer(hf)


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
