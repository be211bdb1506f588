"""Runs docs/code.md's `bash` commands and its Python block as a reader would, in a scratch directory."""

from __future__ import annotations

from pathlib import Path

from ..docs_runner import blocks, run_commands, run_python


def test_code_page_runs(tmp_path: Path) -> None:
    outputs = run_commands("code.md", tmp_path)
    assert len(outputs) == 2 and "HumanEval single-line: pass@1 " in outputs[1]
    assert (tmp_path / "runs/code/samples/humaneval-single-line.jsonl").exists()
    (python,) = blocks("code.md", "python")
    printed = run_python(python, tmp_path)
    assert printed.startswith("'") and "<fim_" not in printed
