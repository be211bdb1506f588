"""Runs the Python block of docs/own-model.md (your own nn.Module on genloom's Trainer) as a reader would."""

import json
import re

from .docs_runner import blocks, run_python


def test_own_model_page_runs(tmp_path):
    (python,) = blocks("own-model.md", "python")
    printed = run_python(python, tmp_path)
    a, b = map(float, re.findall(r"a = ([-\d.]+), b = ([-\d.]+)", printed)[0])
    assert abs(a - 3) < 0.1 and abs(b + 1) < 0.1  # it learned the line
    steps = [json.loads(line)["step"] for line in (tmp_path / "runs/line/metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 401))  # resumed to 400, every step once
