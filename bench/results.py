"""Keep bench/RESULTS.md as one section per benchmark, each replaced whole by its latest run."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section is written by the benchmark named in it; commands, peers and machine are given inline.\n"


def update_results(key: str, title: str, body: str) -> None:
    """Replace (or append) the section between `<!-- key -->` markers."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    section = f"<!-- {key} -->\n## {title}\n\n{body.strip()}\n<!-- /{key} -->"
    pattern = re.compile(rf"<!-- {re.escape(key)} -->.*?<!-- /{re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)
