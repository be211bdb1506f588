"""The habits clients bring from OpenAI's API: fields sent routinely are ignored (with a log note) while
fields that would change the answer are refused; images as URLs the server serves."""

import base64
import logging

import httpx

from .conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_routine_fields_are_ignored_with_a_note_and_answer_changing_ones_refused(live, client, caplog):
    plain = client.completions.create(model="debug", prompt="ROMEO:", max_tokens=8, seed=2)
    with caplog.at_level(logging.INFO, logger="genloom.serve"):
        r = httpx.post(
            live.url + "/v1/completions",
            headers=AUTH,
            json={
                "model": "debug",
                "prompt": "ROMEO:",
                "max_tokens": 8,
                "seed": 2,
                "store": True,
                "metadata": {"a": "b"},
            },
            timeout=60,
        )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == plain.choices[0].text  # the same answer as without them
    assert any("ignored the fields metadata, store" in m for m in caplog.messages)
    refused = httpx.post(
        live.url + "/v1/completions", headers=AUTH, json={"model": "debug", "prompt": "A", "best_of": 2}, timeout=60
    )
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "best_of"


def test_images_as_urls_are_served_without_the_key(client, live):
    b64 = client.images.generate(model="digits-gan", prompt="3", n=2, extra_body={"seed": 5})
    urls = client.images.generate(model="digits-gan", prompt="3", n=2, response_format="url", extra_body={"seed": 5})
    assert [d.b64_json for d in urls.data] == [None, None]
    for as_b64, as_url in zip(b64.data, urls.data, strict=True):
        assert as_url.url.startswith(live.url + "/files/images/")
        png = httpx.get(as_url.url, timeout=30)  # no API key: an <img> tag sends none; the name is unguessable
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content == base64.b64decode(as_b64.b64_json)  # the same seed, the same picture
    missing = httpx.get(live.url + "/files/images/nope.png", timeout=30)
    assert missing.status_code == 404 and "kept for an hour" in missing.json()["error"]["message"]
