"""The CLI end to end, and every bad input named by the spine issue: one line, exit 2, nothing lost."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genloom import run as rundir
from genloom.cli import COMMANDS, build_parser, main

from .conftest import FAST


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("genloom: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def digest(run: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(run.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_every_command_is_in_the_table_and_the_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


def test_train_sample_eval_families(capsys, tmp_path, small_text):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys, "train", "gpt", "--data", str(small_text), "--preset", "debug", "--out", str(out), "--no-progress"
    )
    assert code == 0 and "done: step 20" in stdout
    for name in (
        "config.toml",
        "model.safetensors",
        "best.safetensors",
        "tokenizer.json",
        "state/trainer.pt",
        "metrics.jsonl",
        "card.md",
        "samples/loss_curve.png",
    ):
        assert (out / name).exists(), name
    assert (out / "samples/loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, stdout, _ = run_cli(capsys, "sample", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1")
    assert code == 0 and stdout.startswith("ROMEO:") and len(stdout.rstrip("\n")) >= 30
    code, again, _ = run_cli(capsys, "sample", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1")
    assert again == stdout  # a seed makes sampling reproducible
    code, stdout, _ = run_cli(capsys, "eval", str(out))
    assert code == 0 and "perplexity" in stdout
    card = (out / "card.md").read_text()
    assert "Evaluation (exact, whole validation split)" in card and "val_perplexity" in card
    code, stdout, _ = run_cli(capsys, "families")
    assert code == 0 and "gpt" in stdout and "nanogpt-cpu" in stdout


def test_config_file_is_loaded(capsys, tmp_path, small_text):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        "[model]\nn_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\n[train]\nmax_iters = 3\neval_interval = 3\neval_iters = 1\n"
    )
    out = tmp_path / "run"
    code, _, _ = run_cli(
        capsys, "train", "gpt", "--data", str(small_text), "--config", str(cfg), "--out", str(out), "--no-progress"
    )
    assert code == 0
    saved = (out / "config.toml").read_text()
    assert "n_layer = 1" in saved and "max_iters = 3" in saved


def train_args(data: str, out: Path, *extra: str) -> list[str]:
    sets = [x for s in FAST for x in ("--set", s)]
    return ["train", "gpt", "--data", data, "--preset", "debug", "--out", str(out), *sets, *extra]


def test_missing_file_and_empty_corpus(capsys, tmp_path):
    code, _, err = run_cli(capsys, *train_args(str(tmp_path / "nope.txt"), tmp_path / "r"))
    assert_user_error(code, err, "nope.txt: no such file or directory")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = run_cli(capsys, *train_args(str(empty), tmp_path / "r"))
    assert_user_error(code, err, "the corpus is empty")
    assert not (tmp_path / "r").exists()


def test_corpus_shorter_than_block_size(capsys, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("To be or not to be, that is the question. " * 3)
    code, _, err = run_cli(capsys, *train_args(str(short), tmp_path / "r"))
    assert_user_error(code, err, "short.txt", "fewer than model.block_size + 2")


def test_undecodable_bytes_then_replace(capsys, tmp_path, small_text):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(small_text.read_bytes()[:5000] + b"\xfe\xff" + small_text.read_bytes()[5000:8000])
    code, _, err = run_cli(capsys, *train_args(str(bad), tmp_path / "r"))
    assert_user_error(code, err, "bad.txt: undecodable utf-8 bytes at byte offset 5000", "--encoding-errors replace")
    code, _, _ = run_cli(capsys, *train_args(str(bad), tmp_path / "r", "--encoding-errors", "replace"))
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["train", "nosuch", "--out", "X"], ["unknown family 'nosuch'", "valid families: gpt"]),
        (["train", "gpt", "--preset", "huge", "--out", "X"], ["unknown preset 'huge'", "debug", "nanogpt-cpu"]),
        (
            ["train", "gpt", "--set", "model.n_layr=2", "--out", "X"],
            ["unknown config key 'model.n_layr'", "model.n_layer"],
        ),
        (["train", "gpt", "--set", "bogus.x=2", "--out", "X"], ["unknown section 'bogus'", "model, data, train"]),
        (["train", "gpt", "--set", "model.n_layer=four", "--out", "X"], ["model.n_layer: expected int, got 'four'"]),
        (
            ["train", "gpt", "--set", "train.dtype=fp8", "--out", "X"],
            ["train.dtype: expected one of 'float32', 'bfloat16'"],
        ),
        (
            ["train", "gpt", "--set", "model.n_head=3", "--out", "X"],
            ["model: n_embd (128) must be divisible by n_head (3)"],
        ),
        (["sample", "nowhere"], ["nowhere: not a genloom run directory"]),
    ],
)
def test_bad_names_and_values(capsys, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert_user_error(code, err, *fragments)
    assert not (tmp_path / "X").exists()


def test_existing_run_is_never_overwritten(capsys, tmp_path, trained_run, small_text):
    before = digest(trained_run)
    code, _, err = run_cli(capsys, *train_args(str(small_text), trained_run))
    assert_user_error(code, err, "already exists; pass --resume to continue it or --overwrite to replace it")
    code, _, err = run_cli(capsys, *train_args(str(tmp_path / "missing.txt"), trained_run, "--overwrite"))
    assert_user_error(code, err, "missing.txt")  # bad input found before the old run is touched
    assert digest(trained_run) == before
    other = tmp_path / "not_a_run"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, *train_args(str(small_text), other, "--overwrite"))
    assert_user_error(code, err, "not a genloom run; refusing to delete it")
    assert (other / "notes.txt").read_text() == "mine"


def test_resume_with_changed_config_or_tokenizer_is_refused(capsys, tmp_path, trained_run, small_text):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code, _, err = run_cli(capsys, "train", "gpt", "--out", str(run), "--resume", "--set", "model.n_layer=3")
    assert_user_error(code, err, "config does not match the run (model.n_layer is 2 there, 3 now)")
    other = tmp_path / "other.txt"
    other.write_text(small_text.read_text()[::-1])
    code, _, err = run_cli(capsys, "train", "gpt", "--out", str(run), "--resume", "--data", str(other))
    assert_user_error(code, err, "config does not match the run (data.source")
    tok = run / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"a": ', '"\\u00e9": '))
    before = digest(run)
    code, _, err = run_cli(capsys, "train", "gpt", "--out", str(run), "--resume", "--set", "train.max_iters=25")
    assert_user_error(code, err, "tokenizer.json")
    assert digest(run) == before
    code, _, err = run_cli(capsys, "train", "gpt", "--out", str(tmp_path / "none"), "--resume")
    assert_user_error(code, err, "no run to resume there")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights(capsys, tmp_path, trained_run, damage):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = run / rundir.WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 10)
    for argv in (["sample", str(run)], ["eval", str(run)]):
        code, _, err = run_cli(capsys, *argv)
        assert_user_error(code, err, "model.safetensors: truncated or corrupt safetensors file")


def test_user_errors_exit_2_without_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genloom",
            "train",
            "gpt",
            "--data",
            str(tmp_path / "nope.txt"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("genloom: error:")


def test_resume_after_the_corpus_changed_is_refused(capsys, tmp_path, small_text):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(small_text.read_text())
    run = tmp_path / "run"
    assert run_cli(capsys, *train_args(str(corpus), run))[0] == 0
    corpus.write_text(small_text.read_text()[:-200])
    code, _, err = run_cli(capsys, "train", "gpt", "--out", str(run), "--resume", "--set", "train.max_iters=8")
    assert_user_error(code, err, "the corpus differs from the one this run was trained on")


def test_demo_end_to_end_on_the_bundled_corpus(capsys, tmp_path):
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(capsys, "demo", "--out", str(out), "--max-iters", "12")
    assert code == 0
    assert "--- sample ---\nROMEO:" in stdout and "perplexity" in stdout and str(out) in stdout
    sample = stdout.split("--- sample ---\n")[1].split("\n--------------")[0]
    assert len(sample) > 400  # the prompt plus 500 generated characters
    card = (out / "card.md").read_text()
    assert "tinyshakespeare" in card and "MIT" in card and "loss_curve.png" in card
    code, stdout, _ = run_cli(capsys, "demo", "--out", str(out), "--max-iters", "2")  # reruns replace the demo run
    assert code == 0 and max(r["step"] for r in rundir.read_metrics(out)) == 2
