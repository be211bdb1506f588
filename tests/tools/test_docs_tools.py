"""Runs docs/tools.md as a reader would: its Python block, then its command lines."""

import json

from tests.docs_runner import blocks, run_commands, run_python


def test_tools_page_runs(tmp_path):
    (python,) = blocks("tools.md", "python")
    printed = run_python(python, tmp_path).splitlines()
    trip = json.loads(printed[0])
    assert set(trip) == {"city", "days"} and 1 <= trip["days"] <= 7
    assert printed[1] in ("yes", "no")
    assert len(printed[2]) == 8 and printed[2][3] == "-"
    assert printed[3].split(" ", 1)[0] in ("answer", "max_steps", "repeated_call")
    outputs = run_commands("tools.md", tmp_path)
    assert json.loads(outputs[0][len("Weather:") :])["temp"] is not None
    assert outputs[1].strip() in ("Pick:red", "Pick:green")
