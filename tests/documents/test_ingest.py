"""Reading every format and chunking along the structure: spans, headings, budgets, exact slices."""

from __future__ import annotations

import itertools
from pathlib import Path

import genloom as gl
from genloom.documents.chunk import chunk_document
from genloom.documents.parse import Block, Document
from genloom.documents.text import count_tokens


def test_every_format_is_read_with_its_place_and_headings(docs: Path, tmp_path: Path) -> None:
    index = gl.Index.build(docs, tmp_path / "index")
    by_path: dict[str, list] = {}
    for chunk in index.chunks:
        by_path.setdefault(chunk.path, []).append(chunk)
    assert set(by_path) == {"guide.md", "team/page.html", "notes.txt", "facts.jsonl", "report.pdf", "policy.docx"}

    keys = next(c for c in by_path["guide.md"] if "Rotate" in c.text)
    assert keys.heading == ("Operations guide", "Rotating keys") and (keys.unit, keys.start, keys.end) == ("line", 4, 6)
    assert "Backups" not in keys.text  # a chunk never crosses a heading

    html = by_path["team/page.html"]
    assert [c.heading for c in html] == [("Cafeteria",), ("Cafeteria", "Coffee")]
    assert all("hidden" not in c.text for c in html)  # scripts are not text
    assert html[1].start == 5 and "espresso" in html[1].text

    pdf = by_path["report.pdf"]
    assert [(c.unit, c.start) for c in pdf] == [("page", 1), ("page", 2)]
    assert "Revenue grew" in pdf[0].text and "Costs fell" in pdf[1].text

    word = by_path["policy.docx"]
    assert [c.heading for c in word] == [("Travel policy",), ("Travel policy", "Hotels")]
    assert word[1].unit == "paragraph" and "150 euros" in word[1].text

    records = {c.doc_id: c for c in by_path["facts.jsonl"]}
    assert set(records) == {"doc-7", "doc-9"}
    assert records["doc-7"].heading == ("Glaciers",) and records["doc-7"].meta == {"year": 2023}
    assert records["doc-9"].start == 2  # the record's line in the file

    assert by_path["notes.txt"][0].span == "lines 1-3"


def test_chunks_keep_the_budget_overlap_and_exact_slices() -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 7} at some length here." for i in range(60)]
    paragraph = " ".join(sentences)
    doc = Document([Block("Short intro.", ("A",), "line", 1, 1), Block(paragraph, ("A",), "line", 3, 3)], "d")
    chunks = chunk_document(doc, "d.txt", max_tokens=50, overlap=12)
    assert len(chunks) > 5
    for chunk in chunks:
        assert count_tokens(chunk.text) <= 50
        for part in chunk.text.split("\n\n"):
            assert part in paragraph or part == "Short intro."
    for before, after in itertools.pairwise(chunks):
        first = after.text.split(". ")[0] + "."
        assert before.text.endswith(first)  # the overlap: a chunk starts with the previous one's last sentence


def test_a_sentence_longer_than_the_budget_is_cut_at_words() -> None:
    words = " ".join(f"w{i}" for i in range(130))
    chunks = chunk_document(Document([Block(words)], "d"), "d.txt", max_tokens=40, overlap=0)
    assert [count_tokens(c.text) for c in chunks] == [40, 40, 40, 10]
    assert " ".join(c.text for c in chunks) == words


def test_the_fast_word_split_finds_the_regex_words() -> None:
    from genloom.documents.text import WORD, words

    text = "Café-au-lait (β-cells, T_cells) cost 3.5€ — “naïve” x2; 0-dimensional, Zürich/İstanbul: ok!\tend"
    assert words(text) == WORD.findall(text.lower())
