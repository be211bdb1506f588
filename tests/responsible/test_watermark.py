"""Watermarks: the text green lists and z-test (Kirchenbauer et al. 2023), the image mark and its detector,
the key's place (the run directory, never an output), and the CLI, API and server paths."""

import json
import shutil

import numpy as np
import pytest
import torch

import genloom as gl
from genloom.generation.watermark import Watermark, WatermarkKey, detect
from genloom.image_watermark import ImageWatermark, psnr

from .cli import run_cli as _cli

KEY = WatermarkKey(bytes(range(32)), "test")


def test_green_lists_are_a_keyed_share_of_the_vocabulary():
    g = KEY.green(7, 1000, 0.25)
    assert int(g.sum()) == 250 and torch.equal(g, KEY.green(7, 1000, 0.25))
    assert not torch.equal(g, KEY.green(8, 1000, 0.25))
    assert not torch.equal(g, WatermarkKey(bytes(range(1, 33))).green(7, 1000, 0.25))
    assert "secret hidden" in repr(KEY) and bytes(range(32)).hex() not in repr(KEY)


def test_the_z_test_separates_biased_sampling_from_chance():
    gen = torch.Generator().manual_seed(0)
    V, T = 500, 200
    plain = torch.randint(V, (T,), generator=gen).tolist()
    assert abs(detect(plain, KEY, V).z) < 4
    ids = [3]
    mark = Watermark(KEY, 0.25, 2.0)
    for _ in range(T):  # sampling from flat logits with the watermark's bias
        logits = mark(torch.tensor([ids]), torch.zeros(1, V))
        ids.append(int(torch.multinomial(logits.softmax(-1), 1, generator=gen)))
    found = detect(ids, KEY, V)
    assert found.watermarked and found.z > 8 and found.p_value < 1e-10
    assert abs(detect(ids, WatermarkKey(bytes(32 * [9])), V).z) < 4  # another key sees nothing
    repeated = detect([5, 6] * 100, KEY, V)
    assert repeated.scored == 2  # repeated pairs are scored once


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, small_text):
    """A debug GPT with a context of 256 tokens, so that 200-token generations fit the server's rows."""
    out = tmp_path_factory.mktemp("runs") / "text"
    sets = ["model.block_size=256", "train.max_iters=4", "train.progress=false", "train.sample_tokens=0"]
    gl.train("gpt", out=out, data=str(small_text), preset="debug", sets=sets)
    return out


def test_text_runs_mark_and_detect_and_the_key_stays_in_the_run(tmp_path, text_run):
    run = tmp_path / "run"
    shutil.copytree(text_run, run)
    lm = gl.load(run)
    marked = lm.generate("ROMEO:", max_new_tokens=200, seed=1, watermark=True)
    plain = lm.generate("ROMEO:", max_new_tokens=200, seed=1)
    assert lm.detect(marked)["z"] >= 4 and lm.detect(plain)["z"] < 4
    assert lm.detect("☃ " + marked + " ☃")["watermarked"]  # characters the vocabulary lacks are skipped
    assert gl.detect(run, _write(tmp_path / "m.txt", marked))["watermarked"]
    secret = json.loads((run / "watermark.key").read_text())["key"]
    assert (run / "watermark.key").stat().st_mode & 0o077 == 0  # the owner's only
    for path in run.rglob("*"):
        if path.is_file() and path.name != "watermark.key":
            assert secret.encode() not in path.read_bytes(), path
    cfg = lm.responsible(gl.GenerationConfig(watermark=True))
    assert secret not in repr(cfg)


def _write(path, text):
    path.write_text(text)
    return path


def test_cli_sample_watermark_then_detect(capsys, tmp_path, text_run):
    run = tmp_path / "run"
    shutil.copytree(text_run, run)
    out = tmp_path / "sample.txt"
    proc = _cli(capsys, "sample", run, "--watermark", "--max-new-tokens", "200", "--seed", "3", "--out", out)
    assert proc.returncode == 0, proc.stderr
    proc = _cli(capsys, "detect", run, out)
    assert proc.returncode == 0 and "watermarked by this run (z = " in proc.stdout
    human = _write(
        tmp_path / "human.txt", "Now is the winter of our discontent made glorious summer by this sun of York."
    )
    proc = _cli(capsys, "detect", run, human, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["watermarked"] is False


def test_a_key_from_another_run_is_refused(capsys, tmp_path, text_run, small_text):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(text_run, a)
    gl.train("gpt", out=b, data=str(small_text), preset="debug", sets=["train.max_iters=2", "train.progress=false"])
    shutil.copy(b / "watermark.key", a / "watermark.key")
    text = _write(tmp_path / "t.txt", "some text to check")
    proc = _cli(capsys, "detect", a, text)
    assert proc.returncode == 2 and "belongs to another run" in proc.stderr and proc.stderr.count("\n") == 1
    with pytest.raises(gl.UserError, match="belongs to another run"):
        gl.load(a).generate("A", max_new_tokens=3, watermark=True)


@pytest.fixture(scope="module")
def mnist():
    from genloom.data.images import ImageDataConfig, load_images

    return np.asarray(load_images(ImageDataConfig(source="mnist")).images["test"][:12], dtype=np.float64)


def test_image_mark_survives_common_edits_and_stays_invisible(mnist):
    from PIL import Image

    mark = ImageWatermark(42, 28)
    halves = []
    for x in mnist:
        marked = mark.embed(x)
        assert psnr(marked, x) > 30 and np.all(marked == np.round(marked)) and 0 <= marked.min() <= marked.max() <= 255
        assert mark.detect(marked).bit_accuracy == 1.0
        small = np.asarray(Image.fromarray(marked[0].astype(np.uint8)).resize((14, 14), Image.Resampling.BICUBIC))
        halves.append(mark.detect(small).bit_accuracy)
        assert not mark.detect(x).watermarked
    assert np.mean(halves) >= 0.85 and min(halves) >= 0.65
    other = ImageWatermark(43, 28)
    assert not any(other.detect(mark.embed(x)).watermarked for x in mnist)
    with pytest.raises(gl.UserError, match="too small"):
        ImageWatermark(1, 8)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mnist-vae"
    gl.train(
        "vae",
        out=out,
        data="mnist",
        preset="debug",
        sets=["data.limit=256", "train.max_iters=2", "train.progress=false"],
    )
    return out


def test_image_samples_are_marked_and_detected_through_the_cli(capsys, tmp_path, image_run):
    grid = tmp_path / "grid.png"
    proc = _cli(capsys, "sample", image_run, "--watermark", "--n", "6", "--seed", "0", "--out", grid)
    assert proc.returncode == 0, proc.stderr
    proc = _cli(capsys, "detect", image_run, grid, "--json")
    found = json.loads(proc.stdout)
    assert found["watermarked"] and found["images"] == 6 and found["bit_accuracy"] >= 0.95
    plain = tmp_path / "plain.png"
    assert _cli(capsys, "sample", image_run, "--n", "6", "--seed", "0", "--out", plain).returncode == 0
    assert json.loads(_cli(capsys, "detect", image_run, plain, "--json").stdout)["watermarked"] is False


def test_the_server_takes_the_extension_fields(tmp_path, text_run, image_run):
    import base64

    import httpx

    from ..serve.conftest import start_server

    run = tmp_path / "text"
    shutil.copytree(text_run, run)
    live = start_server([run, image_run])
    try:
        body = {"model": "text", "prompt": "ROMEO:", "max_tokens": 200, "seed": 0, "watermark": True}
        r = httpx.post(live.url + "/v1/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        assert gl.load(run).detect(r.json()["choices"][0]["text"])["watermarked"]
        r = httpx.post(live.url + "/v1/completions", json={**body, "block_verbatim": 8}, timeout=60)
        assert r.status_code == 400 and "below the 24-byte n-grams" in r.json()["error"]["message"]
        r = httpx.post(
            live.url + "/v1/completions", json={**body, "watermark": False, "block_verbatim": 30}, timeout=60
        )
        assert r.status_code == 200
        r = httpx.post(
            live.url + "/v1/images/generations",
            json={"model": image_run.name, "n": 2, "seed": 0, "watermark": True},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        png = tmp_path / "one.png"
        png.write_bytes(base64.b64decode(r.json()["data"][0]["b64_json"]))
        assert gl.detect(image_run, png)["watermarked"]
    finally:
        live.stop()
