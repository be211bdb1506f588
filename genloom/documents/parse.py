"""Reading a user's documents into blocks: paragraphs, list items, headings' text, with where they came from.

One reader per format, each built on a well-kept parser: markdown-it-py for Markdown (its token map gives
line spans), BeautifulSoup for HTML (`sourceline` gives line spans), pypdf for PDF (one page at a time),
python-docx for Word files; plain text and JSONL need none. A reader returns `Block`s in document order;
`Block.heading` is the path of headings above it, which the chunker (`chunk.py`) never crosses.

A file that cannot be read (unreadable, binary behind a text extension, corrupt or encrypted PDF, over
the size limit) raises `Unreadable` with the reason; the indexer turns that into one warning line and
goes on with the rest.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SpanUnit = Literal["line", "page", "paragraph"]
SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl")
TEXT_SNIFF = 8192  # bytes looked at for NUL bytes before a text file is believed to be text


class Unreadable(Exception):
    """A file (or one record of a JSONL file) that is skipped; the message says why."""


@dataclass
class Block:
    """One paragraph-like piece of a document, in reading order."""

    text: str  # the paragraph's text, whitespace as in the source except around it
    heading: tuple[str, ...] = ()  # headings above it, outermost first
    unit: SpanUnit = "line"  # what `start`/`end` count: source lines, PDF pages or Word paragraphs (1-based)
    start: int = 1  # first line/page/paragraph of the block
    end: int = 1  # last one (inclusive)


@dataclass
class Document:
    """What one file (or one JSONL record) holds: its blocks and identity."""

    blocks: list[Block]
    doc_id: str  # a JSONL record's `id` field, else the file's path relative to the folder
    meta: dict[str, Any] = field(default_factory=dict)  # a JSONL record's other fields (not text, id, title)


def _decode(data: bytes, path: Path) -> str:
    """UTF-8 text, or `Unreadable` naming what makes it binary."""
    nul = data.find(b"\x00", 0, TEXT_SNIFF)
    if nul >= 0:
        raise Unreadable(f"binary data (a NUL byte at offset {nul}), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise Unreadable(f"not UTF-8 text (byte offset {e.start})") from None


def _paragraphs(text: str, first_line: int = 1, heading: tuple[str, ...] = ()) -> list[Block]:
    """Blank-line separated paragraphs of `text` with their line spans."""
    blocks: list[Block] = []
    lines = text.split("\n")
    start: int | None = None
    for i, line in enumerate([*lines, ""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            body = "\n".join(lines[start:i]).strip()
            blocks.append(Block(body, heading, "line", first_line + start, first_line + i - 1))
            start = None
    return blocks


def read_text(data: bytes, path: Path) -> list[Block]:
    return _paragraphs(_decode(data, path))


def read_markdown(data: bytes, path: Path) -> list[Block]:
    """Top-level Markdown blocks with their heading path; a heading's own line is not a block of its own."""
    from markdown_it import MarkdownIt

    text = _decode(data, path)
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    blocks: list[Block] = []
    heading: list[tuple[int, str]] = []  # (level, title) of the open sections
    for i, tok in enumerate(tokens):
        if tok.level != 0 or tok.map is None or tok.nesting == -1:
            continue
        start, end = tok.map  # [start, end) source lines, 0-based
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            title = tokens[i + 1].content.strip()
            heading = [(lv, t) for lv, t in heading if lv < level] + [(level, title)]
            continue
        body = "\n".join(lines[start:end]).strip()
        if body:
            blocks.append(Block(body, tuple(t for _, t in heading), "line", start + 1, end))
    return blocks


HTML_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption")
HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
HTML_DROP = ("script", "style", "noscript", "template", "nav", "head")


def read_html(data: bytes, path: Path) -> list[Block]:
    """Paragraph-like elements of an HTML page under their headings (scripts, styles, navigation dropped)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data, path), "html.parser")
    for tag in soup.find_all(HTML_DROP):
        tag.decompose()
    blocks: list[Block] = []
    heading: list[tuple[int, str]] = []
    for tag in soup.find_all([*HTML_HEADINGS, *HTML_BLOCKS]):
        if tag.name not in HTML_HEADINGS and tag.find_parent(HTML_BLOCKS) is not None:
            continue  # a <p> inside an <li>: the outer block holds its text already
        text = re.sub(r"[ \t\r\f\v]+", " ", tag.get_text(" " if tag.name != "pre" else "")).strip()
        text = re.sub(r"\s*\n\s*", "\n", text) if tag.name != "pre" else text
        if not text:
            continue
        line = tag.sourceline or 1
        if tag.name in HTML_HEADINGS:
            level = int(tag.name[1])
            heading = [(lv, t) for lv, t in heading if lv < level] + [(level, text)]
            continue
        blocks.append(Block(text, tuple(t for _, t in heading), "line", line, line + text.count("\n")))
    if not blocks:  # a page of bare text without block elements
        body = soup.get_text("\n").strip()
        if body:
            blocks = _paragraphs(body)
    return blocks


def read_pdf(data: bytes, path: Path) -> list[Block]:
    """Each page's text as paragraphs, spans in pages. Encrypted or corrupt files are `Unreadable`."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise Unreadable("encrypted PDF (genloom does not guess passwords)")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            for block in _paragraphs(page.extract_text() or ""):
                blocks.append(Block(block.text, (), "page", number, number))
    except Unreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise Unreadable(f"corrupt PDF ({type(e).__name__}: {str(e)[:80]})") from None
    return blocks


def read_docx(data: bytes, path: Path) -> list[Block]:
    """Word paragraphs under their "Heading N" paragraphs, spans in paragraphs (tables follow the body)."""
    import zipfile

    from docx import Document as open_docx

    try:
        doc = open_docx(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise Unreadable(f"not a Word .docx file ({type(e).__name__}: {str(e)[:80]})") from None
    blocks: list[Block] = []
    heading: list[tuple[int, str]] = []
    for number, para in enumerate(doc.paragraphs, start=1):
        text = para.text.strip()
        style = para.style.name if para.style is not None else ""
        if not text:
            continue
        match = re.fullmatch(r"Heading (\d)|Title", style or "")
        if match:
            level = int(match.group(1) or 0)
            heading = [(lv, t) for lv, t in heading if lv < level] + [(level, text)]
            continue
        blocks.append(Block(text, tuple(t for _, t in heading), "paragraph", number, number))
    for table in doc.tables:
        for row in table.rows:
            cells = dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip())
            if cells:
                blocks.append(
                    Block(" | ".join(cells), ("table",), "paragraph", len(doc.paragraphs), len(doc.paragraphs))
                )
    return blocks


READERS = {
    ".txt": read_text,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
}


def read_jsonl(data: bytes, path: Path, warn: Any) -> list[Document]:
    """One document per line: `text` (required), `id` and `title` (optional), the other fields kept as
    metadata. A bad line is skipped with a warning naming `path:line`; the others are read."""
    docs: list[Document] = []
    for number, line in enumerate(_decode(data, path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            warn(f"{path}:{number}: skipped: not JSON ({e.msg})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            warn(f"{path}:{number}: skipped: expected an object with a string field 'text'")
            continue
        title = record.get("title")
        heading = (title.strip(),) if isinstance(title, str) and title.strip() else ()
        doc_id = str(record["id"]) if record.get("id") is not None else f"{path.name}:{number}"
        meta = {k: v for k, v in record.items() if k not in ("text", "id", "title")}
        blocks = [Block(p.text, heading, "line", number, number) for p in _paragraphs(record["text"])]
        if blocks:
            docs.append(Document(blocks, doc_id, meta))
    return docs


def read_document(data: bytes, path: Path, rel: str, warn: Any) -> list[Document]:
    """The documents one file holds (one, or one per JSONL line); `Unreadable` if the file is not usable."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(data, path, warn)
    blocks = READERS[suffix](data, path)
    return [Document(blocks, rel)] if blocks else []
