"""Seq2seq end to end: train on a user's TSV, translate (API and CLI), evaluate with BLEU/chrF, and each
bad input with its one-line error."""

import json
import random
from pathlib import Path

import pytest
import torch

import genloom as gl
from genloom.data.pairs import PairData, PairDataConfig, collate, encode_pairs, load_pair_splits, train_pair_tokenizer
from genloom.data.parallel import DATA_DIR
from genloom.errors import UserError

from ..test_cli import assert_user_error, run_cli

QUIET = ["train.progress=false"]
WORDS = ["red", "green", "blue", "cat", "dog", "bird", "sun", "moon", "tree", "river", "stone", "fire"]


@pytest.fixture(scope="module")
def tatoeba_tsv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4000 Tatoeba pairs as a user's own TSV file."""
    path = tmp_path_factory.mktemp("pairs") / "en-fr.tsv"
    lines = (DATA_DIR / "tatoeba_eng_fra" / "fra.txt").read_text().splitlines()[:4000]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def s2s_run(tmp_path_factory: pytest.TempPathFactory, tatoeba_tsv: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "s2s"
    gl.train("seq2seq", out=out, data=str(tatoeba_tsv), preset="debug", sets=QUIET)
    return out


def test_train_translate_evaluate(s2s_run):
    tr = gl.load(s2s_run)
    assert isinstance(tr, gl.Translator)
    texts = ["I am hungry.", "Where is the station?", "Go."]
    batch = tr.translate(texts, max_new_tokens=12)
    assert batch == [tr.translate(t, max_new_tokens=12) for t in texts]  # batched == one by one
    beams = tr.translate(texts, num_beams=3, max_new_tokens=12)
    assert len(beams) == 3 and all(isinstance(b, str) for b in beams)
    (c,) = tr.complete("I am hungry.", max_new_tokens=5, stop_at_eos=False)
    assert len(c.token_ids) == 5 and c.finish_reason == "length"
    m = gl.evaluate(s2s_run)
    assert m["test_sentences"] > 50 and 0 <= m["bleu"] <= 100 and 0 <= m["chrf"] <= 100
    assert 0 < m["test_loss"] < 10 and m["bleu_signature"].startswith("nrefs:var")
    card = (s2s_run / "card.md").read_text()
    assert "bleu" in card and "CC BY" not in card  # a user's file: no bundled license claimed
    assert (s2s_run / "samples").is_dir()


def test_the_model_learns_a_small_task(tmp_path):
    """Teacher-forced training and engine decoding line up: a memorized mapping translates exactly."""
    rng = random.Random(0)
    pairs = set()
    while len(pairs) < 60:
        words = rng.sample(WORDS, 3)
        pairs.add((" ".join(words), " ".join(w.upper() for w in reversed(words))))
    tsv = tmp_path / "reverse.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in sorted(pairs)))
    sets = [*QUIET, "train.max_iters=300", "train.lr=0.003", "train.batch_size=16", "train.eval_interval=300"]
    gl.train("seq2seq", out=tmp_path / "run", data=str(tsv), preset="debug", sets=sets)
    tr = gl.load(tmp_path / "run")
    splits = load_pair_splits(tr.config.data)
    sources = [p.source for p in splits.train]
    hyps = tr.translate(sources)
    right = sum(h == p.target for h, p in zip(hyps, splits.train, strict=True))
    assert right >= 0.9 * len(sources), list(zip(sources, hyps, strict=True))[:5]
    assert tr.translate(sources[:5], num_beams=4) == hyps[:5]


def test_cli_train_translate_eval(capsys, tmp_path, tatoeba_tsv):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys, "train", "seq2seq", "--data", str(tatoeba_tsv), "--preset", "debug", "--out", str(out), "--no-progress"
    )
    assert code == 0 and "done: step 20" in stdout
    code, stdout, _ = run_cli(capsys, "translate", str(out), "I am hungry.", "--max-new-tokens", "6")
    assert code == 0 and len(stdout.splitlines()) == 1
    sentences = tmp_path / "en.txt"
    sentences.write_text("I am hungry.\n\nGo.\nWhere is the station?\n")
    code, stdout, _ = run_cli(capsys, "translate", str(out), "--file", str(sentences), "--num-beams", "2")
    assert code == 0 and len(stdout.splitlines()) == 3
    code, stdout, _ = run_cli(capsys, "eval", str(out))
    assert code == 0 and stdout.startswith("BLEU ") and "chrF" in stdout
    code, _, err = run_cli(capsys, "sample", str(out), "--prompt", "x")
    assert_user_error(code, err, "genloom translate")


def test_bad_inputs_of_the_cli(capsys, s2s_run, tmp_path):
    code, _, err = run_cli(capsys, "translate", str(s2s_run))
    assert_user_error(code, err, "exactly one of a text or --file")
    code, _, err = run_cli(capsys, "translate", str(s2s_run), "word " * 40)
    assert_user_error(code, err, "more than the model's context of 32", "--truncate")
    code, stdout, _ = run_cli(capsys, "translate", str(s2s_run), "word " * 40, "--truncate", "--max-new-tokens", "3")
    assert code == 0 and len(stdout.splitlines()) == 1
    code, _, err = run_cli(capsys, "translate", str(s2s_run), "Go.", "--max-new-tokens", "40")
    assert_user_error(code, err, "max_new_tokens must be at most 31")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    code, _, err = run_cli(capsys, "translate", str(s2s_run), "--file", str(empty))
    assert_user_error(code, err, "no sentences")
    code, _, err = run_cli(capsys, "translate", str(s2s_run), "--file", str(tmp_path / "missing.txt"))
    assert_user_error(code, err, "missing.txt", "cannot read")


def test_a_tsv_line_without_a_tab_names_the_line(tmp_path, capsys):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("Hello.\tBonjour.\nGood night.\tBonne nuit.\nThank you. Merci.\n")
    code, _, err = run_cli(
        capsys, "train", "seq2seq", "--data", str(tsv), "--preset", "debug", "--out", str(tmp_path / "r")
    )
    assert_user_error(code, err, "bad.tsv:3:", "no tab")
    assert not (tmp_path / "r").exists()  # nothing written


def test_bad_jsonl_and_too_few_pairs(tmp_path):
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"source": "a", "target": "b"}) + "\n" + json.dumps({"source": "a"}) + "\n")
    with pytest.raises(UserError, match=r"p.jsonl:2: field 'target'"):
        gl.train("seq2seq", out=tmp_path / "r", data=str(jl), preset="debug", sets=QUIET)
    tsv = tmp_path / "two.tsv"
    tsv.write_text("a\tb\nc\td\n")
    with pytest.raises(UserError, match="split empty"):
        gl.train("seq2seq", out=tmp_path / "r", data=str(tsv), preset="debug", sets=QUIET)


def test_too_long_sides_error_or_truncate(tmp_path, tatoeba_tsv):
    long_pair = " ".join(["word"] * 60)
    tsv = tmp_path / "long.tsv"
    tsv.write_text(tatoeba_tsv.read_text() + f"{long_pair}\tmot\n")
    sets = [*QUIET, "data.truncate=false", "model.block_size=40"]
    with pytest.raises(
        UserError, match=r"the source has \d+ tokens .* context of 40 \(model.block_size\).*data.truncate"
    ):
        gl.train("seq2seq", out=tmp_path / "r", data=str(tsv), preset="debug", sets=sets)
    assert not (tmp_path / "r").exists()
    splits = load_pair_splits(PairDataConfig(source=str(tsv)))

    tok = train_pair_tokenizer(splits.train, 400)
    pairs = [p for p in splits.train + splits.val + splits.test if p.source == long_pair]
    (enc,) = encode_pairs(pairs, tok, 16, truncate=True)
    assert len(enc.source) == 16 and enc.source[-1] == tok.eos_id


def test_batches_are_padded_and_bucketed_by_length(tatoeba_tsv):
    splits = load_pair_splits(PairDataConfig(source=str(tatoeba_tsv)))

    tok = train_pair_tokenizer(splits.train, 400)
    enc = encode_pairs(splits.train, tok, 64, truncate=False)
    src, mask, tgt_in, labels = collate(enc[:3], tok.eos_id)
    for r in range(3):
        n, m = len(enc[r].source), len(enc[r].target)
        assert mask[r].sum() == n and src[r, :n].tolist() == enc[r].source
        assert labels[r, :m].tolist() == enc[r].target and (labels[r, m:] == -100).all()
        assert tgt_in[r, 0] == tok.eos_id and tgt_in[r, 1:m].tolist() == enc[r].target[:-1]  # shifted right
    data = PairData({"train": enc}, tok.eos_id, 64)
    g = torch.Generator().manual_seed(0)
    src, mask, _, _ = data.get_batch("train", 32, g)
    lengths = mask.sum(1)
    assert lengths.max() - lengths.min() <= 2  # neighbours in length order: little padding


def test_resume_continues_exactly(tmp_path, tatoeba_tsv):
    sets = [*QUIET, "train.max_iters=6", "train.eval_interval=3", "train.eval_iters=1"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    gl.train("seq2seq", out=whole, data=str(tatoeba_tsv), preset="debug", sets=sets)
    gl.train("seq2seq", out=part, data=str(tatoeba_tsv), preset="debug", sets=[*sets, "train.max_iters=3"])
    gl.train("seq2seq", out=part, data=str(tatoeba_tsv), preset="debug", sets=sets, resume=True)
    losses = [
        [json.loads(line)["train_loss"] for line in (r / "metrics.jsonl").read_text().splitlines()]
        for r in (whole, part)
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["data"]["train_pairs"] > 3000 and summary["training"]["tokens_per_s"] > 0


def test_jsonl_pairs_with_own_field_names(tmp_path, tatoeba_tsv):
    jl = tmp_path / "pairs.jsonl"
    rows = [line.split("\t")[:2] for line in tatoeba_tsv.read_text().splitlines()[:1500]]
    jl.write_text("".join(json.dumps({"en": en, "fr": fr}, ensure_ascii=False) + "\n" for en, fr in rows))
    sets = [*QUIET, "data.source_field=en", "data.target_field=fr", "model.n_decoder_layer=1"]
    gl.train("seq2seq", out=tmp_path / "run", data=str(jl), preset="debug", sets=sets)
    tr = gl.load(tmp_path / "run")
    assert isinstance(tr, gl.Translator) and len(tr.model.decoder) == 1 and len(tr.model.encoder) == 2
    assert isinstance(tr.translate("Hello.", max_new_tokens=4), str)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sum(summary["data"][f"{s}_pairs"] for s in ("train", "val", "test")) == 1500
