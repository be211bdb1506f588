"""Runs every command and the Python block of docs/compare.md in a scratch directory, as a reader would."""

import json

from ..docs_runner import blocks, run_commands, run_python


def test_compare_page_runs(tmp_path):
    outputs = run_commands("compare.md", tmp_path)
    assert len(outputs) == 3
    report = json.loads((tmp_path / "runs/cmp/report.json").read_text())
    assert set(report["runs"]) == {"vae", "gan", "flow"} and (tmp_path / "runs/cmp/report.html").exists()
    assert "Ranked by fid" in outputs[0]  # the summary is printed
    text = json.loads((tmp_path / "runs/cmp-text/report.json").read_text())
    assert list(text["runs"]) == ["gpt-1", "gpt-2"] and text["headline"] == "val_loss"
    assert "FID" in outputs[2] or "fid" in outputs[2]
    (python,) = blocks("compare.md", "python")
    printed = run_python(python, tmp_path)
    assert "fastest to sample" in printed
