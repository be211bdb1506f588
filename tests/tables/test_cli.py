"""Table runs end to end through the CLI: train a copula on a user CSV, sample CSV and Parquet with
`--where`, evaluate (report.html, card), and bad flags refused in one line with exit 2, leaving the
existing run as it was."""

import json

import pandas as pd
import pytest

import genloom as gl
from genloom.cli import main


@pytest.fixture
def copula_run(tmp_path, table_csv):
    run = tmp_path / "run"
    with pytest.warns(UserWarning):
        code = main(["train", "copula", "--data", str(table_csv), "--preset", "debug", "--out", str(run)])
    assert code == 0
    return run


def test_train_sample_eval(copula_run, tmp_path, capsys):
    run = copula_run
    assert {"config.toml", "model.safetensors", "table.json", "summary.json", "card.md"} <= {
        p.name for p in run.iterdir()
    }
    assert main(["sample", str(run), "--n", "200", "--seed", "0", "--out", str(tmp_path / "s.csv")]) == 0
    rows = pd.read_csv(tmp_path / "s.csv")
    assert len(rows) == 200 and list(rows.columns)[:3] == ["customer_id", "group", "income"]
    assert main(["sample", str(run), "--n", "50", "--where", "group=south", "--out", str(tmp_path / "s.parquet")]) == 0
    south = pd.read_parquet(tmp_path / "s.parquet")
    assert len(south) == 50 and (south["group"] == "south").all()
    assert (
        main(["sample", str(run), "--n", "20", "--where", "label=1,member=True", "--out", str(tmp_path / "b.csv")]) == 0
    )
    both = pd.read_csv(tmp_path / "b.csv")
    assert (both["label"] == 1).all() and both["member"].all()
    # the same seed, the same rows (API and CLI)
    gl.sample(run, tmp_path / "api.csv", n=200, seed=0)
    assert (tmp_path / "api.csv").read_text() == (tmp_path / "s.csv").read_text()
    assert len(gl.load(run).sample(7, seed=1)) == 7
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    line = capsys.readouterr().out
    assert "quality" in line and "TSTR F1" in line and "exact copies" in line
    summary = json.loads((run / "summary.json").read_text())["evaluation"]
    assert 0.7 < summary["quality"] <= 1 and summary["exact_copies"] == 0.0
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "correlation" in page
    assert "## Evaluation" in (run / "card.md").read_text()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("colour=red", "no column 'colour'"),
        ("group=west", "'west' is not a value of 'group'"),
        ("income=3", "conditions take"),
    ],
)
def test_bad_where_is_one_line(copula_run, tmp_path, capsys, where, message):
    capsys.readouterr()
    assert main(["sample", str(copula_run), "--where", where, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "x.csv").exists()


def test_nothing_of_an_existing_run_is_overwritten(copula_run, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in copula_run.iterdir() if p.is_file()}
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    for argv in (
        ["train", "copula", "--data", str(bad), "--out", str(copula_run), "--overwrite"],
        ["train", "copula", "--data", "wine", "--out", str(copula_run)],
    ):
        capsys.readouterr()
        assert main(argv) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in copula_run.iterdir() if p.is_file()} == before


def test_overwrite_replaces_an_evaluated_table_run(copula_run, table_csv, capsys):
    """table.json and report.html are a table run's own files: --overwrite may replace them."""
    assert main(["eval", str(copula_run)]) == 0 and (copula_run / "report.html").exists()
    (copula_run / "notes.txt").write_text("mine")
    argv = ["train", "copula", "--data", str(table_csv), "--preset", "debug", "--out", str(copula_run), "--overwrite"]
    capsys.readouterr()
    assert main(argv) == 2 and "notes.txt" in capsys.readouterr().err  # the user's file is never deleted
    (copula_run / "notes.txt").unlink()
    with pytest.warns(UserWarning):
        assert main(argv) == 0
    assert (copula_run / "table.json").exists() and not (copula_run / "report.html").exists()


def test_served_through_the_shared_samples_route(copula_run):
    """A table run needs no route of its own: POST /v1/samples returns its rows as CSV, options included."""
    import base64
    import io

    import httpx

    from ..serve.conftest import start_server

    server = start_server([copula_run])
    try:
        r = httpx.post(
            server.url + "/v1/samples",
            json={"model": "run", "n": 40, "seed": 1, "options": {"where": "group=east"}},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["media_type"] == "text/csv" and body["count"] == 40
        rows = pd.read_csv(io.StringIO(base64.b64decode(body["b64"]).decode()))
        assert len(rows) == 40 and set(rows["group"]) == {"east"}
        bad = httpx.post(server.url + "/v1/samples", json={"model": "run", "options": {"where": "nope=1"}}, timeout=60)
        assert bad.status_code == 400 and "no column 'nope'" in bad.json()["error"]["message"]
    finally:
        server.stop()


def test_reject_copies_redraws_rows_equal_to_a_training_row(tmp_path):
    """On a table whose columns take few values, faithful samples repeat training rows; with
    data.reject_copies sampling redraws them, so no synthetic row equals a training row."""
    from genloom.evaluate.tables import row_keys

    from .conftest import mixed_table

    path = tmp_path / "few.csv"
    mixed_table(400)[["group", "age", "member", "label"]].to_csv(path, index=False)
    for reject in (False, True):
        run = tmp_path / f"run-{reject}"
        gl.train("copula", out=run, data=str(path), sets=[f"data.reject_copies={reject}"])
        handle = gl.load(run)
        train = handle.training_keys()
        rows = handle.sample(500, seed=0)
        copies = sum(k in train for k in row_keys(rows, handle.schema))
        assert (copies == 0) if reject else (copies > 50)
