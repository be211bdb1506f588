"""Runs every command and the Python block of docs/tables.md in a scratch directory, as a reader would."""

import json

import pandas as pd

from ..docs_runner import blocks, run_commands, run_python


def test_tables_page_runs(tmp_path):
    outputs = run_commands("tables.md", tmp_path)
    assert len(outputs) == 5
    assert len(pd.read_csv(tmp_path / "synthetic.csv")) == 1000
    assert set(pd.read_parquet(tmp_path / "cultivar2.parquet")["target"]) == {2}
    assert "quality" in outputs[3] and (tmp_path / "runs/wine-copula/report.html").exists()
    report = json.loads((tmp_path / "runs/cmp-wine/report.json").read_text())
    assert set(report["runs"]) == {"copula", "tvae"} and report["headline"] == "quality"
    (python,) = blocks("tables.md", "python")
    printed = run_python(python, tmp_path)
    assert "quality 0.9" in printed and "exact copies 0%" in printed
