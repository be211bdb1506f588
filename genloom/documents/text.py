"""Words, sentences and the BM25 analyzer: the text processing shared by chunking, search and answers.

The analyzer is Lucene's English one in spirit: lower-cased words (letters and digits, single characters
kept), Lucene's English stop words dropped, the rest stemmed by Snowball's English stemmer (PyStemmer, the
C implementation). Each distinct query term counts once. Stems are cached per word: a corpus repeats its words, and the cache
makes analysis cost one dictionary lookup per token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from itertools import chain

import numpy as np

WORD = re.compile(r"\w+")  # single characters too, as Lucene's StandardTokenizer: "5", "β", "T" cells


@cache
def _separators() -> dict[int, str]:
    """`str.translate` table turning every non-word character up to U+303F into a space: `translate` then
    `split` finds the words `WORD` finds, twice as fast as the regex (tested against it)."""
    return {i: " " for i in range(0x3040) if not (chr(i).isalnum() or chr(i) == "_")}


def words(text: str) -> list[str]:
    """The lower-cased words of `text`."""
    return text.lower().translate(_separators()).split()


# a sentence ends at . ! ? (and closing quotes/brackets) followed by space and a capital, digit or quote
SENTENCE_END = re.compile(r"(?<=[.!?])([\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9])")


# Lucene's English stop set (EnglishAnalyzer's default): short, so that words such as "not", "no" and "less",
# which carry meaning in a question, stay searchable
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)


class Analyzer:
    """Text → BM25 terms (stems of non-stop words). One per process is enough: `analyzer()`."""

    def __init__(self) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("english")
        self._stop = STOP_WORDS
        self._stems: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        """The terms of `text` in order, repeats kept."""
        stems, out = self._stems, []
        for word in words(text):
            stem = stems.get(word)
            if stem is None:
                stem = "" if word in self._stop else self._stemmer.stemWord(word)
                stems[word] = stem
            if stem:
                out.append(stem)
        return out

    def _stem_all(self, words: set[str]) -> None:
        """Fill the stem cache for `words` with one call into the C stemmer."""
        new = [w for w in words if w not in self._stems]
        for word, stem in zip(new, self._stemmer.stemWords(new), strict=True):
            self._stems[word] = "" if word in self._stop else stem

    def count_terms(
        self, texts: list[str], vocab: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Term counts of many texts at once, as CSR: (indptr, term ids, counts, lengths in terms).

        `vocab` (stem → id) grows with the new terms. Vectorized: one regex pass per text, one dictionary
        lookup per token done in C (`map`), and the (text, term) pairs counted by `np.unique`."""
        per_text = [words(text) for text in texts]
        flat = list(chain.from_iterable(per_text))
        unique = set(flat)
        self._stem_all(unique)
        term_of = {}
        for word in unique:
            stem = self._stems[word]
            term_of[word] = vocab.setdefault(stem, len(vocab)) if stem else -1
        ids = np.fromiter(map(term_of.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(w) for w in per_text])
        keep = ids >= 0
        ids, rows = ids[keep], rows[keep]
        width = max(len(vocab), 1)
        pairs, counts = np.unique(rows * width + ids, return_counts=True)  # sorted by row, then term
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(pairs // width, minlength=len(texts)))
        lengths = np.bincount(rows, minlength=len(texts)).astype(np.int32)
        return indptr, (pairs % width).astype(np.int32), counts.astype(np.int32), lengths


@cache
def analyzer() -> Analyzer:
    return Analyzer()


def count_tokens(text: str) -> int:
    """The chunker's token measure: whitespace-separated words (a model's word pieces are ~1.3 per word)."""
    return len(text.split())


def sentences(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) character spans of the sentences of `text`, stripped; `text[start:end]` is one."""
    start = 0
    for m in SENTENCE_END.finditer(text):
        piece = text[start : m.end(1)]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            yield start + lead, start + len(piece.rstrip())
        start = m.end()
    piece = text[start:]
    if piece.strip():
        lead = len(piece) - len(piece.lstrip())
        yield start + lead, start + len(piece.rstrip())
