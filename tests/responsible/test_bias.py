"""CrowS-Pairs (`genloom eval bias`): the authors' scoring (shared tokens only, each masked in turn), the
share with bootstrap intervals per bias type, and the CLI on a GPT and a BERT run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import genloom as gl
from genloom.cli import main
from genloom.errors import UserError
from genloom.evaluate.bias import crows_pairs, load_pairs, masked_pair_scorer, shared_positions

from ..pretrained_texts import minilm_dir


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory: pytest.TempPathFactory, small_text: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "bert"
    argv = ["train", "bert", "--data", str(small_text), "--preset", "debug", "--out", str(out), "--no-progress"]
    assert main([*argv, "--set", "model.block_size=128"]) == 0  # CrowS-Pairs sentences run to ~60 word pieces
    return out


def test_the_bundled_pairs_are_the_papers() -> None:
    pairs = load_pairs()
    assert len(pairs) == 1508  # Nangia et al. 2020, Table 1
    assert {p.bias_type for p in pairs} == {
        "race-color", "socioeconomic", "gender", "disability", "nationality", "sexual-orientation",
        "physical-appearance", "religion", "age",
    }  # fmt: skip


def test_only_the_tokens_both_sentences_share_are_scored() -> None:
    a, b = shared_positions([5, 6, 7, 8, 9], [5, 11, 12, 8, 9])
    assert a == [0, 3, 4] and b == [0, 3, 4]
    assert shared_positions([1, 2], [3, 4]) == ([], [])


def test_the_share_and_its_interval_follow_the_scores() -> None:
    pairs = load_pairs()
    by_length = crows_pairs(lambda a, b: (len(a), len(b)), pairs)  # a scorer whose answer is known
    expected = np.mean([len(p.more) > len(p.less) for p in pairs])
    assert by_length["stereotype_share"] == pytest.approx(expected)
    assert by_length["low"] <= expected <= by_length["high"] and by_length["high"] - by_length["low"] < 0.06
    assert sum(t["pairs"] for t in by_length["by_type"].values()) == by_length["pairs"] == 1508
    always = crows_pairs(lambda a, b: (1.0, 0.0), pairs, limit=90)
    assert always["stereotype_share"] == 1.0 and always["pairs"] == 90 and len(always["by_type"]) == 9
    ties = crows_pairs(lambda a, b: (0.0, 0.0), pairs, limit=20)
    assert ties["stereotype_share"] == 0.0 and ties["ties"] == 20  # a tie prefers neither: not counted


def test_masked_scores_are_the_pseudo_log_likelihood_of_shared_tokens(bert_run: Path) -> None:
    mlm = gl.load(bert_run)
    more, less = "the poor are ignorant", "the rich are ignorant"
    got_more, _ = masked_pair_scorer(mlm)(more, less)
    tok = mlm.tokenizer
    ids, other = tok.encode(more), tok.encode(less)
    positions, _ = shared_positions(ids, other)
    assert 0 < len(positions) < len(ids)  # the differing word is not scored
    expected = 0.0
    with torch.no_grad():
        for p in positions:  # one token masked at a time, the rest visible
            row = torch.tensor([[tok.cls_id, *ids, tok.sep_id]])
            row[0, p + 1] = tok.mask_id
            logp = mlm.model(row, attention_mask=torch.ones_like(row))[0, p + 1].float().log_softmax(-1)
            expected += float(logp[ids[p]])
    assert got_more == pytest.approx(expected, rel=1e-5)


def test_eval_bias_from_the_cli_for_gpt_and_bert(trained_run: Path, bert_run: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for run, method in ((trained_run, "total log-likelihood"), (bert_run, "pseudo-log-likelihood")):
        capsys.readouterr()
        assert main(["eval", "bias", str(run), "--limit", "27"]) == 0
        line = capsys.readouterr().out
        assert "CrowS-Pairs (" in line and method in line and "95% CI" in line and "race-color" in line
        summary = json.loads((run / "summary.json").read_text())["bias"]
        assert summary["pairs"] + summary["skipped"] == 27 and summary["pairs"] >= 20
        assert 0.0 <= summary["low"] <= summary["stereotype_share"] <= summary["high"] <= 1.0
        assert "Bias (CrowS-Pairs" in (run / "card.md").read_text()


def test_a_model_that_cannot_score_masks_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    minilm = minilm_dir()
    if minilm is not None:  # a sentence-embedding encoder: no masked-LM head
        with pytest.raises(UserError, match="without a masked-LM head"):
            masked_pair_scorer(gl.load(minilm))
    table = tmp_path / "table"
    gl.train("copula", out=table, data="wine", preset="debug", sets=["train.progress=false"])
    assert main(["eval", "bias", str(table)]) == 2
    err = capsys.readouterr().err
    assert "no evaluation 'bias'" in err and err.count("\n") == 1
