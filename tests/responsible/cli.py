"""`genloom ARGV` in the test process, for the responsible-generation tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys, *argv) -> Proc:  # type: ignore[no-untyped-def]
    """The CLI's own `main` on `argv`: exit status, stdout, stderr."""
    from genloom.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return Proc(code, out.out, out.err)
