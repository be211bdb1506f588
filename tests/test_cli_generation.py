"""`genloom sample` with every generation option, `genloom chat`, `genloom export`, and their bad input."""

import json

import pytest

from .test_cli import assert_user_error, run_cli


def test_sample_options(capsys, tmp_path, trained_run):
    run = str(trained_run)
    code, out, _ = run_cli(capsys, "sample", run, "--prompt", "ROMEO:", "--max-new-tokens", "20", "--temperature", "0")
    assert code == 0 and out.startswith("ROMEO:")
    greedy = out[:-1]
    stop = greedy[len("ROMEO:") + 4 : len("ROMEO:") + 6]
    code, out, _ = run_cli(
        capsys, "sample", run, "--prompt", "ROMEO:", "--max-new-tokens", "20", "--temperature", "0", "--stop", stop
    )
    assert code == 0 and out[:-1] == greedy[: greedy.index(stop, len("ROMEO:"))]
    code, streamed, _ = run_cli(
        capsys, "sample", run, "--prompt", "ROMEO:", "--max-new-tokens", "20", "--temperature", "0", "--stream"
    )
    assert code == 0 and streamed[:-1] == greedy
    flags = ["--top-p", "0.9", "--min-p", "0.05", "--top-k", "10", "--repetition-penalty", "1.2"]
    flags += ["--frequency-penalty", "0.1", "--presence-penalty", "0.1", "--logit-bias", "1=0.5", "--ban", "2"]
    code, out, _ = run_cli(capsys, "sample", run, "--prompt", "A", "--max-new-tokens", "10", "--seed", "3", *flags)
    assert code == 0 and out.startswith("A")
    code, out, _ = run_cli(capsys, "sample", run, "--prompt", "A", "--max-new-tokens", "5", "--num-beams", "3")
    assert code == 0 and out.startswith("A")
    code, out, _ = run_cli(
        capsys, "sample", run, "--prompt", "A", "--max-new-tokens", "3", "--temperature", "0", "--logprobs", "2"
    )
    assert code == 0 and len(out.split("alternatives) ---\n")[1].splitlines()) == 3
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ROMEO:\nTo be\n\nAnd so\n")
    code, out, err = run_cli(capsys, "sample", run, "--prompts-file", str(prompts), "--max-new-tokens", "8")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [r["prompt"] for r in rows] == ["ROMEO:", "To be", "And so"]
    assert all(r["finish_reason"] == "length" for r in rows)


def test_chat_streams_replies(capsys, monkeypatch, trained_run):
    lines = iter(["ROMEO:", "JULIET:", ""])
    monkeypatch.setattr("builtins.input", lambda _prompt="": next(lines))
    code, out, _ = run_cli(capsys, "chat", str(trained_run), "--max-new-tokens", "10", "--seed", "0")
    assert code == 0 and len(out.splitlines()) >= 3


def test_export_command(capsys, tmp_path, trained_run):
    code, out, _ = run_cli(capsys, "export", str(trained_run), "--format", "hf", "--out", str(tmp_path / "hf"))
    assert code == 0 and (tmp_path / "hf" / "config.json").exists()
    code, out, _ = run_cli(capsys, "sample", str(tmp_path / "hf"), "--prompt", "A", "--max-new-tokens", "5")
    assert code == 0 and out.startswith("A")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--top-p", "-0.1"], "top_p must be in (0, 1]"),
        (["--top-k", "-2"], "top_k must be a positive integer"),
        (["--logit-bias", "99999=1"], "logit_bias: token id 99999 is not in the vocabulary"),
        (["--logit-bias", "x"], "--logit-bias 'x': expected TOKEN_ID=BIAS"),
        (["--prompt", "A" * 40], "more than the model's context of 32"),
        (["--num-beams", "2", "--top-k", "3"], "beam search"),
        (["--prompts-file", "no-such-dir/prompts.txt"], "--prompts-file"),
    ],
)
def test_bad_sample_input(capsys, trained_run, flags, fragment):
    code, _, err = run_cli(capsys, "sample", str(trained_run), "--max-new-tokens", "2", *flags)
    assert_user_error(code, err, fragment)


def test_bad_hf_directory_on_the_cli(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    code, _, err = run_cli(capsys, "sample", str(tmp_path))
    assert_user_error(code, err, "model_type 'mamba'", "gpt2, gpt_neox, llama")
    code, _, err = run_cli(capsys, "export", str(tmp_path), "--out", str(tmp_path / "x"))
    assert_user_error(code, err)
