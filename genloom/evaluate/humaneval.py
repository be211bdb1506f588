"""HumanEval (Chen et al. 2021) and HumanEval-Infilling (Bavarian et al. 2022), scored by running the code.

A problem is a Python function to write (completion: its signature and docstring are the prompt) or a
span of a canonical solution to fill in (single-line, multi-line, random-span: a prefix and a suffix
around the missing middle). A sample passes when the assembled program (prompt, sample, suffix, the
problem's tests, `check(entry_point)`) exits with status 0 in the sandbox (genloom/evaluate/sandbox.py),
never in this process. pass@k is the unbiased estimator of Chen et al. 2021 (eq. 1): with n samples of
which c pass, 1 - C(n - c, k) / C(n, k), computed as a product so it is stable for large n.

Also here: exact match of held-out middle lines (lines of files the model never saw, filled in with the
code before and after them in view) and its baseline that copies the most similar line of the same file.
"""

from __future__ import annotations

import difflib
import gzip
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from genloom.data import DATA_DIR
from genloom.errors import UserError
from genloom.evaluate.sandbox import Limits, Outcome, isolation, run_programs

HUMANEVAL_DIR = DATA_DIR / "humaneval"
Kind = Literal["completion", "single-line", "multi-line", "random-span"]
PER_FILE = 10  # held-out middle lines drawn from one file at most
SETS: dict[str, str] = {
    "completion": "HumanEval.jsonl.gz",
    "single-line": "infilling/HumanEval-SingleLineInfilling.jsonl.gz",
    "multi-line": "infilling/HumanEval-MultiLineInfilling.jsonl.gz",
    "random-span": "infilling/HumanEval-RandomSpanInfilling.jsonl.gz",
}


def load_problems(
    kind: str, limit: int | None = None, every: int = 1, directory: Path = HUMANEVAL_DIR
) -> list[dict[str, Any]]:
    """The problems of one set, in file order: every `every`-th one (a spread-out subset of the large
    infilling sets, whose rows come ~6-35 per function), the first `limit` of those."""
    if kind not in SETS:
        raise UserError(f"--humaneval: unknown set {kind!r}; choose one of {', '.join(SETS)}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit: expected a positive number of problems, got {limit}")
    if every < 1:
        raise UserError(f"--every: expected a positive step, got {every}")
    path = directory / SETS[kind]
    if not path.exists():
        raise UserError(f"{path}: HumanEval data not found (see data/humaneval/SOURCE.md)")
    problems = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(line for line in f if line.strip()):
            if i % every == 0:
                problems.append(json.loads(line))
                if limit is not None and len(problems) >= limit:
                    break
    return problems


def program(problem: dict[str, Any], completion: str) -> str:
    """The program that passes when `completion` is right: the code around it, the tests, the check."""
    code = problem["prompt"] + completion + problem.get("suffix", "")
    return f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from n samples of which c passed (Chen et al. 2021, eq. 1)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def first_line(text: str) -> str:
    """`text` up to and including its first line break (a single-line answer's one line)."""
    end = text.find("\n")
    return text if end < 0 else text[: end + 1]


@dataclass
class HumanEvalResult:
    """Per-set figures and one row per problem (its samples and whether each passed)."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]

    def write_jsonl(self, path: Path) -> None:
        from genloom.run import atomic_write_text

        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows))


def score(
    problems: Sequence[dict[str, Any]],
    samples: Sequence[Sequence[str]],
    kind: str,
    ks: Sequence[int] = (1,),
    limits: Limits | None = None,
    workers: int | None = None,
) -> HumanEvalResult:
    """Run every sample of every problem in the sandbox; pass@k for each k that is at most the number of
    samples per problem."""
    programs = [program(p, s) for p, group in zip(problems, samples, strict=True) for s in group]
    outcomes: list[Outcome] = run_programs(programs, limits or Limits(), workers)
    rows, at = [], 0
    per_k: dict[int, list[float]] = {k: [] for k in ks}
    for problem, group in zip(problems, samples, strict=True):
        done = outcomes[at : at + len(group)]
        at += len(group)
        c = sum(o.passed for o in done)
        for k in ks:
            if k <= len(group):
                per_k[k].append(pass_at_k(len(group), c, k))
        rows.append(
            {
                "task_id": problem["task_id"],
                "completions": list(group),
                "passed": [o.passed for o in done],
                "status": [o.status for o in done],
                "error": [o.stderr.strip().splitlines()[-1] if o.stderr.strip() and not o.passed else "" for o in done],
            }
        )
    metrics: dict[str, Any] = {"humaneval": kind, "problems": len(problems), "samples_per_problem": len(samples[0])}
    for k, values in per_k.items():
        if values:
            metrics[f"pass@{k}"] = float(np.mean(values))
    metrics["sandbox"] = isolation()
    return HumanEvalResult(metrics, rows)


def evaluate_humaneval(
    kind: str,
    generate: Callable[[list[dict[str, Any]]], list[list[str]]],
    limit: int | None = None,
    ks: Sequence[int] = (1,),
    limits: Limits | None = None,
    workers: int | None = None,
    every: int = 1,
) -> HumanEvalResult:
    """Load a set, ask `generate` for each problem's samples (a list per problem), score them."""
    problems = load_problems(kind, limit, every)
    samples = generate(problems)
    if kind == "single-line":  # the missing middle is one line: an answer is its first line
        samples = [[first_line(s) for s in group] for group in samples]
    return score(problems, samples, kind, ks, limits, workers)


# ---- held-out middle lines ------------------------------------------------------------------------


@dataclass
class MiddleLine:
    """One held-out line of a file: the code before it, the line (without its line break), the code after."""

    path: str
    prefix: str
    line: str
    suffix: str
    baseline: str  # the line the copy baseline proposes


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.strip(), b.strip(), autojunk=False).ratio()


def copy_baseline(lines: Sequence[str], i: int) -> str:
    """The baseline's guess for line i: the other line of the same file whose neighbours are most like
    line i's neighbours (the line before and the line after), copied as it is."""
    before = lines[i - 1] if i > 0 else ""
    after = lines[i + 1] if i + 1 < len(lines) else ""
    best, best_score = "", -1.0
    for j, candidate in enumerate(lines):
        if j == i or not candidate.strip():
            continue
        b = lines[j - 1] if j > 0 else ""
        a = lines[j + 1] if j + 1 < len(lines) else ""
        s = _similarity(before, b) + _similarity(after, a)
        if s > best_score:
            best, best_score = candidate, s
    return best


def middle_lines(paths: Sequence[str], texts: Sequence[str], n: int, seed: int = 0) -> list[MiddleLine]:
    """`n` lines drawn at random (seeded) from the files: lines with at least 8 non-blank characters
    that are not the first or last of their file; at most PER_FILE per file so many files count."""
    rng = random.Random(seed)
    candidates: list[tuple[int, int]] = []
    for f, text in enumerate(texts):
        lines = text.split("\n")
        good = [i for i in range(1, len(lines) - 1) if len(lines[i].strip()) >= 8]
        candidates.extend((f, i) for i in rng.sample(good, min(len(good), PER_FILE)))
    rng.shuffle(candidates)
    picked = []
    for f, i in candidates[:n]:
        lines = texts[f].split("\n")
        prefix = "\n".join(lines[:i]) + "\n"
        suffix = "\n" + "\n".join(lines[i + 1 :])
        picked.append(MiddleLine(paths[f], prefix, lines[i], suffix, copy_baseline(lines, i)))
    return picked


def line_exact_match(predicted: str, line: str) -> bool:
    """Whether the first line of `predicted` is the held-out line (trailing blanks aside)."""
    return predicted.split("\n", 1)[0].rstrip() == line.rstrip()
