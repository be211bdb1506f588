"""Your own documents: an index of a folder that stays current, search, and answers with citations.

- `parse.py`   files → blocks (Markdown, HTML, PDF, Word, text, JSONL) with spans and heading paths
- `chunk.py`   blocks → chunks along the document's structure, a word budget with overlap
- `text.py`    the BM25 analyzer (stop words, Snowball stems), sentences, the token measure
- `store.py`   the index directory: versioned manifest, generations written atomically, no pickle
- `embed.py`   the dense embedder (a BERT-family model loaded by genloom) and its fingerprint
- `index.py`   `Index`: build/update in place, BM25 from raw statistics, dense, hybrid (RRF)
- `answer.py`  extractive and generative answers with [n] citations, and the support check

See docs/documents.md. Names load on first use, so importing the package costs nothing.
"""

from genloom.lazy import exports

__getattr__ = exports(
    __name__,
    {
        "Index": "genloom.documents.index",
        "IndexConfig": "genloom.documents.index",
        "Hit": "genloom.documents.index",
        "UpdateReport": "genloom.documents.index",
        "Answer": "genloom.documents.answer",
        "answer": "genloom.documents.answer",
    },
)
