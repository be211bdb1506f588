"""Issue 13, cases 6-8: one request never breaks another; hostile HTTP gets a 4xx, never a 500.

A real uvicorn server on 127.0.0.1 (tests/serve/conftest.py) and real HTTP clients: httpx, and raw
sockets where a client must misbehave (a chunked upload, a client that hangs up)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from bench.serve import chunked_upload
from genloom.generation import GenerationConfig
from genloom.generation.continuous import ContinuousBatcher
from genloom.serve.app import COMPLETIONS, IMAGES

from ..serve.conftest import LiveServer, free_port, start_server
from .conftest import assert_clean, cli_process, digest

KEY = "fault-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(trained_run: Path, image_run: Path) -> Iterator[LiveServer]:
    live = start_server([trained_run, image_run], api_key=KEY, max_batch=8, max_queue=32)
    yield live
    live.stop()


def post(server: LiveServer, path: str, body: str | dict[str, Any], **headers: str) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    all_headers = {**AUTH, "Content-Type": "application/json", **headers}
    return httpx.post(server.url + path, content=content, headers=all_headers, timeout=60)


def completion(prompt: str = "Th", **fields: Any) -> dict[str, Any]:
    return {"model": "debug", "prompt": prompt, "max_tokens": 4, "seed": 0, **fields}


# (what, path, raw body, status, words the error message contains)
HOSTILE: list[tuple[str, str, str, int, str]] = [
    ("tiny temperature", COMPLETIONS, json.dumps(completion(temperature=1e-300)), 400, "temperature"),
    ("tiny penalty", COMPLETIONS, json.dumps(completion(repetition_penalty=1e-300)), 400, "repetition_penalty"),
    ("NaN temperature", COMPLETIONS, json.dumps(completion()).replace('"seed": 0', '"temperature": NaN'), 422, "temp"),
    ("NaN bias", COMPLETIONS, json.dumps(completion(logit_bias={"1": float("nan")})), 400, "logit_bias"),
    ("superscript id", COMPLETIONS, json.dumps(completion(logit_bias={"²": 1})), 400, "logit_bias"),
    ("Arabic-Indic id", COMPLETIONS, json.dumps(completion(logit_bias={"٣": 1})), 400, "logit_bias"),
    ("superscript class", IMAGES, json.dumps({"model": "digits-gan", "prompt": "²"}), 400, "not a class"),
    ("Arabic-Indic class", IMAGES, json.dumps({"model": "digits-gan", "prompt": "٣"}), 400, "not a class"),
]


@pytest.mark.parametrize(("what", "path", "body", "status", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hopeless_or_odd_request_gets_a_4xx_naming_it(server, what, path, body, status, words):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_json_with_the_wrong_content_type_gets_415_saying_so(server):
    r = post(server, COMPLETIONS, completion(), **{"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "Content-Type: application/json" in r.json()["error"]["message"]
    assert "'text/plain'" in r.json()["error"]["message"]


def test_a_chunked_body_over_the_limit_gets_413_without_being_read_whole(server):
    status, sent = chunked_upload(server.url, COMPLETIONS, 20_000_000, {**AUTH, "Content-Type": "application/json"})
    assert status == 413
    assert sent < 10_000_000  # the server answered long before the client was done


def test_the_api_key_is_checked_before_any_of_the_body_is_read(server):
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"POST {COMPLETIONS} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        answer = sock.recv(4096)  # no body byte was sent: only a check of the headers can answer
    assert answer.startswith(b"HTTP/1.1 401")


def test_a_non_streaming_client_that_hangs_up_cancels_its_request(server):
    scheduler = server.scheduler
    cancelled = scheduler.cancelled
    server.delay[0] = 0.2  # 28 tokens would take ~6 s
    try:
        body = json.dumps(completion(max_tokens=28)).encode()
        head = f"POST {COMPLETIONS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(head.encode() + body)
            deadline = time.monotonic() + 10
            while scheduler.counts()[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert scheduler.counts()[0] == 1  # it is decoding
        deadline = time.monotonic() + 3
        while scheduler.counts()[0] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scheduler.counts()[0] == 0 and scheduler.cancelled == cancelled + 1
    finally:
        server.delay[0] = 0.0


def stream_text(server: LiveServer, seed: int) -> tuple[str, bool]:
    """An innocent streaming completion: its text and whether it ended with [DONE]."""
    body = completion(prompt="The ", max_tokens=20, seed=seed, stream=True, temperature=0.9)
    text, done = "", False
    headers = {**AUTH, "Content-Type": "application/json"}
    with httpx.stream("POST", server.url + COMPLETIONS, json=body, headers=headers, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                text += chunk["choices"][0]["text"]
    return text, done


def hostile(server: LiveServer, i: int) -> int:
    """One of the cases above, in turn; returns the status it got."""
    kind = i % (len(HOSTILE) + 3)
    if kind < len(HOSTILE):
        _, path, body, _, _ = HOSTILE[kind]
        return post(server, path, body).status_code
    if kind == len(HOSTILE):
        return chunked_upload(server.url, COMPLETIONS, 5_000_000, AUTH)[0]
    if kind == len(HOSTILE) + 1:
        return post(server, COMPLETIONS, completion(), **{"Content-Type": "text/plain"}).status_code
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:  # hangs up mid-way
        body = json.dumps(completion(max_tokens=20)).encode()
        sock.sendall(
            f"POST {COMPLETIONS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(0.1)
    return 499


def test_eight_streams_finish_unharmed_while_hostile_requests_arrive(server):
    alone = [stream_text(server, seed) for seed in range(8)]
    assert all(done for _, done in alone)
    server.delay[0] = 0.02  # decoding slow enough for the hostile requests to land mid-stream
    statuses: list[int] = []
    stop = threading.Event()

    def attack() -> None:
        i = 0
        while not stop.is_set():
            statuses.append(hostile(server, i))
            i += 1

    try:
        with ThreadPoolExecutor(10) as pool:
            attackers = [pool.submit(attack) for _ in range(2)]
            together = list(pool.map(lambda seed: stream_text(server, seed), range(8)))
            stop.set()
            for a in attackers:
                a.result()
    finally:
        server.delay[0] = 0.0
    assert together == alone  # every innocent stream: the same text, and [DONE]
    assert len(statuses) >= len(HOSTILE) and all(400 <= s < 500 for s in statuses), statuses
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_a_row_whose_sampling_fails_leaves_the_batch_alone(trained_run):
    import genloom as gl

    lm = gl.load(trained_run)
    prompt = lm.prompt_ids("The ")

    def decode(rows: list[GenerationConfig]) -> list[Any]:
        batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=4)
        added = [batcher.add(prompt, cfg) for cfg in rows]
        while batcher.rows:
            batcher.step()
        return added

    good = GenerationConfig(max_new_tokens=10, temperature=0.9, seed=3)
    hopeless = GenerationConfig(max_new_tokens=10, temperature=0.9, seed=4)
    hopeless.temperature = 1e-300  # past validation, as a bug or a new option might let through
    torch.manual_seed(0)
    alone = decode([good])[0]
    a, b = decode([GenerationConfig(max_new_tokens=10, temperature=0.9, seed=3), hopeless])
    assert b.finish_reason == "error" and b.error is not None and "sampling failed" in b.error
    assert a.finish_reason == alone.finish_reason and a.ids == alone.ids


def test_an_empty_api_key_is_refused(trained_run):
    before = digest(trained_run)
    outcome = cli_process("serve", str(trained_run), "--api-key", "", "--port", str(free_port()), timeout=60)
    assert_clean(outcome, 2, "--api-key", "empty")
    assert digest(trained_run) == before


def test_a_port_in_use_prints_one_error_and_no_serving_line(trained_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = cli_process("serve", str(trained_run), "--port", str(port), timeout=60)
    assert_clean(outcome, 2, f"--port {port}", "choose another port")
    assert "genloom serve:" not in outcome.output and "http://" not in outcome.output
