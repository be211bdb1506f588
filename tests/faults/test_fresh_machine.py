"""Issue 13, case 13: `make test` installs what its tests need (Chromium included), and CI runs
exactly the README's test command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_test_installs_chromium_when_it_is_missing(tmp_path):
    # a PATH where `chromium` is not found; `make -n` prints what `make test` would run, without running it
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "id", "make"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (bare / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bare)}
    dry = subprocess.run(
        [str(bare / "make"), "-n", "test"], cwd=REPO, capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "apt-get install -y -q chromium" in dry
    assert dry.index("chromium") < dry.index("pytest")  # installed before the tests run


def test_ci_runs_just_the_readme_test_command():
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "make test"
    assert not [c for c in commands if "apt-get" in c or "pip install" in c]
    assert "`make test`" in (REPO / "README.md").read_text()
