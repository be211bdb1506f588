"""Image families end to end through the CLI on bundled `digits`: train, sample, eval; and the bad inputs."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

import genloom as gl
from genloom.models import FAMILIES

from .test_cli import assert_user_error, run_cli

IMAGE_FAMILIES = [name for name, fam in FAMILIES.items() if fam.modality == "image"]
QUICK = ["--set", "train.max_iters=8", "--set", "train.eval_interval=4", "--no-progress"]


@pytest.fixture(autouse=True)
def classifier_cache(tmp_path_factory, monkeypatch):
    """One feature-classifier cache for the session, never the user's."""
    monkeypatch.setenv("GENLOOM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One trained debug run per image family (the flow one unconditional)."""
    root = tmp_path_factory.mktemp("image-runs")
    out = {}
    for name in IMAGE_FAMILIES:
        sets = ["train.max_iters=8", "train.eval_interval=4", "train.progress=false"]
        gl.train(name, out=root / name, preset="debug", sets=sets)
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", IMAGE_FAMILIES)
def test_train_sample_eval(capsys, tmp_path, name, monkeypatch):
    out = tmp_path / name
    code, stdout, _ = run_cli(capsys, "train", name, "--preset", "debug", "--out", str(out), *QUICK)
    assert code == 0 and "done: step 8" in stdout
    for rel in (
        "config.toml",
        "model.safetensors",
        "state/trainer.pt",
        "metrics.jsonl",
        "card.md",
        "samples/latest.png",
    ):
        assert (out / rel).exists(), rel
    conditional = name != "flow"  # the flow's debug preset is unconditional
    label = ["--label", "3"] if conditional else []
    steps = ["--steps", "2"] if name == "diffusion" else []
    code, stdout, _ = run_cli(
        capsys, "sample", str(out), "--n", "4", *label, *steps, "--seed", "1", "--out", str(tmp_path / "g.png")
    )
    assert code == 0, stdout
    assert Image.open(tmp_path / "g.png").size[0] > 8 * 4
    code, stdout, _ = run_cli(capsys, "eval", str(out), "--n-samples", "150")
    assert code == 0 and "fid " in stdout and "fid_floor" in stdout
    evaluation = json.loads((out / "summary.json").read_text())["evaluation"]
    assert evaluation["fid"] >= 0 and evaluation["fid_floor"] >= 0 and evaluation["fid_floor_train"] >= 0
    assert evaluation["classifier_test_accuracy"] > 0.8  # the feature classifier really learned digits
    assert ("conditional_accuracy" in evaluation) == conditional
    assert ("test_bits_per_dim" in evaluation) == (name in ("flow", "pixelcnn"))
    assert ("test_elbo_nats" in evaluation) == (name == "vae")
    card = (out / "card.md").read_text()
    assert "fid_floor" in card and "samples/eval_grid.png" in card
    assert (out / "samples/interpolation.png").exists() == (name in ("vae", "gan", "flow"))
    assert (out / "samples/denoising.png").exists() == (name == "diffusion")


def test_resume_continues_an_image_run(tmp_path):
    sets = ["train.max_iters=4", "train.eval_interval=2", "train.progress=false"]
    gl.train("gan", out=tmp_path / "a", preset="debug", sets=sets)
    gl.train("gan", out=tmp_path / "a", sets=["train.max_iters=6", "train.progress=false"], resume=True)
    gl.train("gan", out=tmp_path / "b", preset="debug", sets=["train.max_iters=6", *sets[1:]])
    a = [json.loads(x) for x in (tmp_path / "a/metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]  # exact resume through the GAN's own step


def test_label_on_unconditional_run(capsys, runs):
    code, _, err = run_cli(capsys, "sample", str(runs["flow"]), "--label", "3")
    assert_user_error(code, err, "unconditional", "without a label")


def test_label_out_of_range(capsys, runs):
    code, _, err = run_cli(capsys, "sample", str(runs["vae"]), "--label", "10")
    assert_user_error(code, err, "label must be between 0 and 9", "10")


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_steps_not_positive(capsys, runs, steps):
    code, _, err = run_cli(capsys, "sample", str(runs["diffusion"]), "--steps", steps)
    assert_user_error(code, err, "steps must be a positive", steps)


def test_conditional_model_on_unlabelled_folder(capsys, tmp_path):
    for i in range(12):
        Image.new("L", (8, 8), color=i * 10).save(tmp_path / f"{i}.png")
    code, _, err = run_cli(
        capsys,
        "train",
        "vae",
        "--preset",
        "debug",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert_user_error(code, err, "conditional needs labelled data")
    assert not (tmp_path / "run").exists()  # nothing written


def test_subprocess_exit_code_and_one_line(runs):
    proc = subprocess.run(
        [sys.executable, "-m", "genloom", "sample", str(runs["pixelcnn"]), "--label", "42"],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "label must be between 0 and 9" in proc.stderr


def test_likelihood_only_evaluation(runs):
    m = gl.evaluate_images(runs["pixelcnn"], n_samples=0, test_images=7)
    assert "fid" not in m and m["test_images"] == 7 and m["test_bits_per_dim"] > 0
    with pytest.raises(gl.UserError, match="n_samples must be 0"):
        gl.evaluate_images(runs["pixelcnn"], n_samples=1)


def test_diffusion_ema_is_updated_by_the_loop_saved_and_resumed_exactly(tmp_path):
    """The training loop calls the EMA update once per optimizer step; the average is part of the run's
    weights, so a resumed run ends with the same EMA as an unbroken one."""
    sets = ["train.max_iters=4", "train.eval_interval=2", "train.progress=false", "train.lr_decay_iters=6"]
    sets += ["model.ema_decay=0.9"]  # (the learning-rate schedule must not depend on max_iters)
    gl.train("diffusion", out=tmp_path / "a", preset="debug", sets=sets)
    gl.train("diffusion", out=tmp_path / "a", sets=["train.max_iters=6", "train.progress=false"], resume=True)
    gl.train("diffusion", out=tmp_path / "b", preset="debug", sets=["train.max_iters=6", *sets[1:]])
    a, b = gl.load(tmp_path / "a").model, gl.load(tmp_path / "b").model
    assert int(a.ema_steps) == int(b.ema_steps) == 6
    for pa, pb in zip(a.ema_unet.parameters(), b.ema_unet.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(e, p) for e, p in zip(a.ema_unet.parameters(), a.unet.parameters(), strict=True))
