"""A live genloom server on 127.0.0.1 (uvicorn in a background thread) over a tiny text and image run."""

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import genloom as gl

API_KEY = "test-key"


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    app: Any
    server: Any
    thread: threading.Thread
    delay: list[float]  # seconds slept after every decode step (tests slow decoding down with it)
    peak: list[int]  # the most rows any decode step has run together

    @property
    def scheduler(self) -> Any:
        return self.app.state.scheduler

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: list[Path], **options: Any) -> LiveServer:
    import uvicorn

    from genloom.serve import create_app

    delay, peak, apps = [0.0], [0], []

    def on_step() -> None:
        rows = max(len(b.rows) for b in apps[0].state.scheduler.batchers.values())
        peak[0] = max(peak[0], rows)
        if delay[0]:
            time.sleep(delay[0])

    app = create_app(runs, on_step=on_step, **options)
    apps.append(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", app, server, thread, delay, peak)


@pytest.fixture(scope="session")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-conditional GAN on the bundled 8×8 digits, trained for a few steps."""
    out = tmp_path_factory.mktemp("runs") / "digits-gan"
    gl.train("gan", out=out, preset="debug", sets=["train.progress=false", "train.max_iters=4"])
    return out


@pytest.fixture(scope="session")
def live(trained_run: Path, image_run: Path) -> Iterator[LiveServer]:
    """The server every API test talks to: both runs, an API key, small batch and queue bounds."""
    server = start_server([trained_run, image_run], api_key=API_KEY, max_batch=4, max_queue=6)
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Any:
    import openai

    return openai.OpenAI(base_url=live.url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)
