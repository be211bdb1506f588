"""The official `openai` client against the live server: models, completions, chat, streaming, images,
continuous batching, cancellation on disconnect, the queue bound."""

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from PIL import Image

import genloom as gl
from genloom.serve.app import COMPLETIONS

from .conftest import API_KEY

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_models_lists_every_run_by_directory_name(client, live):
    cards = {m.id: m for m in client.models.list().data}
    assert set(cards) == {"debug", "digits-gan"}
    assert cards["debug"].model_extra["kind"] == "text" and cards["debug"].model_extra["context_length"] == 32
    assert cards["digits-gan"].model_extra["labels"] == [str(i) for i in range(10)]
    assert client.models.retrieve("debug").id == "debug"
    assert httpx.get(live.url + "/health").json()["status"] == "ok"  # no key needed for the health check


def test_completion_is_the_library_completion_and_streams_to_the_same_text(client, live, trained_run):
    lm = gl.load(trained_run)
    options = {"temperature": 0.9, "top_p": 0.9, "seed": 11, "stop": ["\n\n"], "frequency_penalty": 0.3}
    r = client.completions.create(model="debug", prompt="ROMEO:", max_tokens=20, **options)
    alone = lm.complete("ROMEO:", max_new_tokens=20, **options)[0]
    assert r.choices[0].text == alone.text
    assert r.choices[0].finish_reason == ("length" if alone.finish_reason == "length" else "stop")
    assert r.usage.prompt_tokens == len(lm.prompt_ids("ROMEO:")) and r.usage.completion_tokens == len(alone.token_ids)
    live.delay[0] = 0.01  # decode slower than the client reads, so chunks are not coalesced
    try:
        chunks = list(client.completions.create(model="debug", prompt="ROMEO:", max_tokens=20, stream=True, **options))
    finally:
        live.delay[0] = 0.0
    assert len(chunks) > 2  # it really streamed, piece by piece
    assert "".join(c.choices[0].text for c in chunks) == r.choices[0].text
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason


def test_genloom_extras_logit_bias_logprobs_and_n(client, trained_run):
    lm = gl.load(trained_run)
    greedy = client.completions.create(model="debug", prompt="The ", max_tokens=12, temperature=0)
    top1 = client.completions.create(model="debug", prompt="The ", max_tokens=12, extra_body={"top_k": 1}, seed=3)
    assert top1.choices[0].text == greedy.choices[0].text == lm.generate("The ", max_new_tokens=12, temperature=0)
    z = lm.tokenizer.encode("z")[0]
    biased = client.completions.create(model="debug", prompt="The ", max_tokens=5, logit_bias={str(z): 100}, seed=0)
    assert biased.choices[0].text == "zzzzz"
    r = client.completions.create(model="debug", prompt=["The ", "A"], max_tokens=6, n=2, seed=5, logprobs=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 6 and all(len(t) == 2 for t in lp.top_logprobs) and all(v <= 0 for v in lp.token_logprobs)
    second = lm.complete("A", max_new_tokens=6, seed=6)[0]  # prompt 1, choice 1 samples with seed + 1
    assert r.choices[3].text == second.text
    reps = client.completions.create(
        model="debug", prompt="The ", max_tokens=8, seed=2, extra_body={"repetition_penalty": 5.0, "min_p": 0.05}
    )
    assert reps.choices[0].text == lm.generate("The ", max_new_tokens=8, seed=2, repetition_penalty=5.0, min_p=0.05)


def test_chat_renders_plain_role_lines_for_a_base_run_and_streams(client, trained_run):
    lm = gl.load(trained_run)
    messages = [{"role": "user", "content": "Hi"}]  # the debug run's context is 32 characters
    r = client.chat.completions.create(
        model="debug", messages=messages, max_tokens=8, seed=4, logprobs=True, top_logprobs=3
    )
    alone = lm.chat(messages, max_new_tokens=8, seed=4)
    assert r.choices[0].message.content == alone.text and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens == len(lm.prompt_ids(lm.chat_prompt(messages)))
    assert len(r.choices[0].logprobs.content[0].top_logprobs) == 3
    stream = client.chat.completions.create(
        model="debug", messages=messages, max_tokens=8, seed=4, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == alone.text
    assert chunks[-1].usage.total_tokens == r.usage.total_tokens
    # the rest of the context is the default max_tokens of a chat
    long = client.chat.completions.create(model="debug", messages=[{"role": "user", "content": "Hi"}], temperature=0)
    assert long.usage.total_tokens <= 32


def test_images_are_pngs_of_the_run_and_prompt_names_the_class(client):
    r = client.images.generate(model="digits-gan", prompt="7", n=3, extra_body={"seed": 1})
    assert len(r.data) == 3
    image = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
    assert image.format == "PNG" and image.size == (8, 8)
    again = client.images.generate(model="digits-gan", prompt="7", n=3, extra_body={"seed": 1})
    assert [d.b64_json for d in again.data] == [d.b64_json for d in r.data]  # seeded: the same images
    other = client.images.generate(model="digits-gan", prompt="3", n=3, extra_body={"seed": 1})
    assert [d.b64_json for d in other.data] != [d.b64_json for d in r.data]  # the class changes them
    with pytest.raises(openai.BadRequestError, match="not a class"):
        client.images.generate(model="digits-gan", prompt="a cat", n=1)
    with pytest.raises(openai.BadRequestError, match="image model"):
        client.completions.create(model="digits-gan", prompt="hi")


def test_concurrent_requests_are_batched_and_each_gets_its_text_alone(client, live):
    prompts = ["ROMEO:", "The ", "What", "A", "O", "To be"]  # no more than max_queue: never a 429
    alone = [
        client.completions.create(model="debug", prompt=p, max_tokens=24, seed=i, temperature=0.8).choices[0].text
        for i, p in enumerate(prompts)
    ]
    live.peak[0] = 0
    live.delay[0] = 0.005  # keep requests in flight long enough to overlap

    def one(i):
        return (
            client.completions.create(model="debug", prompt=prompts[i], max_tokens=24, seed=i, temperature=0.8)
            .choices[0]
            .text
        )

    try:
        with ThreadPoolExecutor(len(prompts)) as pool:
            together = list(pool.map(one, range(len(prompts))))
    finally:
        live.delay[0] = 0.0
    assert together == alone
    assert live.peak[0] >= 2  # rows really were decoded together (max_batch is 4)


def test_a_client_that_disconnects_stops_its_generation(live):
    scheduler = live.scheduler
    before, steps_before = scheduler.cancelled, scheduler.steps
    live.delay[0] = 0.05  # 30 tokens would take ≥ 1.5 s
    try:
        body = {"model": "debug", "prompt": "A", "max_tokens": 30, "stream": True, "seed": 0}
        with httpx.stream("POST", live.url + COMPLETIONS, json=body, headers=HEADERS, timeout=30) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # the first chunk arrived: hang up
        deadline = time.monotonic() + 10
        while scheduler.cancelled == before and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        live.delay[0] = 0.0
    assert scheduler.cancelled == before + 1
    assert scheduler.counts() == (0, 0)
    assert scheduler.steps - steps_before < 30  # it stopped before generating everything


def test_a_full_queue_answers_429_and_the_server_serves_on(client, live):
    scheduler = live.scheduler
    results = []

    def request():
        results.append(client.completions.create(model="debug", prompt="A", max_tokens=4, seed=0).choices[0].text)

    with scheduler.paused():  # nothing is admitted while paused: requests wait in the queue
        threads = [threading.Thread(target=request) for _ in range(scheduler.max_queue)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while scheduler.counts()[1] < scheduler.max_queue and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scheduler.counts() == (0, scheduler.max_queue)
        with pytest.raises(openai.RateLimitError, match="queue is full"):
            client.completions.create(model="debug", prompt="A", max_tokens=4)
    for t in threads:
        t.join(timeout=30)
    assert len(results) == scheduler.max_queue and len(set(results)) == 1  # all served, same seed same text


def test_streaming_several_choices_keeps_them_apart(client):
    whole = client.completions.create(model="debug", prompt=["The ", "A"], max_tokens=10, n=2, seed=8)
    texts = [""] * 4
    for chunk in client.completions.create(
        model="debug", prompt=["The ", "A"], max_tokens=10, n=2, seed=8, stream=True
    ):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert texts == [c.text for c in whole.choices]
    assert len(set(texts)) > 1  # different prompts and seeds: not one text copied four times


def test_a_failure_inside_the_scheduler_fails_its_requests_only(client, live):
    batcher = live.scheduler.batchers["debug"]
    real_step = batcher.step
    calls = []

    def broken_step():
        calls.append(1)
        raise RuntimeError("simulated bug")

    batcher.step = broken_step
    try:
        with pytest.raises(openai.InternalServerError, match="simulated bug"):
            client.completions.create(model="debug", prompt="A", max_tokens=4)
    finally:
        batcher.step = real_step
    assert calls and live.scheduler.counts() == (0, 0)
    r = client.completions.create(model="debug", prompt="A", max_tokens=4, seed=0)  # the next request is served
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 4


def test_streamed_logprobs_add_up_to_the_whole_ones(client):
    whole = client.completions.create(model="debug", prompt="A", max_tokens=8, seed=3, logprobs=1)
    tokens, values = [], []
    for chunk in client.completions.create(model="debug", prompt="A", max_tokens=8, seed=3, logprobs=1, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            tokens += chunk.choices[0].logprobs.tokens
            values += chunk.choices[0].logprobs.token_logprobs
    assert tokens == whole.choices[0].logprobs.tokens
    assert values == pytest.approx(whole.choices[0].logprobs.token_logprobs, abs=1e-5)
    options = {"model": "debug", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "seed": 3}
    chat = client.chat.completions.create(**options, logprobs=True)
    stream = client.chat.completions.create(**options, logprobs=True, stream=True)
    streamed = [t.token for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert streamed == [t.token for t in chat.choices[0].logprobs.content] and streamed
