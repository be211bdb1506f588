"""Reward model, DPO and PPO end to end on the debug run: run directories, lineage, learning signal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import genloom as gl
from genloom.cli import main
from genloom.tune.ppo import REWARDS
from tests.tune.conftest import FAST


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory: pytest.TempPathFactory, sft_run: Path, tune_data: dict[str, Path]) -> Path:
    out = tmp_path_factory.mktemp("reward") / "rm"
    sets = ["train.max_iters=40", "train.eval_interval=40", "train.eval_iters=1", "train.lr=3e-3", "val_fraction=0.3"]
    code = main(
        [
            "tune",
            "reward",
            str(sft_run),
            "--data",
            str(tune_data["pairs"]),
            "--out",
            str(out),
            "--no-progress",
            *(f"--set={s}" for s in sets),
        ]
    )
    assert code == 0
    return out


def test_reward_model_learns_the_programmatic_preference(reward_run: Path):
    summary = (reward_run / "card.md").read_text()
    assert "a reward model" in summary and (reward_run / "reward_head.safetensors").exists()
    import json

    metrics = json.loads((reward_run / "summary.json").read_text())["metrics"]
    assert metrics["val_pairs"] >= 3 and metrics["val_pair_accuracy"] >= 0.8 and metrics["val_mean_margin"] > 0
    assert isinstance(gl.load(reward_run), gl.LanguageModel)  # its LM is still a servable run


def test_dpo_widens_the_margin_on_held_out_pairs(tmp_path: Path, sft_run: Path, tune_data: dict[str, Path]):
    sets = [
        "train.max_iters=30",
        "train.eval_interval=30",
        "train.eval_iters=1",
        "train.lr=3e-3",
        "val_fraction=0.3",
        "beta=0.5",
    ]
    result = gl.tune("dpo", sft_run, data=tune_data["pairs"], out=tmp_path / "dpo", sets=sets)
    m = result.metrics
    assert m["val_reward_margin"] > 0 and m["val_reward_accuracy"] >= 0.75 and m["val_loss"] < 0.6931
    assert m["val_chosen_reward"] > m["val_rejected_reward"]
    assert gl.load(tmp_path / "dpo").chat_template is not None  # the SFT run's template carries over


def test_ppo_with_a_reward_run_a_name_and_a_function(
    tmp_path: Path, sft_run: Path, reward_run: Path, tune_data: dict[str, Path]
):
    sets = [*FAST, "max_new_tokens=6", "minibatch_size=4", "adaptive_kl=true"]
    a = gl.tune("ppo", sft_run, data=tune_data["pairs"], out=tmp_path / "a", sets=sets, reward=str(reward_run))
    assert {"before_val_score", "after_val_score", "before_val_kl", "after_val_kl"} <= set(a.metrics)
    assert a.metrics["before_val_kl"] == pytest.approx(0.0, abs=1e-5)  # the policy starts as the reference
    assert (tmp_path / "a" / "value_head.safetensors").exists() and "RLHF (PPO)" in (
        tmp_path / "a" / "card.md"
    ).read_text()
    seen: list[int] = []

    def count_chars(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        seen.append(len(responses))
        return [float(len(r)) for r in responses]

    gl.tune("ppo", sft_run, data=tune_data["pairs"], out=tmp_path / "b", sets=sets, reward=count_chars)
    assert seen and all(n > 0 for n in seen)
    code = main(
        [
            "tune",
            "ppo",
            str(sft_run),
            "--data",
            str(tune_data["pairs"]),
            "--out",
            str(tmp_path / "c"),
            "--reward",
            "shorter",
            "--lora",
            "--no-progress",
            *(f"--set={s}" for s in sets),
        ]
    )
    assert code == 0 and (tmp_path / "c" / "adapters.safetensors").exists()
    assert isinstance(gl.load(tmp_path / "c"), gl.LanguageModel)


@pytest.mark.parametrize(
    ("name", "response", "score"),
    [
        ("ends-with-question", "is it? ", 1.0),
        ("ends-with-question", "it is.", 0.0),
        ("positive-words", "a good kind day, not bad", 1.0),
        ("shorter", "x" * 25, 0.75),
    ],
)
def test_programmatic_rewards(name: str, response: str, score: float):
    assert REWARDS[name](["p"], [response]) == [pytest.approx(score)]
