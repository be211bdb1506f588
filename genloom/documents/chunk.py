"""Structure-aware chunking: a document's blocks → chunks of at most `max_tokens` words with overlap.

A chunk never crosses a heading (a section is the blocks under one heading path) nor a PDF page. Within a section,
whole paragraphs are packed while they fit; a paragraph over the budget is cut at sentence ends, and a
sentence over the budget at word boundaries. A new chunk starts with the last sentences of the previous
one, up to `overlap` words, so a fact cut at a boundary is whole in one of the two. Every chunk's text
is made of exact slices of its blocks, so a sentence quoted from a chunk is a sentence of the source.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from genloom.documents.parse import Block, Document, SpanUnit
from genloom.documents.text import count_tokens, sentences


@dataclass
class Chunk:
    """One retrievable piece of a document, with where it came from."""

    text: str  # exact slices of the source's paragraphs, "\n\n" between paragraphs
    path: str  # the file, relative to the indexed folder
    doc_id: str  # a JSONL record's id, else the path
    heading: tuple[str, ...] = ()  # the section's heading path (a JSONL record's title)
    unit: SpanUnit = "line"  # what start/end count
    start: int = 1  # first line/page/paragraph (1-based)
    end: int = 1  # last one (inclusive)
    meta: dict[str, Any] = field(default_factory=dict)  # a JSONL record's extra fields

    @property
    def indexed_text(self) -> str:
        """What is searched and embedded: the heading path, then the text."""
        return f"{' / '.join(self.heading)}\n{self.text}" if self.heading else self.text

    @property
    def hash(self) -> str:
        """Content hash: the embedding cache's key (same text under the same headings, same vector)."""
        return hashlib.sha256(self.indexed_text.encode("utf-8")).hexdigest()[:32]

    @property
    def span(self) -> str:
        """Where it is, for people: "lines 3-10", "page 2", "paragraph 7"."""
        word = {"line": "line", "page": "page", "paragraph": "paragraph"}[self.unit]
        return f"{word} {self.start}" if self.start == self.end else f"{word}s {self.start}-{self.end}"

    def to_json(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "path": self.path,
            "doc_id": self.doc_id,
            "heading": list(self.heading),
            "unit": self.unit,
            "start": self.start,
            "end": self.end,
            "meta": self.meta,
            "text": self.text,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Chunk:
        return cls(
            text=row["text"],
            path=row["path"],
            doc_id=row["doc_id"],
            heading=tuple(row["heading"]),
            unit=row["unit"],
            start=row["start"],
            end=row["end"],
            meta=row["meta"],
        )


@dataclass
class _Unit:
    """A slice `block.text[a:b]` of block number `block` that is packed whole."""

    block: int
    a: int
    b: int
    tokens: int


def _units(blocks: list[Block], indices: list[int], max_tokens: int) -> list[_Unit]:
    """Whole paragraphs when they fit, else their sentences, else word windows of a sentence."""
    units = []
    for i in indices:
        text = blocks[i].text
        n = count_tokens(text)
        if n <= max_tokens:
            units.append(_Unit(i, 0, len(text), n))
            continue
        for a, b in sentences(text):
            n = count_tokens(text[a:b])
            if n <= max_tokens:
                units.append(_Unit(i, a, b, n))
                continue
            words = [(m.start() + a, m.end() + a) for m in re.finditer(r"\S+", text[a:b])]
            for w in range(0, len(words), max_tokens):
                window = words[w : w + max_tokens]
                units.append(_Unit(i, window[0][0], window[-1][1], len(window)))
    return units


def _emit(units: list[_Unit], blocks: list[Block], doc: Document, path: str) -> Chunk:
    """The chunk made of `units`: each run of units from one block is one exact slice of it."""
    parts: list[str] = []
    run_start = 0
    for k in range(1, len(units) + 1):
        if k == len(units) or units[k].block != units[run_start].block:
            block = blocks[units[run_start].block]
            parts.append(block.text[units[run_start].a : units[k - 1].b])
            run_start = k
    used = [blocks[i] for i in dict.fromkeys(u.block for u in units)]
    return Chunk(
        text="\n\n".join(parts),
        path=path,
        doc_id=doc.doc_id,
        heading=used[0].heading,
        unit=used[0].unit,
        start=min(b.start for b in used),
        end=max(b.end for b in used),
        meta=doc.meta,
    )


def chunk_document(doc: Document, path: str, max_tokens: int, overlap: int) -> list[Chunk]:
    """The chunks of one document, in reading order."""

    def boundary(block: Block) -> tuple[tuple[str, ...], int]:
        return block.heading, block.start if block.unit == "page" else 0  # a PDF chunk keeps to one page

    sections: list[list[int]] = []
    for i, block in enumerate(doc.blocks):
        if sections and boundary(doc.blocks[sections[-1][-1]]) == boundary(block):
            sections[-1].append(i)
        else:
            sections.append([i])
    chunks = []
    for section in sections:
        current: list[_Unit] = []
        size = 0  # words in `current`
        for unit in _units(doc.blocks, section, max_tokens):
            if current and size + unit.tokens > max_tokens:
                chunks.append(_emit(current, doc.blocks, doc, path))
                carried: list[_Unit] = []  # the overlap: trailing units of the chunk just emitted
                for u in reversed(current):
                    if sum(c.tokens for c in carried) + u.tokens > overlap:
                        break
                    carried.insert(0, u)
                while carried and sum(c.tokens for c in carried) + unit.tokens > max_tokens:
                    carried.pop(0)
                current = carried
                size = sum(c.tokens for c in carried)
            current.append(unit)
            size += unit.tokens
        if current:
            chunks.append(_emit(current, doc.blocks, doc, path))
    return chunks
