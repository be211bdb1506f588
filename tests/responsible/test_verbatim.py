"""The regurgitation guard: the n-gram index, the processor's promise (no output span of L characters copied
from the training text), `genloom eval memorization`, and their bad inputs."""

import json
import random
import shutil

import numpy as np
import pytest
import torch

import genloom as gl
from genloom.api.responsible import token_table
from genloom.generation.verbatim import NgramIndex, TokenTable, VerbatimGuard, window_hashes
from genloom.tokenizers import train_tokenizer

from .cli import run_cli as _cli

TRAINING = [
    "It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon.",
    "Parting is such sweet sorrow that I shall say good night till it be morrow.",
]


def test_window_hashes_are_a_rolling_polynomial_of_the_bytes():
    data = b"abcdefgh"
    h = window_hashes(data, 4)
    assert len(h) == 5 and len(set(h.tolist())) == 5
    assert window_hashes(b"xxabcdyy", 4)[2] == h[0]  # the same window anywhere hashes the same
    assert len(window_hashes(b"abc", 4)) == 0


def test_covered_spans_find_copies_and_only_copies():
    index = NgramIndex.build(TRAINING, order=8)
    copied = "Then she said: Parting is such sweet sorrow that I shall say good night, and left."
    spans = index.covered_spans(copied, 30)
    assert [copied[a:b] for a, b in spans] == ["Parting is such sweet sorrow that I shall say good night"]
    assert index.covered_spans("Nothing here comes from the training text at all, really.", 20) == []


def _copy_decode(guard, table, training: str, prompt_chars: int, steps: int, rng: random.Random) -> str:
    """Greedy decoding of a 'model' that always prefers to copy the training text onward from where the
    output's last characters occur in it (else a random character): the worst case for the guard."""
    pieces = table.pieces
    ids_of = {p.decode(): i for i, p in enumerate(pieces) if p}
    start = rng.randrange(len(training) - prompt_chars - 1)
    prompt = [ids_of[c] for c in training[start : start + prompt_chars]]
    tokens = list(prompt)
    out = ""
    for _ in range(steps):
        context = (training[start : start + prompt_chars] + out)[-12:]
        at = training.find(context)
        wanted = training[at + len(context)] if at >= 0 and at + len(context) < len(training) else rng.choice(training)
        logits = torch.zeros(1, len(pieces))
        logits[0, ids_of[wanted]] = 10.0
        logits[0, ids_of[rng.choice(training)]] += 5.0
        masked = guard(torch.tensor([tokens]), logits)
        token = int(masked.argmax())
        tokens.append(token)
        out += pieces[token].decode()
    return out


@pytest.mark.parametrize("limit", [24, 40])
def test_the_guard_leaves_no_copied_span_of_the_limit(limit):
    training = " ".join(TRAINING) * 2
    tokenizer = train_tokenizer("char", [training])
    table = token_table(tokenizer)
    index = NgramIndex.build([training], order=16)
    rng = random.Random(0)
    blocked = 0
    for _ in range(20):
        guard = VerbatimGuard(index, table, limit)
        out = _copy_decode(guard, table, training, 20, 120, rng)
        longest = max((b - a for a, b in index.covered_spans(out, 16)), default=0)
        assert longest < limit, out
        assert not any(out[i : i + limit] in training for i in range(len(out) - limit + 1))
        blocked += guard.blocked_steps
    assert blocked > 0  # the copying model was stopped, not merely lucky
    # without the guard the same model copies at once
    unguarded = _copy_decode(lambda t, logits: logits, table, training, 20, 120, random.Random(0))
    assert max((b - a for a, b in index.covered_spans(unguarded, 16)), default=0) >= 60


def test_multibyte_tokens_count_characters_not_bytes():
    training = "Grüße aus München, schöne Grüße! " * 3
    pieces = sorted({c.encode() for c in training})
    table = TokenTable.from_pieces(pieces)
    assert table.chars.tolist() == [1] * len(pieces)
    index = NgramIndex.build([training], order=8)
    guard = VerbatimGuard(index, table, 20)
    state = guard.advance(guard.states[()], "Grüße aus München".encode())
    assert state.run == len("Grüße aus München")  # 17 characters, 20 bytes


def test_generation_with_the_guard_through_the_api(trained_run):
    lm = gl.load(trained_run)
    with open(lm.config.data.source) as f:
        training = f.read()
    prompts = [training[i : i + 30] for i in (0, 500, 1000)]
    guarded = lm.generate(prompts, max_new_tokens=80, temperature=0.0, block_verbatim=24)
    for out in guarded:
        assert not any(out[i : i + 24] in training for i in range(len(out) - 23))
    streamed = "".join(lm.stream(prompts[0], max_new_tokens=80, temperature=0.0, block_verbatim=24))
    assert streamed == guarded[0]


def test_memorization_evaluation_and_its_card(tmp_path, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    metrics = gl.evaluate(run, probe="memorization", n_prompts=12, prefix_chars=20, min_chars=24, max_new_tokens=40)
    assert metrics["prompts"] == 12 and 0 <= metrics["extractable"] <= 12
    assert metrics.directions["extractable_rate"] == "lower"
    assert "memorization (12 training prefixes" in metrics.line
    assert json.loads((run / "summary.json").read_text())["memorization"]["prompts"] == 12
    assert "## Memorization" in (run / "card.md").read_text()
    guarded = gl.evaluate(run, probe="memorization", n_prompts=12, prefix_chars=20, min_chars=24, block_verbatim=24)
    assert guarded["verbatim_generations"] == 0


def test_bad_inputs_are_one_line(capsys, tmp_path, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    proc = _cli(capsys, "sample", run, "--prompt", "ROMEO:", "--block-verbatim", "10", "--max-new-tokens", "5")
    assert proc.returncode == 2 and "below the 24-byte n-grams" in proc.stderr and proc.stderr.count("\n") == 1
    proc = _cli(capsys, "eval", "nonsense", run)
    assert proc.returncode == 2 and "no evaluation 'nonsense'" in proc.stderr
    config = (run / "config.toml").read_text()
    source = gl.load(run).config.data.source
    (run / "config.toml").write_text(config.replace(source, str(tmp_path / "gone.txt")))
    proc = _cli(capsys, "eval", "memorization", run, "--prompts", "3")
    assert proc.returncode == 2 and "gone.txt" in proc.stderr and "cannot be read" in proc.stderr
    (run / "config.toml").write_text(config)
    shutil.rmtree(run / "memorization")
    proc = _cli(capsys, "eval", "memorization", run, "--prompts", "3")
    assert proc.returncode == 2 and "memorization/ngrams.npy, which is missing" in proc.stderr
    with pytest.raises(gl.UserError, match=r"ngrams\.npy, which is missing"):
        gl.load(run).generate("ROMEO:", max_new_tokens=5, block_verbatim=50)


def test_cli_memorization_line(capsys, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    proc = _cli(capsys, "eval", "memorization", run, "--prompts", "5", "--prefix-chars", "16", "--new-tokens", "30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("memorization (5 training prefixes of 16 characters")


def test_index_is_numpy_without_pickle(trained_run):
    hashes = np.load(trained_run / "memorization" / "ngrams.npy", allow_pickle=False)
    assert hashes.dtype == np.uint64 and np.all(hashes[1:] > hashes[:-1])
    meta = json.loads((trained_run / "memorization" / "index.json").read_text())
    assert meta["order_bytes"] == 24 and meta["ngrams"] == len(hashes)
