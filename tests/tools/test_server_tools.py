"""Tools and structured output on the server, through the official `openai` client against a live
uvicorn server on 127.0.0.1: every call parses and validates, streamed deltas add up, bad requests are
400s naming the field."""

from __future__ import annotations

import json

import httpx
import jsonschema_rs
import pytest
from pydantic import BaseModel

from tests.serve.conftest import API_KEY

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def server(tools_server):
    return tools_server


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def check_call(call, tool) -> dict:
    assert call.type == "function" and call.function.name == tool["function"]["name"] and call.id
    args = json.loads(call.function.arguments)
    assert jsonschema_rs.validator_for(tool["function"]["parameters"]).is_valid(args), args
    return args


def test_required_tool_calls_are_valid(client):
    for seed in range(3):
        r = client.chat.completions.create(
            model="tools-bpe", messages=ASK, tools=[WEATHER, ADD], tool_choice="required", seed=seed, max_tokens=150
        )
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls
        for call in choice.message.tool_calls:
            check_call(call, WEATHER if call.function.name == "get_weather" else ADD)


def test_named_tool_choice_and_no_parallel_calls(client):
    r = client.chat.completions.create(
        model="tools-bpe",
        messages=ASK,
        tools=[WEATHER, ADD],
        tool_choice={"type": "function", "function": {"name": "add"}},
        parallel_tool_calls=False,
        seed=1,
        max_tokens=120,
        n=2,
    )
    for choice in r.choices:
        (call,) = choice.message.tool_calls
        args = check_call(call, ADD)
        assert set(args) == {"a", "b"}


def test_tool_messages_in_the_history(client):
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    r = client.chat.completions.create(
        model="tools-bpe", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=5, seed=0
    )
    assert r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.tool_calls is None


def test_streamed_tool_call_fragments_add_up(client):
    stream = client.chat.completions.create(
        model="tools-bpe", messages=ASK, tools=[WEATHER], tool_choice="required", seed=3, max_tokens=120, stream=True
    )
    calls: dict[int, dict] = {}
    reasons, fragments = [], 0
    for chunk in stream:
        choice = chunk.choices[0]
        reasons.append(choice.finish_reason)
        for d in choice.delta.tool_calls or []:
            entry = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            if d.id:
                entry["id"], entry["name"] = d.id, d.function.name
            if d.function and d.function.arguments:
                entry["arguments"] += d.function.arguments
                fragments += 1
    assert reasons[-1] == "tool_calls"
    assert calls and fragments >= 2  # the arguments arrive in pieces
    for entry in calls.values():
        assert entry["id"] and entry["name"] == "get_weather"
        args = json.loads(entry["arguments"])
        assert jsonschema_rs.validator_for(WEATHER["function"]["parameters"]).is_valid(args)


class Person(BaseModel):
    name: str
    age: int
    member: bool


def test_parse_with_a_pydantic_model(client):
    completion = client.beta.chat.completions.parse(
        model="tools-bpe", messages=[{"role": "user", "content": "Make up a person."}], response_format=Person, seed=0
    )
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person)


def test_json_object_mode_ends_in_a_json_object(client):
    for seed in range(3):
        r = client.chat.completions.create(
            model="tools-bpe", messages=ASK, response_format={"type": "json_object"}, seed=seed, max_tokens=200
        )
        assert isinstance(json.loads(r.choices[0].message.content), dict)


BAD = [
    ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools[0].function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    (
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"x": {"type": "string", "not": {}}}},
                    },
                }
            ]
        },
        "tools[0].function.parameters.properties.x.not",
    ),
    (
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"x": {"enum": list(range(10_000))}}},
                    },
                }
            ]
        },
        "tools[0].function.parameters.properties.x.enum",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}}},
        "response_format",
    ),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(a"}},
            }
        },
        "response_format.json_schema.schema.pattern",
    ),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"tool_choice": "required"}, "tool_choice"),
]


@pytest.mark.parametrize("extra,param", BAD)
def test_bad_tools_and_formats_are_400s_naming_the_field(server, extra, param):
    body = {"model": "tools-bpe", "messages": ASK, "max_tokens": 5, **extra}
    r = httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"].startswith(param.split(".")[0]) and param in error["message"] + error["param"], error
    assert "\n" not in error["message"]
