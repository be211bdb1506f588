"""Every client mistake gets a 4xx with OpenAI's error body naming the field, and the server serves on."""

import httpx
import pytest

from genloom.serve.app import CHAT_COMPLETIONS, COMPLETIONS, IMAGES, MODELS, V1

from .conftest import API_KEY

HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
OK = '{"model": "debug", "prompt": "A", "max_tokens": 3, "seed": 0}'

# (path, raw body, status, param the error names (None: none), words the message contains)
CASES = [
    (COMPLETIONS, '{"model": "debug", "prompt": "A"', 400, None, "not valid JSON"),
    (COMPLETIONS, "[1, 2]", 422, None, "valid dictionary"),
    (COMPLETIONS, '{"prompt": "A"}', 422, "model", "required"),
    (COMPLETIONS, '{"model": "debug"}', 422, "prompt", "required"),
    (COMPLETIONS, '{"model": "debug", "prompt": 5}', 422, "prompt", "string"),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "temperature": "hot"}', 422, "temperature", "number"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "temperature": 3}',
        422,
        "temperature",
        "less than or equal to 2",
    ),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "top_p": 0}', 422, "top_p", "greater than 0"),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "n": 0}', 422, "n", "greater than or equal to 1"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "max_tokens": -1}',
        422,
        "max_tokens",
        "greater than or equal",
    ),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "top_k": 0}', 422, "top_k", "greater than or equal to 1"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "logprobs": 9}',
        422,
        "logprobs",
        "less than or equal to 5",
    ),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "stop": ["a", "b", "c", "d", "e"]}',
        422,
        "stop",
        "at most 4",
    ),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "stop": ""}', 400, "stop", "empty stop string"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "presence_penalty": 2.5}',
        422,
        "presence_penalty",
        "less than",
    ),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "logit_bias": {"x": 1}}', 400, "logit_bias", "token ids"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "logit_bias": {"99999": 1}}',
        400,
        "logit_bias",
        "not in the vocabulary",
    ),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "A", "logit_bias": {"3": 500}}',
        400,
        "logit_bias",
        "[-100, 100]",
    ),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "best_of": 2}', 422, "best_of", "Extra inputs"),
    (COMPLETIONS, '{"model": "debug", "prompt": "A", "echo": true}', 400, "echo", "not supported"),
    (COMPLETIONS, '{"model": "debug", "prompt": []}', 400, "prompt", "non-empty"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": ["A", "B"], "n": 4, "max_tokens": 2}',
        400,
        "n",
        "more than this server queues",
    ),
    (COMPLETIONS, '{"model": "gpt-4", "prompt": "A"}', 404, "model", "does not exist"),
    (
        COMPLETIONS,
        '{"model": "debug", "prompt": "' + "a" * 40 + '"}',
        400,
        "prompt",
        "more than the model's context",
    ),
    (COMPLETIONS, '{"model": "debug", "prompt": "' + "a" * 32 + '"}', 400, "prompt", "leaving none"),  # all 32
    (COMPLETIONS, '{"model": "debug", "prompt": "\\u2603"}', 400, "prompt", "not in the tokenizer"),
    (COMPLETIONS, '{"model": "digits-gan", "prompt": "A"}', 400, "model", "image model"),
    (CHAT_COMPLETIONS, '{"model": "debug", "messages": []}', 422, "messages", "at least 1"),
    (
        CHAT_COMPLETIONS,
        '{"model": "debug", "messages": [{"role": "robot", "content": "hi"}]}',
        422,
        "messages.0.role",
        "Input should be",
    ),
    (
        CHAT_COMPLETIONS,
        '{"model": "debug", "messages": [{"role": "user"}]}',
        422,
        "messages.0.content",
        "required",
    ),
    (
        CHAT_COMPLETIONS,
        '{"model": "debug", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
        400,
        "messages.0.content",
        "type 'text'",
    ),
    (
        CHAT_COMPLETIONS,
        '{"model": "debug", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}',
        422,
        "max_tokens",
        "greater than or equal to 1",
    ),
    (
        CHAT_COMPLETIONS,
        '{"model": "debug", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}',
        400,
        "top_logprobs",
        "logprobs",
    ),
    (
        CHAT_COMPLETIONS,
        '{"model": "debug", "messages": [{"role": "user", "content": "hello there, my friend"}]}',
        400,
        "messages",
        "context",
    ),
    (
        IMAGES,
        '{"model": "digits-gan", "prompt": "7", "n": 17}',
        422,
        "n",
        "less than or equal to 16",
    ),
    (IMAGES, '{"model": "digits-gan", "prompt": "7", "size": "1024x1024"}', 400, "size", "8x8"),
    (
        IMAGES,
        '{"model": "digits-gan", "prompt": "7", "response_format": "jpeg"}',
        422,
        "response_format",
        "b64_json",
    ),
    (IMAGES, '{"model": "digits-gan", "prompt": "dog"}', 400, "prompt", "not a class"),
    (IMAGES, '{"model": "debug", "prompt": "7"}', 400, "model", "text model"),
    (IMAGES, '{"model": "nope", "prompt": "7"}', 404, "model", "does not exist"),
    (IMAGES, '{"model": "digits-gan", "steps": 10}', 400, "steps", "diffusion runs"),
    (
        IMAGES,
        '{"model": "digits-gan", "temperature": 0.5}',
        400,
        "temperature",
        "flow and pixelcnn",
    ),
]


def check_still_serving(url):
    r = httpx.post(url + COMPLETIONS, content=OK, headers=HEADERS, timeout=30)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("path,body,status,param,words", CASES)
def test_bad_requests_get_openai_error_bodies(live, path, body, status, param, words):
    r = httpx.post(live.url + path, content=body, headers=HEADERS, timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" if status in (400, 422) else error["type"] == "not_found_error"
    assert error["param"] == param
    assert words in error["message"]
    check_still_serving(live.url)


def test_streaming_requests_fail_before_the_stream_starts(live):
    body = '{"model": "debug", "prompt": "A", "logit_bias": {"\u00b2": 1}, "stream": true}'
    r = httpx.post(live.url + COMPLETIONS, content=body, headers=HEADERS, timeout=30)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["param"] == "logit_bias"


def test_max_tokens_beyond_the_context_are_clamped_as_generate_does(live):
    body = '{"model": "debug", "prompt": "A", "max_tokens": 40, "seed": 0}'  # the context is 32 tokens
    r = httpx.post(live.url + COMPLETIONS, content=body, headers=HEADERS, timeout=60)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert r.json()["usage"]["completion_tokens"] == 31 and choice["finish_reason"] == "length"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}])
def test_a_missing_or_wrong_api_key_is_401(live, headers):
    for method, path in (("GET", MODELS), ("POST", COMPLETIONS), ("POST", CHAT_COMPLETIONS)):
        r = httpx.request(method, live.url + path, content=OK, headers={"Content-Type": "application/json", **headers})
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error" and r.json()["error"]["code"] == "invalid_api_key"
    check_still_serving(live.url)


def test_unknown_paths_methods_and_oversized_bodies(live):
    r = httpx.get(live.url + V1 + "/nothing", headers=HEADERS)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = httpx.get(live.url + COMPLETIONS, headers=HEADERS)
    assert r.status_code == 405 and "error" in r.json()
    big = '{"model": "debug", "prompt": "' + "a" * 1_100_000 + '"}'
    r = httpx.post(live.url + COMPLETIONS, content=big, headers=HEADERS, timeout=30)
    assert r.status_code == 413 and "larger than" in r.json()["error"]["message"]
    check_still_serving(live.url)


def test_serve_refuses_bad_runs_with_one_line(trained_run, tmp_path, capsys):
    from genloom.cli import main

    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert main(["serve", str(trained_run), str(trained_run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("genloom: error: ") for line in err)
    assert "two runs are named 'debug'" in err[1]
