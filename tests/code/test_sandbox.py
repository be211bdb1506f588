"""The sandbox: canonical HumanEval solutions pass, misbehaving programs are stopped and reported as
failures, and the genloom process is unharmed; pass@k is Chen et al.'s unbiased estimator."""

from __future__ import annotations

import json
import math
import os
import socket
from itertools import combinations
from pathlib import Path

import pytest

from genloom.evaluate.humaneval import HUMANEVAL_DIR, load_problems, pass_at_k, program, score
from genloom.evaluate.sandbox import Limits, run_program, run_programs

QUICK = Limits(timeout=3.0, cpu_seconds=3, memory_mb=512)


def test_every_canonical_humaneval_solution_passes() -> None:
    problems = load_problems("completion")
    outcomes = run_programs([program(p, p["canonical_solution"]) for p in problems], QUICK, workers=2)
    failed = [(p["task_id"], o.stderr[-200:]) for p, o in zip(problems, outcomes, strict=True) if not o.passed]
    assert len(problems) == 164 and not failed


@pytest.mark.parametrize(("kind", "every"), [("single-line", 20), ("multi-line", 80), ("random-span", 25)])
def test_canonical_middles_pass(kind: str, every: int) -> None:
    problems = load_problems(kind, every=every)  # a spread-out subset of each set
    outcomes = run_programs([program(p, p["canonical_solution"]) for p in problems], QUICK, workers=2)
    assert all(o.passed for o in outcomes), [
        p["task_id"] for p, o in zip(problems, outcomes, strict=True) if not o.passed
    ]


def test_a_wrong_answer_fails() -> None:
    (p,) = load_problems("completion", limit=1)
    assert not run_program(program(p, "    return None\n"), QUICK).passed


MISBEHAVING = {
    "infinite loop": "while True:\n    pass\n",
    "sleeps forever": "import time\ntime.sleep(1000)\n",
    "memory bomb": "chunks = []\nwhile True:\n    chunks.append(bytearray(50_000_000))\n",
    "one huge allocation": "x = bytearray(10**11)\n",
    "socket": "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=1)\n",
    "fork": "import os\nif os.fork() == 0:\n    while True: pass\n",
    "fork bomb": "import multiprocessing\nfor _ in range(100):\n    multiprocessing.Process(target=print).start()\n",
    "subprocess": "import subprocess\nsubprocess.run(['true'])\n",
    "write outside": "open(TARGET, 'w').write('escaped')\n",
    "delete outside": "import os\nos.remove(TARGET)\n",
    "raise its limits": "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n",
}


@pytest.mark.parametrize("name", list(MISBEHAVING))
def test_misbehaving_programs_are_stopped_and_fail(name: str, tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("untouched")
    with socket.socket() as listener:  # a real port on this machine the program must not reach
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)
        source = MISBEHAVING[name].replace("PORT", str(listener.getsockname()[1])).replace("TARGET", repr(str(target)))
        outcome = run_program(source, Limits(timeout=2.0, cpu_seconds=2, memory_mb=512))
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    assert not outcome.passed
    assert outcome.status == ("timeout" if name in ("infinite loop", "sleeps forever") else "failed"), outcome.stderr
    assert target.read_text() == "untouched"  # the file outside its directory is as it was
    assert os.getpid() > 0 and math.isfinite(outcome.seconds)  # and this process goes on


def test_writing_inside_its_own_directory_is_allowed() -> None:
    assert run_program("open('scratch.txt', 'w').write('x')\nimport os\nos.remove('scratch.txt')\n", QUICK).passed


def test_upstream_example_samples_score_one_half() -> None:
    """openai/human-eval's self-test: 6 samples of `return1`, 3 pass (a subprocess, a sleep, an input fail)."""
    (problem,) = [json.loads(line) for line in (HUMANEVAL_DIR / "example_problem.jsonl").read_text().splitlines()]
    samples = [
        json.loads(line)["completion"] for line in (HUMANEVAL_DIR / "example_samples.jsonl").read_text().splitlines()
    ]
    result = score([problem], [samples], "completion", ks=(1,), limits=Limits(timeout=1.0, cpu_seconds=1))
    assert result.metrics["pass@1"] == pytest.approx(0.5)
    assert result.rows[0]["passed"] == [False, False, False, True, True, True]


@pytest.mark.parametrize(("n", "c", "k"), [(5, 0, 1), (5, 2, 1), (5, 2, 3), (6, 5, 2), (10, 3, 10), (4, 4, 2)])
def test_pass_at_k_is_the_unbiased_estimator(n: int, c: int, k: int) -> None:
    """The share of k-subsets of the n samples that hold at least one passing sample."""
    passing = [True] * c + [False] * (n - c)
    subsets = list(combinations(passing, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_the_copy_baseline_copies_the_line_whose_neighbours_match() -> None:
    from genloom.evaluate.humaneval import copy_baseline, line_exact_match, middle_lines

    lines = ["def f():", "    total = 1", "    return total", "def g():", "    total = 1", "    return total"]
    assert copy_baseline(lines, 4) == "    total = 1"  # line 1 sits between the same kind of neighbours
    text = "\n".join(lines * 3) + "\n"
    (held,) = middle_lines(["a.py"], [text], 1, seed=0)
    assert held.prefix + held.line + held.suffix == text  # the file is the gap and the code around it
    assert line_exact_match(held.line + "\n    more", held.line) and not line_exact_match("", held.line)
