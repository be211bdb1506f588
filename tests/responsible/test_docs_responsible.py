"""docs/responsible.md runs as written: its commands through the CLI's own `main` (in this process, in a
scratch directory), then its Python block in a fresh interpreter."""

import shlex

from genloom.cli import main

from ..docs_runner import blocks, run_python

DOC = "responsible.md"


def test_responsible_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    outputs = []
    for command in [line for block in blocks(DOC, "bash") for line in block.strip().splitlines()]:
        argv = shlex.split(command)
        assert argv[0] == "genloom"
        capsys.readouterr()
        assert main(argv[1:]) == 0, command
        outputs.append(capsys.readouterr().out)
    assert "watermarked by this run" in outputs[2]
    assert outputs[3].startswith("memorization (20 training prefixes")
    (code,) = blocks(DOC, "python")
    lines = run_python(code, tmp_path).splitlines()
    assert lines[0] == "Mail <EMAIL> or call <PHONE> from <IP>"
    assert lines[1] == "True False"
    assert int(lines[2]) > 0
