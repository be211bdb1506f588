"""Fill-in-the-middle over real HTTP: `/v1/completions` with `suffix` (the `openai` client) and llama.cpp's
`/infill`, both streaming; a suffix for a run trained without FIM is a 400 naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import genloom as gl

from ..serve.conftest import LiveServer, start_server

KEY = "code-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
PREFIX, SUFFIX = "def scale(values, factor):\n    return ", "\n\n\nprint(scale([1], 2))\n"


@pytest.fixture(scope="module")
def live(fim_run: Path, plain_run: Path) -> Iterator[LiveServer]:
    server = start_server([fim_run, plain_run], api_key=KEY, max_batch=4, max_queue=8)
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Any:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"
    ]


def test_completions_suffix_is_the_library_infill(client: Any, fim_run: Path) -> None:
    lm = gl.load(fim_run)
    alone = lm.complete_infill([PREFIX], [SUFFIX], max_new_tokens=12, temperature=0.9, seed=3)[0]
    r = client.completions.create(
        model="code-fim", prompt=PREFIX, suffix=SUFFIX, max_tokens=12, temperature=0.9, seed=3
    )
    assert r.choices[0].text == alone.text
    assert r.usage.prompt_tokens == len(lm.infill_ids(PREFIX, SUFFIX, 12))
    pieces = client.completions.create(
        model="code-fim", prompt=PREFIX, suffix=SUFFIX, max_tokens=12, temperature=0.9, seed=3, stream=True
    )
    assert "".join(c.choices[0].text for c in pieces) == alone.text


def test_infill_route_answers_in_llama_cpp_shape_and_streams(live: LiveServer, fim_run: Path) -> None:
    lm = gl.load(fim_run)
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 10, "temperature": 0, "top_k": 0}
    r = httpx.post(live.url + "/infill", json={**body, "model": "code-fim"}, headers=HEADERS, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["content"] == lm.infill(PREFIX, SUFFIX, max_new_tokens=10, temperature=0)
    assert answer["stop"] is True and answer["stop_type"] in ("eos", "limit") and answer["truncated"] is False
    assert answer["tokens_evaluated"] == len(lm.infill_ids(PREFIX, SUFFIX, 10))
    # no model named: the one served model that fills in code answers
    with httpx.stream("POST", live.url + "/infill", json={**body, "stream": True}, headers=HEADERS, timeout=60) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        chunks = events(s)
    assert all(c["stop"] is False for c in chunks[:-1]) and chunks[-1]["stop"] is True
    assert "".join(c["content"] for c in chunks) == answer["content"]
    assert chunks[-1]["model"] == "code-fim"


def test_a_suffix_for_a_run_without_fim_is_400_naming_it(client: Any, live: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError, match="without fill-in-the-middle"):
        client.completions.create(model="code-plain", prompt=PREFIX, suffix=SUFFIX, max_tokens=4)
    body = {"model": "code-plain", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 4}
    r = httpx.post(live.url + "/v1/completions", json=body, headers=HEADERS, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "suffix"
    body = {"model": "code-plain", "input_prefix": PREFIX, "input_suffix": SUFFIX}
    r = httpx.post(live.url + "/infill", json=body, headers=HEADERS, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_suffix"
    plain = client.completions.create(model="code-plain", prompt=PREFIX, max_tokens=4)  # no suffix: fine
    assert plain.choices[0].finish_reason in ("length", "stop")


def test_infill_needs_the_api_key_and_a_valid_body(live: LiveServer) -> None:
    r = httpx.post(live.url + "/infill", json={"input_prefix": "x"}, timeout=60)
    assert r.status_code == 401
    r = httpx.post(live.url + "/infill", json={"input_prefix": "x", "n_predict": -5}, headers=HEADERS, timeout=60)
    assert r.status_code == 422 and "n_predict" in r.text


def test_fim_tokens_in_a_request_are_text(live: LiveServer, fim_run: Path) -> None:
    lm = gl.load(fim_run)
    body = {
        "model": "code-fim",
        "input_prefix": "s = '<fim_middle>'\n",
        "input_suffix": "<|endoftext|>",
        "n_predict": 4,
    }
    r = httpx.post(live.url + "/infill", json=body, headers=HEADERS, timeout=60)
    assert r.status_code == 200
    ids = lm.infill_ids(body["input_prefix"], body["input_suffix"], 4)
    assert r.json()["tokens_evaluated"] == len(ids) and ids.count(lm.tokenizer.fim_middle_id) == 1
