"""The masked LM end to end through the CLI: train, fill-mask, eval, export, and its bad inputs."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import genloom as gl
from genloom.cli import main

from .conftest import FAST
from .test_cli import assert_user_error, run_cli


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory: pytest.TempPathFactory, small_text: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "bert"
    code = main(["train", "bert", "--data", str(small_text), "--preset", "debug", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_fill_mask_eval_embed(capsys, bert_run):
    capsys.readouterr()
    code, stdout, _ = run_cli(capsys, "fill-mask", str(bert_run), "To be or not to [MASK]", "--top-k", "5")
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == "[MASK] #1:" and len(lines) == 6
    probs = [float(line.split()[0]) for line in lines[1:]]
    assert probs == sorted(probs, reverse=True) and all(0 < p < 1 for p in probs)
    code, stdout, _ = run_cli(capsys, "fill-mask", str(bert_run), "[MASK] be or not to [MASK]", "--top-k", "2")
    assert code == 0 and stdout.count("[MASK] #") == 2
    code, stdout, _ = run_cli(capsys, "eval", str(bert_run))
    assert code == 0 and "masked-token accuracy" in stdout
    assert "val_masked_accuracy" in (bert_run / "card.md").read_text()
    lm = gl.load(bert_run)
    assert isinstance(lm, gl.MaskedLanguageModel)
    vectors = lm.embed(["good morrow, cousin", "o romeo, romeo! wherefore art thou romeo?", "good morrow, cousin"])
    assert vectors.shape == (3, 32) and torch.isfinite(vectors).all()
    assert torch.allclose(vectors[0], vectors[2]) and not torch.allclose(vectors[0], vectors[1])
    assert torch.allclose(lm.embed("good morrow, cousin")[0], vectors[0], atol=1e-5)  # padding changes nothing


def test_resume_masks_exactly_as_an_unbroken_run(tmp_path, small_text):
    sets = ["train.progress=false", "train.max_iters=6", "train.eval_interval=3", "train.eval_iters=1"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    gl.train("bert", out=whole, data=str(small_text), preset="debug", sets=sets)
    gl.train("bert", out=part, data=str(small_text), preset="debug", sets=[*sets[:1], "train.max_iters=3", *sets[2:]])
    gl.train("bert", out=part, data=str(small_text), preset="debug", sets=sets, resume=True)
    losses = [
        [json.loads(line)["train_loss"] for line in (r / "metrics.jsonl").read_text().splitlines()]
        for r in (whole, part)
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def test_fill_mask_without_a_mask_token(capsys, bert_run):
    code, _, err = run_cli(capsys, "fill-mask", str(bert_run), "To be or not to be")
    assert_user_error(code, err, "no [MASK] token")


def test_fill_mask_on_a_gpt_run_and_sample_on_a_bert_run(capsys, bert_run, trained_run):
    code, _, err = run_cli(capsys, "fill-mask", str(trained_run), "To be or not to [MASK]")
    assert_user_error(code, err, "fill-mask needs a masked LM")
    code, _, err = run_cli(capsys, "sample", str(bert_run))
    assert_user_error(code, err, "does not generate text", "fill-mask")


def test_text_longer_than_the_context(capsys, bert_run):
    code, _, err = run_cli(capsys, "fill-mask", str(bert_run), "to be or not to be " * 10 + "[MASK]")
    assert_user_error(code, err, "longer than the model's context of 32")


def test_export_then_load_back_and_missing_weights(capsys, tmp_path, bert_run):
    from transformers import BertForMaskedLM

    out = tmp_path / "hf"
    code, _, _ = run_cli(capsys, "export", str(bert_run), "--out", str(out))
    assert code == 0 and (out / "config.json").exists() and (out / "tokenizer.json").exists()
    ours = gl.load(bert_run)
    hf = BertForMaskedLM.from_pretrained(out).eval()
    ids = torch.tensor([[2, 10, 11, 12, 4, 3]])
    with torch.no_grad():
        assert torch.allclose(hf(input_ids=ids).logits, ours.model(ids), atol=1e-4)
    code, again, _ = run_cli(capsys, "fill-mask", str(out), "To be or not to [MASK]")
    code2, original, _ = run_cli(capsys, "fill-mask", str(bert_run), "To be or not to [MASK]")
    assert code == code2 == 0 and again == original  # the exported directory answers like the run
    code, _, err = run_cli(capsys, "export", str(bert_run), "--out", str(out))
    assert_user_error(code, err, "not an empty directory")
    weights = load_file(str(out / "model.safetensors"))
    del weights["cls.predictions.transform.dense.weight"]
    save_file(weights, str(out / "model.safetensors"))
    code, _, err = run_cli(capsys, "fill-mask", str(out), "To be or not to [MASK]")
    assert_user_error(code, err, "model.safetensors: missing weight 'cls.predictions.transform.dense.weight'")
    (out / "model.safetensors").unlink()
    code, _, err = run_cli(capsys, "fill-mask", str(out), "To be or not to [MASK]")
    assert_user_error(code, err, "no model.safetensors")


def test_masked_lm_refuses_other_tokenizers(capsys, tmp_path, small_text):
    code, _, err = run_cli(
        capsys,
        "train",
        "bert",
        "--data",
        str(small_text),
        "--set",
        "data.tokenizer=char",
        "--out",
        str(tmp_path / "r"),
        *[x for s in FAST for x in ("--set", s)],
    )
    assert_user_error(code, err, "tokenizer must be 'wordpiece'")


def test_whole_word_pre_norm_variant_trains_and_fills(tmp_path, small_text):
    out = tmp_path / "wwm"
    sets = ["train.progress=false", "train.max_iters=3", "train.eval_interval=3", "train.eval_iters=1"]
    sets += ["data.whole_word=true", "model.norm_position=pre"]
    result = gl.train("bert", out=out, data=str(small_text), preset="debug", sets=sets)
    assert result.step == 3 and result.val_loss is not None
    lm = gl.load(out)
    assert isinstance(lm, gl.MaskedLanguageModel) and lm.model.norm_f is not None
    (fillers,) = lm.fill_mask("good [MASK], my lord", top_k=4)
    assert len(fillers) == 4 and sum(p for _, p in fillers) <= 1.0
