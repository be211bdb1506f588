"""Parallel text: (source, target) pairs for translation and other sequence-to-sequence tasks.

Pairs come from a TSV file (`source<TAB>target`, one pair per line), a JSONL file (`{"source", "target"}`
per line), or a bundled dataset (`tatoeba-eng-fra`). Reading is strict: a line without a tab, a record
without a field, or an empty side is an error naming the file and line. The train/validation/test split
is decided by a hash of the *source* sentence, so every translation of one sentence lands in the same
split (Tatoeba has many French renderings of one English sentence) and the split never changes when the
file grows.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from genloom.data import DATA_DIR
from genloom.data.files import check_data_file, read_data_file
from genloom.errors import UserError

BUNDLED_PAIRS = {"tatoeba-eng-fra": "tatoeba_eng_fra/fra.txt"}  # CLI name -> TSV under DATA_DIR
TRUNCATED_LAST_LINE = {"tatoeba-eng-fra"}  # the bundled file ends in a cut-off pair (see its SOURCE.md)


@dataclass(frozen=True)
class Pair:
    source: str
    target: str


@dataclass
class PairSplits:
    train: list[Pair]
    val: list[Pair]
    test: list[Pair]


def resolve_pairs(source: str) -> Path:
    if source in BUNDLED_PAIRS:
        return DATA_DIR / BUNDLED_PAIRS[source]
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"{source}: no such file (a .tsv or .jsonl of pairs; bundled: {', '.join(BUNDLED_PAIRS)})")
    check_data_file(path)
    return path


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def read_pairs(source: str, source_field: str = "source", target_field: str = "target") -> list[Pair]:
    """Every pair of a TSV or JSONL file (or a bundled name), NFC-normalized and stripped, in file order."""
    path = resolve_pairs(source)
    try:
        lines = read_data_file(path).decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (undecodable byte at offset {e.start})") from None
    if source in TRUNCATED_LAST_LINE:
        lines = lines[:-1]
    pairs: list[Pair] = []
    jsonl = path.suffix == ".jsonl"
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if jsonl:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{lineno}: expected an object with {source_field!r} and {target_field!r}")
            for name in (source_field, target_field):
                if not isinstance(record.get(name), str):
                    raise UserError(f"{path}:{lineno}: field {name!r} missing or not a string")
            src, tgt = record[source_field], record[target_field]
        else:
            cols = line.rstrip("\r").split("\t")
            if len(cols) < 2:
                raise UserError(f"{path}:{lineno}: no tab; expected 'source<TAB>target'")
            src, tgt = cols[0], cols[1]  # further columns (e.g. attribution) are ignored
        src, tgt = _clean(src), _clean(tgt)
        if not src or not tgt:
            side = "source" if not src else "target"
            raise UserError(f"{path}:{lineno}: empty {side}")
        pairs.append(Pair(src, tgt))
    if not pairs:
        raise UserError(f"{path}: no pairs found")
    return pairs


def bucket(text: str) -> int:
    """A stable number in [0, 1000) for a source sentence (sha1, not Python's salted hash)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 1000


def split_pairs(pairs: list[Pair], val_fraction: float = 0.05, test_fraction: float = 0.05) -> PairSplits:
    """Train/validation/test by the hash bucket of each pair's source sentence."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise UserError(f"val_fraction + test_fraction must be in [0, 1), got {val_fraction} + {test_fraction}")
    test_cut = round(test_fraction * 1000)
    val_cut = test_cut + round(val_fraction * 1000)
    splits = PairSplits([], [], [])
    for p in pairs:
        b = bucket(p.source)
        (splits.test if b < test_cut else splits.val if b < val_cut else splits.train).append(p)
    return splits
