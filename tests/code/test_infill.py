"""`lm.infill` and the code evaluations through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import genloom as gl
from genloom.errors import UserError


def test_infill_ends_at_the_end_of_the_middle(fim_run: Path) -> None:
    lm = gl.load(fim_run)
    eos = lm.tokenizer.eos_id
    (done,) = lm.complete_infill(["def f(x):\n    return "], ["\n"], logit_bias={eos: 100.0}, max_new_tokens=20)
    assert done.finish_reason == "eos" and done.text == ""  # the model ended the middle: generation stops there
    middle = lm.infill("def f(x):\n    return ", "\n", max_new_tokens=6, seed=0)
    assert isinstance(middle, str) and "<fim_" not in middle


def test_the_sentinels_are_never_generated(fim_run: Path) -> None:
    lm = gl.load(fim_run)
    tok = lm.tokenizer
    bias = {tok.fim_middle_id: 100.0, tok.fim_prefix_id: 100.0}  # even pushed hard, they stay banned
    (done,) = lm.complete_infill(["a = "], ["\n"], logit_bias=bias, max_new_tokens=8, seed=0)
    assert not set(done.token_ids) & set(lm.fim_banned())


def test_fim_tokens_in_the_code_are_text(fim_run: Path) -> None:
    lm = gl.load(fim_run)
    tok = lm.tokenizer
    ids = lm.infill_ids("s = '<fim_middle><|endoftext|>'\n", "t = '<fim_suffix>'\n", 8)
    assert ids.count(tok.fim_middle_id) == ids.count(tok.fim_suffix_id) == ids.count(tok.fim_prefix_id) == 1
    assert tok.eos_id not in ids and ids[-1] == tok.fim_middle_id


def test_long_code_is_cut_far_from_the_gap(fim_run: Path) -> None:
    lm = gl.load(fim_run)
    prefix = "".join(f"a{i} = {i}\n" for i in range(200))
    suffix = "".join(f"b{i} = {i}\n" for i in range(200))
    ids, truncated = lm.fit_infill(prefix, suffix, 16)
    assert truncated and len(ids) + 16 <= lm.model.config.block_size
    text = lm.tokenizer.decode(ids)
    assert "a199 = 199\n<fim_suffix>b0 = 0" in text  # the code nearest the gap is kept


def test_a_run_trained_without_fim_refuses_a_suffix(plain_run: Path) -> None:
    lm = gl.load(plain_run)
    with pytest.raises(UserError, match=r"^suffix: .*trained without fill-in-the-middle"):
        lm.infill("def f(x):\n", "\n")
    assert lm.generate("def f", max_new_tokens=3, seed=0) is not None  # left-to-right still works


def test_eval_humaneval_prints_pass_at_1_and_writes_jsonl(fim_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "single.jsonl"
    argv = ["eval", str(fim_run), "--humaneval", "single-line", "--limit", "3", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "genloom", *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HumanEval single-line: pass@1 " in proc.stdout and "over 3 problems" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == [f"SingleLineInfilling/HumanEval/0/L{i}" for i in range(3)]
    assert all(len(r["passed"]) == 1 for r in rows)
    assert "Evaluation: HumanEval single-line" in (fim_run / "card.md").read_text()


def test_eval_humaneval_on_a_run_without_fim_is_exit_2(plain_run: Path) -> None:
    argv = ["eval", str(plain_run), "--humaneval", "single-line", "--limit", "2"]
    proc = subprocess.run([sys.executable, "-m", "genloom", *argv], capture_output=True, text=True)
    assert (
        proc.returncode == 2
        and proc.stderr.startswith("genloom: error: --humaneval:")
        and "Traceback" not in proc.stderr
    )
    metrics = gl.evaluate(plain_run, humaneval="single-line", limit=2, prefix_only=True)  # from the prefix alone
    assert metrics["problems"] == 2 and "(prefix only)" in metrics.line


def test_middle_lines_beside_the_copy_baseline(fim_run: Path) -> None:
    metrics = gl.evaluate(fim_run, middle_lines=6)
    assert metrics["middle_lines"] == 6 and 0 <= metrics["exact_match"] <= 1
    assert 0 <= metrics["baseline_exact_match"] <= 1
    assert "copy-the-most-similar-line baseline" in metrics.line


def test_code_cpu_card_records_the_psf_licence(fim_run: Path) -> None:
    card = (fim_run / "card.md").read_text()
    assert "Python Software Foundation License" in card and "fill-in-the-middle" in card


def test_sample_with_a_suffix_fills_the_gap_or_names_the_field(fim_run: Path, plain_run: Path, tmp_path: Path) -> None:
    options = {"prompt": "def f(x):\n    return ", "suffix": "\n\nf(1)", "generation": {"max_new_tokens": 5}}
    gl.sample(fim_run, tmp_path / "filled.py", **options)
    filled = (tmp_path / "filled.py").read_text()
    assert filled.startswith("def f(x):\n    return ") and filled.endswith("\n\nf(1)\n")
    argv = ["sample", str(plain_run), "--prompt", "def f(x):\\n", "--suffix", "\\nf(1)", "--max-new-tokens", "5"]
    proc = subprocess.run([sys.executable, "-m", "genloom", *argv], capture_output=True, text=True)
    assert (
        proc.returncode == 2 and proc.stderr.startswith("genloom: error: suffix: ") and "Traceback" not in proc.stderr
    )


def test_spm_prompt_order(fim_run: Path) -> None:
    lm = gl.load(fim_run)
    tok = lm.tokenizer
    ids = lm.infill_ids("a = 1\n", "b = 2\n", 8, mode="spm")
    assert ids[:2] == [tok.fim_prefix_id, tok.fim_suffix_id]
    assert tok.decode(ids[2:]) == "b = 2\n<fim_middle>a = 1\n"  # the middle continues the prefix directly
    with pytest.raises(UserError, match=r"^prefix: text holds an unpaired surrogate"):
        lm.infill_ids("x = '\ud800'", "", 8)
