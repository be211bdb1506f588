"""Text ingestion and preprocessing: files, directories and JSONL into token streams for training.

The pipeline, in order: read documents (one file, every file of a directory matching a glob, or one
JSONL record per document) → decode bytes (strict by default: the error names the file and byte offset)
→ Unicode normalization (NFC) → optional whitespace cleanup → exact duplicate removal → deterministic
train/validation split → tokenize → one int64 tensor per split, from which batches are random windows
(as in nanoGPT's `get_batch`). With `scrub_pii`, personal data (e-mail addresses, phone numbers, IBANs, cards,
SSNs, IP addresses, URLs) becomes typed placeholders right after normalization (`genloom/data/pii.py`). The random windows are drawn from a `torch.Generator` the trainer owns,
so saving its state saves the data position.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sysconfig
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from genloom.data import DATA_DIR
from genloom.data.files import check_data_file, read_data_file
from genloom.data.pii import Scrubber, parse_kinds
from genloom.errors import UserError
from genloom.tokenizers import CharTokenizer, Tokenizer, train_tokenizer

BUNDLED = {"tinyshakespeare": "tinyshakespeare/input.txt"}  # CLI name -> path under DATA_DIR
PYTHON_STDLIB = "python-stdlib"  # the source tree every machine has: the running interpreter's standard library
MIN_DOCS_FOR_DOCUMENT_SPLIT = 20  # fewer documents than this: split the joined text by position
CHAR_DOC_SEPARATOR = "\n\n"  # between documents for character tokenizers (BPE uses <|endoftext|>)
# what a directory's files are read by default: prose, markup and source code (docs/train-your-own-text.md)
TEXT_EXTENSIONS = (
    *(".txt", ".text", ".md", ".markdown", ".rst", ".org", ".adoc", ".tex", ".html", ".htm", ".xml"),
    *(".yaml", ".yml", ".toml", ".ini", ".cfg", ".py", ".pyi", ".ipynb", ".js", ".mjs", ".ts", ".jsx", ".tsx"),
    *(".java", ".kt", ".scala", ".groovy", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".cs", ".go", ".rs"),
    *(".rb", ".php", ".swift", ".m", ".mm", ".r", ".jl", ".lua", ".pl", ".sh", ".bash", ".zsh", ".fish"),
    *(".ps1", ".sql", ".css", ".scss", ".less", ".vue", ".svelte", ".hs", ".ml", ".ex", ".exs", ".erl"),
    *(".clj", ".dart", ".zig", ".nim", ".f90", ".asm", ".s", ".cmake", ".gradle", ".proto", ".graphql"),
)


@dataclass
class TextDataConfig:
    source: str = "tinyshakespeare"  # a bundled name, a text file, a directory, or a .jsonl file
    glob: str = "**/*"  # which files of a directory to read (recursive with **)
    extensions: tuple[str, ...] = TEXT_EXTENSIONS  # of the files the glob matches, read these suffixes (empty: all)
    jsonl_field: str = "text"  # the field holding each document in a JSONL file
    encoding: str = "utf-8"  # how the files are encoded
    encoding_errors: Literal["strict", "replace"] = "strict"  # strict: stop at undecodable bytes
    normalize: Literal["NFC", "NFKC", "none"] = "NFC"  # Unicode normalization of every document
    clean_whitespace: bool = False  # unify newlines, strip line ends, collapse runs of blank lines
    dedup: bool = True  # drop exact duplicate documents (after normalization), keeping the first
    val_fraction: float = 0.1  # share of the data held out for validation
    split_seed: int = 0  # seed of the document shuffle for the train/validation split
    # character-level, byte-level BPE, code BPE with fill-in-the-middle tokens (docs/code.md), or BERT WordPiece
    tokenizer: Literal["char", "bpe", "code", "wordpiece"] = "char"
    vocab_size: int = 4096  # BPE and WordPiece only: the vocabulary is learned up to this size
    byte_fallback: bool = False  # char only: unseen characters become UTF-8 byte tokens
    # personal data → typed placeholders before training: true (every kind), or a list of email, phone, iban,
    # card, ssn, ip, url (genloom/data/pii.py); counted per kind in summary.json and card.md
    scrub_pii: bool | tuple[str, ...] = False
    verbatim_index: int = (
        24  # gpt runs: bytes per n-gram of the training-text index (block_verbatim, eval memorization); 0: none
    )
    # a source tree (genloom/data/code.py): honour .gitignore, skip binary, generated, vendored and large files
    code: bool = False
    exclude: tuple[str, ...] = ()  # code: more paths to skip, in .gitignore syntax (e.g. "tests/")
    max_file_bytes: int = 1_000_000  # code: files larger than this are skipped (minified or data files)
    fim_rate: float = 0.0  # share of training contexts' documents rearranged for fill-in-the-middle
    fim_spm_rate: float = 0.5  # of those, the share in suffix-prefix-middle order (the rest prefix-suffix-middle)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        parse_kinds(self.scrub_pii, "scrub_pii")  # an unknown kind names itself and the valid ones
        if self.verbatim_index != 0 and not 4 <= self.verbatim_index <= 1024:
            raise ValueError(
                f"verbatim_index must be 0 (no index) or 4..1024 bytes per n-gram, got {self.verbatim_index}"
            )
        for name in ("fim_rate", "fim_spm_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.fim_rate > 0 and self.tokenizer != "code":
            raise ValueError(
                f"fim_rate {self.fim_rate} needs the fill-in-the-middle tokens of tokenizer='code', got {self.tokenizer!r}"
            )
        if self.max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be positive, got {self.max_file_bytes}")

    @property
    def pii_kinds(self) -> tuple[str, ...]:
        """The kinds of personal data scrubbed from this corpus (empty: none)."""
        return parse_kinds(self.scrub_pii, "scrub_pii")


@dataclass
class Corpus:
    """Preprocessed documents split into train and validation, with what preprocessing did."""

    train: list[str]
    val: list[str]
    stats: dict[str, Any] = field(default_factory=dict)
    train_paths: list[str] = field(default_factory=list)  # code corpora: each document's file, relative
    val_paths: list[str] = field(default_factory=list)


def resolve_source(source: str) -> Path:
    """A bundled dataset name, `python-stdlib` (the running interpreter's standard library, PSF licence), or
    a user path, checked to exist."""
    if source in BUNDLED:
        return DATA_DIR / BUNDLED[source]
    if source == PYTHON_STDLIB:
        return Path(sysconfig.get_paths()["stdlib"])
    path = Path(source).expanduser()
    if not path.exists():
        names = ", ".join(BUNDLED)
        raise UserError(f"{source}: no such file or directory (bundled datasets: {names})")
    return path


def _decode(raw: bytes, path: Path, cfg: TextDataConfig) -> str:
    try:
        return raw.decode(cfg.encoding, errors=cfg.encoding_errors)
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: undecodable {cfg.encoding} bytes at byte offset {e.start}; "
            "pass --encoding-errors replace (data.encoding_errors=replace) to substitute U+FFFD and go on"
        ) from None
    except LookupError:
        raise UserError(f"data.encoding: unknown encoding {cfg.encoding!r}") from None


def _read_jsonl(raw: bytes, path: Path, cfg: TextDataConfig) -> list[str]:
    docs = []
    for lineno, line in enumerate(_decode(raw, path, cfg).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or cfg.jsonl_field not in record:
            raise UserError(f"{path}:{lineno}: no field {cfg.jsonl_field!r} (set --jsonl-field to the text field)")
        value = record[cfg.jsonl_field]
        if not isinstance(value, str):
            raise UserError(f"{path}:{lineno}: field {cfg.jsonl_field!r} must be a string, got {type(value).__name__}")
        docs.append(value)
    return docs


def read_documents(cfg: TextDataConfig, report: dict[str, int | str] | None = None) -> list[str]:
    """Raw documents from the configured source, in a deterministic order. `report` receives which files
    were read and which skipped (by suffix), for the summary printed before training."""
    path = resolve_source(cfg.source)
    if path.is_dir():
        matched = sorted(p for p in path.glob(cfg.glob) if p.is_file())
        wanted = {e.lower() for e in cfg.extensions}
        files = [p for p in matched if not wanted or p.suffix.lower() in wanted]
        skipped = Counter(p.suffix.lower() or "(no suffix)" for p in matched if p not in set(files))
        if report is not None:
            report.update(files_matched=len(matched), files_read=len(files), files_skipped=sum(skipped.values()))
            report["read_by_suffix"] = ", ".join(
                f"{k} {v}" for k, v in Counter(p.suffix.lower() for p in files).most_common()
            )
            report["skipped_by_suffix"] = ", ".join(f"{k} {v}" for k, v in skipped.most_common())
        if not files:
            also = f" ({len(matched)} matched, none with a text or code suffix: set data.extensions)" if matched else ""
            raise UserError(f"{path}: no files matching {cfg.glob!r}{also} (set --glob to choose files)")
    else:
        files = [path]
    total = 0
    for file in files:  # every size first: a corpus too large for memory is refused before any reading
        total += check_data_file(file, total)
    docs: list[str] = []
    for file in files:
        raw = read_data_file(file)
        if file.suffix == ".jsonl":
            docs.extend(_read_jsonl(raw, file, cfg))
        else:
            docs.append(_decode(raw, file, cfg))
    return docs


_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")


def clean_whitespace(text: str) -> str:
    """Unify newlines, drop trailing spaces, keep at most one blank line in a row, trim the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def preprocess(docs: list[str], cfg: TextDataConfig) -> tuple[list[str], dict[str, Any]]:
    """Normalize, scrub personal data (if asked), clean and deduplicate documents; empty documents are
    dropped. The stats hold `pii_scrubbed` (replacements per kind) when scrubbing is on."""
    out: list[str] = []
    seen: set[bytes] = set()
    duplicates = 0
    scrubber = Scrubber(cfg.pii_kinds) if cfg.pii_kinds else None
    for doc in docs:
        if cfg.normalize != "none":
            doc = unicodedata.normalize(cfg.normalize, doc)
        if scrubber is not None:
            doc = scrubber(doc)
        if cfg.clean_whitespace:
            doc = clean_whitespace(doc)
        if not doc.strip():
            continue
        if cfg.dedup:
            digest = hashlib.sha256(doc.encode("utf-8", "surrogatepass")).digest()
            if digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
        out.append(doc)
    if not out:
        raise UserError(f"{cfg.source}: the corpus is empty (no text left after reading and preprocessing)")
    stats: dict[str, Any] = {"documents_read": len(docs), "duplicates_removed": duplicates, "documents": len(out)}
    if scrubber is not None:
        stats["pii_scrubbed"] = scrubber.report()
    return out, stats


def validation_indices(n_docs: int, cfg: TextDataConfig) -> set[int]:
    """Which of `n_docs` documents are held out: a seeded shuffle's first `val_fraction`."""
    order = list(range(n_docs))
    random.Random(cfg.split_seed).shuffle(order)
    return set(order[: max(1, round(n_docs * cfg.val_fraction))])


def split(docs: list[str], cfg: TextDataConfig) -> tuple[list[str], list[str], str]:
    """Deterministic train/validation split: by document when there are many, else by position."""
    if len(docs) >= MIN_DOCS_FOR_DOCUMENT_SPLIT:
        val_idx = validation_indices(len(docs), cfg)
        train = [d for i, d in enumerate(docs) if i not in val_idx]
        val = [d for i, d in enumerate(docs) if i in val_idx]
        return train, val, "documents"
    text = CHAR_DOC_SEPARATOR.join(docs)
    cut = int(len(text) * (1 - cfg.val_fraction))  # nanoGPT's 90/10 cut by character position
    return [text[:cut]], [text[cut:]], "position"


def load_corpus(cfg: TextDataConfig) -> Corpus:
    """Read, preprocess and split the configured text source."""
    report: dict[str, Any] = {}
    docs, stats = preprocess(read_documents(cfg, report), cfg)
    stats = {**report, **stats}
    train, val, how = split(docs, cfg)
    stats["split"] = how
    stats["characters"] = sum(len(d) for d in docs)
    return Corpus(train, val, stats)


def build_tokenizer(corpus: Corpus, cfg: TextDataConfig) -> Tokenizer:
    """Char vocabularies cover every split (nanoGPT does the same); BPE (and code BPE) learns merges from
    train only."""
    if cfg.tokenizer == "char":
        return train_tokenizer(
            "char", corpus.train + corpus.val + [CHAR_DOC_SEPARATOR], byte_fallback=cfg.byte_fallback
        )
    return train_tokenizer(cfg.tokenizer, corpus.train, vocab_size=cfg.vocab_size)


def encode_documents(docs: list[str], tokenizer: Tokenizer, source: str = "corpus") -> torch.Tensor:
    """Token ids of the documents joined by the tokenizer's separator, as one int64 tensor; an error
    names `source`, the corpus the documents came from (e.g. a character the vocabulary lacks)."""
    if isinstance(tokenizer, CharTokenizer):
        try:
            ids = tokenizer.encode(CHAR_DOC_SEPARATOR.join(docs))
        except UserError as e:
            raise UserError(f"{source}: {e}") from None
    else:
        ids = []
        for doc_ids in tokenizer.encode_batch(docs):
            ids.extend(doc_ids)
            if tokenizer.eos_id is not None:
                ids.append(tokenizer.eos_id)
    return torch.tensor(ids, dtype=torch.long)


class TokenData:
    """Train and validation token streams; batches are random windows of `block_size + 1` tokens."""

    def __init__(self, train: torch.Tensor, val: torch.Tensor, block_size: int, source: str = "corpus") -> None:
        for name, ids in (("training", train), ("validation", val)):
            if len(ids) < block_size + 2:
                raise UserError(
                    f"{source}: the {name} split has {len(ids)} tokens, fewer than model.block_size + 2 = "
                    f"{block_size + 2}; use more text, a smaller model.block_size, or another data.val_fraction"
                )
        self.splits = {"train": train, "val": val}
        self.block_size = block_size
        self._offsets = torch.arange(block_size + 1)

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets, each (batch_size, block_size); one gather, no Python loop."""
        data = self.splits[split]
        starts = torch.randint(len(data) - self.block_size - 1, (batch_size, 1), generator=generator)
        windows = data[starts + self._offsets]  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]

    def windows(self, split: str, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split as consecutive non-overlapping windows, for an exact evaluation."""
        data = self.splits[split]
        T = self.block_size
        n = (len(data) - 1) // T
        x = data[: n * T].view(n, T)
        y = data[1 : n * T + 1].view(n, T)
        return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]
