"""The family contract holds: a family of a modality genloom has never seen ("points", tests/contract/
points.py) trains, samples, evaluates, serves and compares through the CLI, the API and the server,
added by two rows in a temporary registry and no edit anywhere else."""

import base64
import json

import httpx
import pytest

import genloom as gl
from genloom.cli import main
from genloom.models import FAMILIES
from genloom.serve.app import COMPLETIONS, MODELS, SAMPLES

from ..serve.conftest import start_server
from .points import POINTS_FAMILY, POINTS_MODALITY


@pytest.fixture
def points_registered(monkeypatch):
    """The temporary registry: the family row and the modality row, removed after the test."""
    monkeypatch.setitem(FAMILIES, "points", POINTS_FAMILY)
    monkeypatch.setitem(gl.MODALITIES, "points", POINTS_MODALITY)


def test_points_through_the_cli_api_and_server(points_registered, tmp_path, capsys):
    run = tmp_path / "ring"
    # CLI: train, sample, eval, families
    assert main(["train", "points", "--data", "ring", "--preset", "debug", "--out", str(run), "--no-progress"]) == 0
    assert (run / "model.safetensors").exists() and (run / "card.md").exists()
    assert main(["sample", str(run), "--n", "50", "--seed", "3", "--out", str(tmp_path / "pts.csv")]) == 0
    lines = (tmp_path / "pts.csv").read_text().splitlines()
    assert lines[0] == "x,y" and len(lines) == 51
    radii = [float(x) ** 2 + float(y) ** 2 for x, y in (row.split(",") for row in lines[1:])]
    assert sum(1.0 < r**0.5 < 3.0 for r in radii) >= 40  # the learned mixture sits on the ring of radius 2
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert "energy_distance" in capsys.readouterr().out
    assert main(["families"]) == 0
    listing = capsys.readouterr().out
    assert "2-D point clouds (a test modality) — docs/architecture.md" in listing and "  points " in listing

    # API: the handle, sampling, metrics with directions, resume
    handle = gl.load(run)
    assert handle.model.means.shape == (8, 2)
    metrics = gl.evaluate(run)
    assert metrics.directions == {"test_nll": "lower", "energy_distance": "lower"}
    # better than the best single Gaussian of the ring (std sqrt(2) per axis: log(2 pi e 2) = 3.53 nats)
    assert metrics["energy_distance"] < 0.2 and metrics["test_nll"] < 3.0
    result = gl.sample(run, tmp_path / "api.csv", n=50, seed=3)  # the CLI's draw, through the API
    assert result.count == 50 and (tmp_path / "api.csv").read_text().splitlines() == lines
    gl.train("points", out=run, resume=True, sets=["train.max_iters=80", "train.progress=false"])
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 80

    # server: listed with its modality's kind, sampled through the shared route
    server = start_server([run])
    try:
        models = httpx.get(server.url + MODELS).json()["data"]
        assert models == [
            {
                "id": "ring",
                "object": "model",
                "created": models[0]["created"],
                "owned_by": "genloom",
                "kind": "points",
                "family": "points",
                "context_length": None,
                "labels": None,
            }
        ]
        r = httpx.post(server.url + SAMPLES, json={"model": "ring", "n": 50, "seed": 3}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["media_type"] == "text/csv" and body["count"] == 50
        gl.sample(run, tmp_path / "after.csv", n=50, seed=3)  # the same draw through the API
        assert base64.b64decode(body["b64"]).decode() == (tmp_path / "after.csv").read_text()
        wrong = httpx.post(server.url + COMPLETIONS, json={"model": "ring", "prompt": "A"}, timeout=30)
        assert wrong.status_code == 404  # no text model is served, so the text routes do not exist
        unknown = httpx.post(server.url + SAMPLES, json={"model": "nope"}, timeout=30)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    finally:
        server.stop()
