"""Issue 13, cases 9-11: bad numbers, sizes, data and run files get one clear line and exit 2."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import genloom as gl
from genloom import run as rundir
from genloom.data.files import MEMORY_PER_BYTE, memory_bytes

from .conftest import assert_clean, cli, digest, train_args

# ---- 9. numbers, sizes and data that used to end in a traceback ----------------------------------------------


@pytest.mark.parametrize("setting", ["train.lr=nan", "train.lr=inf", "train.min_lr=nan", "train.weight_decay=nan"])
def test_non_finite_optimizer_settings_are_refused(capsys, run, small_text, setting):
    before = digest(run)
    outcome = cli(capsys, *train_args(small_text, run, "--overwrite", "--set", setting))
    assert_clean(outcome, 2, setting.split("=")[0], "finite")
    assert digest(run) == before


def test_a_model_larger_than_memory_is_refused_before_allocating(capsys, run, small_text):
    before = digest(run)
    huge = ["--set", "model.n_embd=65536", "--set", "model.n_head=64", "--set", "model.n_layer=64"]
    outcome = cli(capsys, *train_args(small_text, run, "--overwrite", *huge))
    assert_clean(outcome, 2, "GB of weights, more than this machine's")
    assert digest(run) == before


def test_a_corpus_larger_than_memory_is_refused_before_reading(capsys, tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:  # sparse: no disk space, no time
        f.truncate(memory_bytes() // MEMORY_PER_BYTE + 1)
    outcome = cli(capsys, *train_args(big, tmp_path / "out"))
    assert_clean(outcome, 2, "big.txt", "use a smaller corpus")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_device_as_data_is_refused(capsys, tmp_path, kind):
    data = Path("/dev/zero")
    if kind == "fifo":
        data = tmp_path / "pipe"
        os.mkfifo(data)  # reading it would block forever
    outcome = cli(capsys, *train_args(data, tmp_path / "out"))
    assert_clean(outcome, 2, "not a regular file")


def test_sampling_with_a_hopeless_temperature_is_refused(capsys, base_run):
    before = digest(base_run)
    outcome = cli(capsys, "sample", str(base_run), "--prompt", "Th", "--temperature", "1e-300")
    assert_clean(outcome, 2, "temperature must be 0 (greedy) or at least")
    assert digest(base_run) == before


def test_ppo_rollouts_longer_than_the_context_are_refused_with_the_numbers(capsys, base_run, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Th{i}"}) + "\n" for i in range(8)))
    before = digest(base_run)
    argv = ["tune", "ppo", str(base_run), "--data", str(prompts), "--out", str(tmp_path / "ppo"), "--reward", "shorter"]
    outcome = cli(capsys, *argv, "--set", "max_new_tokens=32", "--no-progress")
    assert_clean(outcome, 2, "max_new_tokens", "context of 32 tokens")
    assert digest(base_run) == before and not (tmp_path / "ppo").exists()


# ---- 10. broken run files ----------------------------------------------------------------------------------


def break_file(run: Path, name: str, content: bytes | str | None) -> None:
    path = run / name
    if content is None:  # a directory where the file goes
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def tokenizer_with(run: Path, edit: str) -> str:
    spec = json.loads((run / rundir.TOKENIZER).read_text())
    if edit == "model":
        spec["model"] = "BPE"
    elif edit == "list vocab":
        spec["model"]["vocab"] = list(spec["model"]["vocab"])
    elif edit == "string ids":
        spec["model"]["vocab"] = {k: str(v) for k, v in spec["model"]["vocab"].items()}
    else:  # an added token without an id
        spec["added_tokens"] = [{"content": "<x>"}]
    return json.dumps(spec)


@pytest.mark.parametrize(
    ("name", "breakage", "message"),
    [
        (rundir.CONFIG, b"\x00\xff\xfe binary \x89PNG", "not valid TOML"),
        (rundir.CONFIG, None, "not a file"),
        (rundir.CONFIG, "list", "data.source: expected str"),
        (rundir.TOKENIZER, "model", "'model' must be an object"),
        (rundir.TOKENIZER, "list vocab", "model.vocab must be an object"),
        (rundir.TOKENIZER, "string ids", "must be a non-negative integer id"),
        (rundir.TOKENIZER, "added token", "added_tokens[0] must be an object with an integer 'id'"),
    ],
)
def test_a_broken_config_or_tokenizer_is_one_line(capsys, run, name, breakage, message):
    if breakage == "list":  # a list where the data source's string goes
        breakage = re.sub(r'(?m)^source = ".*"$', "source = [1, 2]", (run / rundir.CONFIG).read_text())
    elif name == rundir.TOKENIZER:
        breakage = tokenizer_with(run, breakage)
    break_file(run, name, breakage)
    before = digest(run)
    assert_clean(cli(capsys, "sample", str(run), "--prompt", "Th", "--max-new-tokens", "4"), 2, message)
    assert digest(run) == before


@pytest.mark.parametrize(
    ("name", "content", "command", "message"),
    [
        ("state/data.json", "[1, 2]", "resume", "expected a JSON object, got list"),
        (rundir.METRICS, '[1, 2]\n{"step": 1}\n', "resume", "expected a JSON object with an integer 'step'"),
        ("summary.json", '"a string"', "eval", "expected a JSON object, got str"),
    ],
)
def test_json_state_files_of_the_wrong_type_are_one_line(capsys, run, small_text, name, content, command, message):
    break_file(run, name, content)
    before = digest(run)
    if command == "resume":
        outcome = cli(capsys, *train_args(small_text, run, "--resume", "--set", "train.max_iters=6"))
    else:
        outcome = cli(capsys, "eval", str(run))
    assert_clean(outcome, 2, name.split("/")[-1], message)
    assert digest(run) == before


def rewrite_weights(run: Path, step: str | None = None, nan: bool = False) -> None:
    tensors = load_file(str(run / rundir.WEIGHTS))
    if nan:
        tensors = {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}
    save_file(tensors, str(run / rundir.WEIGHTS), metadata={"format": "pt", "step": step or "4"})


def test_a_safetensors_step_that_is_not_an_integer_is_one_line(capsys, run, small_text):
    rewrite_weights(run, step="4.5")
    before = digest(run)
    outcome = cli(capsys, *train_args(small_text, run, "--resume", "--set", "train.max_iters=6"))
    assert_clean(outcome, 2, "metadata 'step' must be a non-negative integer, got '4.5'")
    assert digest(run) == before


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_all_nan_weights_are_refused_by_sample_and_reported_by_eval(capsys, run, command):
    rewrite_weights(run, nan=True)
    before = digest(run)
    assert_clean(cli(capsys, command, str(run)), 2, "NaN or infinite values", "diverged")
    assert digest(run) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2, 3]", "expected a JSON object, got list"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not valid JSON"),
        (json.dumps({"model_type": "gpt2", "vocab_size": 50, "n_layer": 1, "n_head": 2, "n_embd": "64"}), "n_embd"),
    ],
)
def test_a_broken_hugging_face_config_is_one_line(capsys, tmp_path, content, message):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_bytes(content.encode() if isinstance(content, str) else content)
    assert_clean(cli(capsys, "sample", str(hf), "--prompt", "a"), 2, "config.json", message)


def test_a_config_that_does_not_match_the_weights_is_refused_before_allocating(capsys, run):
    config = (run / rundir.CONFIG).read_text()
    vocab = gl.load(run).model.config.vocab_size  # type: ignore[union-attr]
    # 50M x 32 floats would be 6.4 GB; the header is read first, so nothing that size is ever allocated
    (run / rundir.CONFIG).write_text(config.replace(f"vocab_size = {vocab}", "vocab_size = 50000000"))
    before = digest(run)
    outcome = cli(capsys, "sample", str(run), "--prompt", "Th")
    assert_clean(outcome, 2, f"tensor 'lm_head.weight' has shape [{vocab}, 32], the config gives [50000000, 32]")
    assert digest(run) == before


def test_export_of_an_image_run_is_one_line(capsys, image_run, tmp_path):
    before = digest(image_run)
    outcome = cli(capsys, "export", str(image_run), "--out", str(tmp_path / "hf"))
    assert_clean(outcome, 2, "exports text runs")
    assert digest(image_run) == before and not (tmp_path / "hf").exists()


def test_export_to_an_unwritable_place_is_one_line(capsys, base_run, tmp_path):
    (tmp_path / "a-file").write_text("x")
    outcome = cli(capsys, "export", str(base_run), "--out", str(tmp_path / "a-file" / "hf"))
    assert_clean(outcome, 2, "is a file, not a directory")


# ---- 11. messages name what is wrong ------------------------------------------------------------------------


def test_a_corpus_character_missing_from_the_vocabulary_names_the_corpus_file(capsys, run, tmp_path):
    corpus = tmp_path / "new-corpus.txt"
    corpus.write_text("Th€ quick brown fox. " * 200)
    config = (run / rundir.CONFIG).read_text()
    source = next(line for line in config.splitlines() if line.startswith("source = "))
    (run / rundir.CONFIG).write_text(config.replace(source, f"source = {json.dumps(str(corpus))}"))
    before = digest(run)
    outcome = cli(capsys, "eval", str(run))
    assert_clean(outcome, 2, str(corpus), "'€'")
    assert digest(run) == before


def test_resume_with_the_original_preset_does_not_reapply_it(capsys, tmp_path, small_text):
    out = tmp_path / "one-layer"
    assert cli(capsys, *train_args(small_text, out, "--set", "model.n_layer=1")).code == 0
    outcome = cli(capsys, *train_args(small_text, out, "--resume", "--set", "train.max_iters=6"))
    assert outcome.code == 0, outcome.output
    assert rundir.load_state(out)["step"] == 6
