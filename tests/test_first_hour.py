"""A new user's first hour, scripted: their own folder of code and notes, chat, LoRA on their own JSONL,
a diffusion model on 200 of their own coloured PNGs, the card's snippet, the server through the `openai`
client. Each step runs the real `genloom` command and checks what it printed, warned and produced."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def genloom(cwd: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "genloom", *argv], cwd=cwd, capture_output=True, text=True, env=ENV, input=stdin
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's files: a project of .py and .md files (and a logo), a mostly-binary folder, a JSONL of
    their own examples, and 200 coloured 16×16 PNGs of circles and squares."""
    home = tmp_path_factory.mktemp("home")
    project = home / "my_project"
    (project / "pkg").mkdir(parents=True)
    for i in range(20):
        (project / "pkg" / f"mod{i}.py").write_text(f"def double_{i}(x):\n    return 2 * x + {i}\n\n" * 3)
    for i in range(5):
        (project / f"NOTES{i}.md").write_text(f"# Notes {i}\n\nThe functions double their input and add {i}.\n")
    Image.new("RGB", (8, 8), (255, 0, 0)).save(project / "logo.png")
    scans = home / "scans"
    scans.mkdir()
    for i in range(10):
        Image.new("L", (8, 8), i * 20).save(scans / f"page{i}.png")
    (scans / "index.md").write_text("# Scanned pages\n\n" + "A list of the scanned pages, one per line.\n" * 20)
    (home / "mine.jsonl").write_text(
        "".join(json.dumps({"prompt": f"double {i}", "response": f"return 2 * {i}"}) + "\n" for i in range(40))
    )
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    for shape in ("circle", "square"):
        for i in range(100):
            image = np.full((16, 16, 3), 240, dtype=np.uint8)
            colour = rng.integers(0, 200, 3)
            inside = (
                ((yy - 8) ** 2 + (xx - 8) ** 2 < 30) if shape == "circle" else ((abs(yy - 8) < 5) & (abs(xx - 8) < 5))
            )
            image[inside] = colour
            (home / "shapes" / shape).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(home / "shapes" / shape / f"{i}.png")
    return home


def test_a_folder_of_code_is_read_whole_and_says_so(home):
    proc = genloom(  # byte fallback: chat's "User:" lines hold letters the code may not
        home,
        "train",
        "gpt",
        "--data",
        "my_project",
        "--preset",
        "debug",
        "--out",
        "runs/code",
        "--no-progress",
        "--set",
        "data.byte_fallback=true",
    )
    assert "data: my_project: read 25 of 26 files matching '**/*' (.py 20, .md 5); skipped .png 1" in proc.stderr
    assert re.search(r"25 documents \(0 duplicates removed\), [\d,]+ characters -> [\d,]+ tokens", proc.stderr)
    assert "warning" not in proc.stderr
    proc = genloom(
        home,
        "train",
        "gpt",
        "--data",
        "scans",
        "--preset",
        "debug",
        "--out",
        "runs/scans",
        "--no-progress",
        "--set",
        "model.block_size=16",
    )
    assert "warning: most files under scans were skipped (.png 10)" in proc.stderr


def test_chat_lora_and_the_cards_snippet(home):
    reply = genloom(home, "chat", "runs/code", "--max-new-tokens", "8", "--seed", "0", stdin="def\n\n")
    assert "genloom chat: a base run" in reply.stdout and reply.stdout.count("> ") >= 2
    tuned = genloom(
        home,
        "tune",
        "lora",
        "runs/code",
        "--data",
        "mine.jsonl",
        "--out",
        "runs/lora",
        "--no-progress",
        "--set",
        "train.max_iters=4",
        "--set",
        "train.eval_interval=2",
        "--set",
        "lora.r=2",
    )
    assert "done: lora, step 4" in tuned.stdout
    assert re.search(r"data: mine\.jsonl: 40 examples: \d+ train / \d+ validation", tuned.stdout)
    assert "warning: mine.jsonl: only" in tuned.stdout  # 5% of 40 examples is too few to measure
    card = (home / "runs/code/card.md").read_text()
    assert card.splitlines()[2] == "## Use this model"  # first thing after the title
    (snippet,) = re.findall(r"```python\n(.*?)```", card, re.S)
    run = subprocess.run([sys.executable, "-c", snippet], cwd=home, capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr
    assert "perplexity" in run.stdout


def test_diffusion_on_my_own_coloured_pngs(home):
    proc = genloom(
        home, "train", "diffusion", "--data", "shapes", "--preset", "debug", "--out", "runs/shapes", "--no-progress"
    )
    assert "16x16 colour (3 channel(s)), 2 classes (circle, square)" in proc.stderr
    assert "made grey" not in proc.stderr
    genloom(home, "sample", "runs/shapes", "--label", "circle", "--n", "4", "--seed", "0", "--out", "circles.png")
    with Image.open(home / "circles.png") as grid:
        assert grid.mode == "RGB"
    grey = genloom(
        home,
        "train",
        "vae",
        "--data",
        "shapes",
        "--preset",
        "debug",
        "--out",
        "runs/grey",
        "--no-progress",
        "--set",
        "data.color=grayscale",
    )
    assert "warning: shapes: colour images are being made grey" in grey.stderr
    small = genloom(
        home,
        *("train", "diffusion", "--data", "shapes", "--preset", "images-small", "--out", "runs/small", "--no-progress"),
        *("--set", "train.max_iters=2", "--set", "model.sample_steps=2"),
    )
    assert "32x32 colour (3 channel(s)), 2 classes (circle, square)" in small.stderr  # resized for the preset


def test_the_server_answers_the_openai_client(home):
    from .serve.conftest import start_server

    server = start_server([home / "runs/code"], api_key="k")
    try:
        import openai

        client = openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)
        r = client.completions.create(
            model="code", prompt="def", max_tokens=100, seed=0, extra_body={"metadata": {"user": "me"}}
        )
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 29  # clamped: 32 - 3
    finally:
        server.stop()
