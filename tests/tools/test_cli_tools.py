"""`genloom sample --json-schema/--regex/--choice` and `genloom agent`: outputs, and one line + exit 2 on
bad input."""

from __future__ import annotations

import json

import pytest

from genloom.cli import main


def test_sample_with_a_schema(bpe_run, capsys, tmp_path):
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    out = tmp_path / "s.txt"
    assert main(["sample", str(bpe_run), "--prompt", "", "--json-schema", json.dumps(schema), "--max-new-tokens", "30",
                 "--seed", "0", "--out", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text().strip()) in ({"ok": True}, {"ok": False})
    assert (
        main(["sample", str(bpe_run), "--prompt", "x", "--choice", "left", "--choice", "right", "--out", str(out)]) == 0
    )
    assert out.read_text().strip() in ("xleft", "xright")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--json-schema", '{"type": "string", "not": {}}'], "json_schema.not"),
        (["--json-schema", "missing.json"], "--json-schema missing.json"),
        (["--regex", "(a"], "regex"),
        (["--regex", "a", "--choice", "b"], "give one constraint"),
    ],
)
def test_bad_constraints_are_one_line_and_exit_2(bpe_run, capsys, args, message):
    assert main(["sample", str(bpe_run), "--prompt", "x", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_agent_command(bpe_run, capsys, tmp_path):
    code = main(["agent", str(bpe_run), "What is 2+2?", "--tool", "calculator", "--tool", "datetime", "--max-steps", "2",
                 "--max-new-tokens", "40", "--temperature", "1", "--seed", "0", "--trace"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and "[stopped: " in captured.err
    assert main(["agent", str(bpe_run), "x", "--tool", "shell"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--tool shell: unknown tool" in err and "\n" not in err
    assert main(["agent", str(bpe_run), "x", "--tool", "files"]) == 2
    assert "--folder" in capsys.readouterr().err
