"""Words, sentences and the BM25 analyzer: the text processing shared by chunking, search and answers.

The analyzer is Lucene's English one in spirit: lower-cased words of two or more letters or digits,
English stop words dropped (scikit-learn's list), the rest stemmed by Snowball's English stemmer
(PyStemmer, the C implementation). Stems are cached per word: a corpus repeats its words, and the cache
makes analysis cost one dictionary lookup per token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

WORD = re.compile(r"\w\w+")
# a sentence ends at . ! ? (and closing quotes/brackets) followed by space and a capital, digit or quote
SENTENCE_END = re.compile(r"(?<=[.!?])([\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9])")
COUNT = re.compile(r"\S+")


@cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


class Analyzer:
    """Text → BM25 terms (stems of non-stop words). One per process is enough: `analyzer()`."""

    def __init__(self) -> None:
        import Stemmer

        self._stemmer = Stemmer.Stemmer("english")
        self._stop = _stop_words()
        self._stems: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        """The terms of `text` in order, repeats kept."""
        stems, out = self._stems, []
        for word in WORD.findall(text.lower()):
            stem = stems.get(word)
            if stem is None:
                stem = "" if word in self._stop else self._stemmer.stemWord(word)
                stems[word] = stem
            if stem:
                out.append(stem)
        return out


@cache
def analyzer() -> Analyzer:
    return Analyzer()


def count_tokens(text: str) -> int:
    """The chunker's token measure: whitespace-separated words (a model's word pieces are ~1.3 per word)."""
    return len(COUNT.findall(text))


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
