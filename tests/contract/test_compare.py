"""`genloom compare`: same data, same budget, same metrics; a report that is the same when run again,
renders offline, survives interruption; and one clear line for every bad input."""

import json
import shutil

import pytest

import genloom as gl

from ..test_cli import assert_user_error, digest, run_cli

IMAGES = ["--data", "digits", "--families", "vae,gan", "--preset", "debug", "--budget", "20steps", "--rounds", "1"]


@pytest.fixture(scope="module")
def image_compare(tmp_path_factory):
    """Two image families on the 8×8 digits for 20 steps each."""
    out = tmp_path_factory.mktemp("cmp") / "digits"
    report = gl.compare(out, data="digits", families=["vae", "gan"], preset="debug", budget="20steps", rounds=1)
    return out, report


def test_the_report_ranks_and_marks_the_best(image_compare):
    out, report = image_compare
    assert set(report["runs"]) == {"vae", "gan"} and report["headline"] == "fid"
    fids = {n: r["metrics"]["fid"] for n, r in report["runs"].items()}
    assert report["ranking"] == sorted(fids, key=fids.get)
    assert report["best"]["fid"] == [report["ranking"][0]]
    assert report["columns"]["fid"] == "lower" and report["columns"]["speed"] == "higher"
    for name, row in report["runs"].items():
        assert row["steps"] == 20 and row["speed"] > 0 and row["parameters"] > 0 and row["peak_rss_mb"] > 0
        assert gl.load(out / name).config.family == name  # every model is a normal run directory
        assert (out / row["preview"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    faster = max(report["runs"], key=lambda n: report["runs"][n]["speed"])
    assert any(faster in line and "fastest to sample" in line for line in report["summary"])
    assert json.loads((out / "report.json").read_text())["ranking"] == report["ranking"]


def test_the_same_compare_twice_gives_the_same_table(image_compare, tmp_path):
    _, first = image_compare
    second = gl.compare(tmp_path / "again", data="digits", families=["vae", "gan"], preset="debug", budget="20steps")
    for name, row in first["runs"].items():
        for metric, value in row["metrics"].items():
            if metric in first["columns"]:  # quality metrics within 5% relative
                assert second["runs"][name]["metrics"][metric] == pytest.approx(value, rel=0.05), (name, metric)
    assert second["ranking"] == first["ranking"]


def test_the_page_renders_offline_in_chromium(image_compare, tmp_path):
    from playwright.sync_api import sync_playwright

    out, report = image_compare
    chromium = shutil.which("chromium")
    assert chromium, "the report test needs Debian's chromium (make test installs it)"
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(offline=True)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "report.html").as_uri())
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        rows = page.locator("#results tbody tr").all_inner_texts()
        loaded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        best = page.locator("td.best").count()
        browser.close()
    assert [r.split()[0] for r in rows] == report["ranking"]
    assert loaded == [True] * 3  # two sample grids and the learning curves
    assert best >= len(report["columns"])  # each column marks its best
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_an_interrupted_compare_resumes_without_retraining(tmp_path):
    out = tmp_path / "cmp"
    seen = []

    def stop_at_the_second_training(line: str) -> None:
        seen.append(line)
        if line.startswith("compare: training gan"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gl.compare(
            out,
            data="digits",
            families=["vae", "gan"],
            preset="debug",
            budget="20steps",
            log=stop_at_the_second_training,
        )
    vae_weights = (out / "vae" / "model.safetensors").read_bytes()
    lines = []
    report = gl.compare(
        out, data="digits", families=["vae", "gan"], preset="debug", budget="20steps", resume=True, log=lines.append
    )
    assert not any(line.startswith("compare: training vae") for line in lines)  # finished: not retrained
    assert any(line.startswith("compare: training gan") for line in lines)
    assert (out / "vae" / "model.safetensors").read_bytes() == vae_weights
    assert set(report["runs"]) == {"vae", "gan"}


def test_a_wall_clock_budget_is_kept(tmp_path):
    report = gl.compare(
        tmp_path / "t",
        data="digits",
        families=["gan"],
        preset="debug",
        budget="4s",
        sets=["train.max_iters=100000"],
        rounds=1,
    )
    assert report["runs"]["gan"]["train_seconds"] == pytest.approx(4.0, rel=0.05)


def test_configurations_of_one_family_on_text(tmp_path, small_text):
    report = gl.compare(
        tmp_path / "text",
        data=str(small_text),
        runs=["gpt:preset=debug", "gpt:preset=debug,model.pos_encoding=alibi"],
        budget="10steps",
        rounds=1,
    )
    assert list(report["runs"]) == ["gpt-1", "gpt-2"] and report["headline"] == "val_loss"
    assert report["runs"]["gpt-2"]["label"] == "gpt (preset=debug, model.pos_encoding=alibi)"
    assert gl.load(tmp_path / "text" / "gpt-2").model.config.pos_encoding == "alibi"
    assert (
        report["runs"]["gpt-1"]["preview_type"] == "text/plain" and report["runs"]["gpt-1"]["speed_unit"] == "tokens/s"
    )


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--families", "vae,nope"], ["unknown family 'nope'"]),
        (["--families", "vae,gpt"], ["must share one modality", "gpt (text)"]),
        (["--families", "gpt", "--preset", "debug"], ["gpt cannot train on --data digits"]),
        (["--families", "vae", "--budget", "10x"], ["--budget '10x'", "90s, 5m or 1h"]),
        (["--budget", "2m"], ["give --families"]),
        (["--runs", "gpt:debug"], ["expected FAMILY:key=value"]),
    ],
)
def test_bad_input_gets_one_line(capsys, tmp_path, argv, fragments):
    code, _, err = run_cli(capsys, "compare", "--data", "digits", "--out", str(tmp_path / "c"), *argv)
    assert_user_error(code, err, *fragments)
    assert not (tmp_path / "c").exists()  # nothing was written


def test_an_existing_compare_or_folder_is_never_overwritten(capsys, tmp_path, image_compare):
    out, _ = image_compare
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = digest(copy)
    code, _, err = run_cli(capsys, "compare", *IMAGES, "--out", str(copy))
    assert_user_error(code, err, "already holds a compare", "--overwrite")
    code, _, err = run_cli(capsys, "compare", *IMAGES, "--budget", "30steps", "--out", str(copy), "--resume")
    assert_user_error(code, err, "differ from the compare there")
    assert digest(copy) == before

    site = tmp_path / "site"
    (site / "content").mkdir(parents=True)
    (site / "config.toml").write_text("title = 'my blog'\n")
    code, _, err = run_cli(capsys, "compare", *IMAGES, "--out", str(site), "--overwrite")
    assert_user_error(code, err, "not a genloom compare")
    assert (site / "config.toml").exists()

    shutil.rmtree(copy / "gan")  # a run deleted by hand
    code, _, err = run_cli(capsys, "compare", *IMAGES, "--out", str(copy), "--resume")
    assert_user_error(code, err, "gan is gone", "--overwrite")
