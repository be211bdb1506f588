"""gl.Agent: schemas from signatures, the loop's stops, tool failures fed back, built-in tools."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Literal

import pytest

import genloom as gl
from genloom.agents import calculator, current_datetime, file_reader, function_tool
from genloom.errors import UserError
from genloom.generation.tools import CALL_CLOSE, CALL_OPEN


class Scripted:
    """A model that answers with the next scripted text (calls as the model writes them)."""

    def __init__(self, *turns: str) -> None:
        self.turns = list(turns)
        self.seen: list[list[dict]] = []

    def respond(self, messages, tools, cfg, choice="auto"):
        self.seen.append([dict(m) for m in messages])
        return self.turns.pop(0) if self.turns else "done"


def call(name: str, **args) -> str:
    return f"{CALL_OPEN}{json.dumps([{'name': name, 'arguments': args}])}{CALL_CLOSE}"


def weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: list[int] | None = None) -> dict:
    """The forecast for a city.

    Args:
        city: where, e.g. "Paris".
        unit: degrees in this unit.
        days: which days ahead (0 is today).
    """
    return {"city": city, "unit": unit, "temperature": 21}


def test_schema_from_signature_hints_and_docstring():
    tool = function_tool(weather).tool
    assert tool.name == "weather" and tool.description == "The forecast for a city."
    props = tool.parameters["properties"]
    assert props["city"] == {"type": "string", "description": 'where, e.g. "Paris".'}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert props["days"]["anyOf"] == [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]
    assert tool.parameters["required"] == ["city"] and tool.parameters["additionalProperties"] is False


@pytest.mark.parametrize(
    "function,message",
    [
        (lambda *args: 0, "name"),
        (eval("lambda: 0"), "name"),
    ],
)
def test_functions_that_cannot_be_tools(function, message):
    with pytest.raises(UserError, match=message):
        function_tool(function)


def test_unannotated_and_variadic_parameters_are_refused():
    def f(x):
        return x

    def g(**kw: int) -> int:
        return 0

    with pytest.raises(UserError, match="parameter x: needs a type annotation"):
        function_tool(f)
    with pytest.raises(UserError, match="kwargs"):
        function_tool(g)


def test_call_execute_observe_answer():
    model = Scripted(call("weather", city="Paris"), "It is 21 degrees in Paris.")
    result = gl.Agent(model, tools=[weather]).run("Weather in Paris?")
    assert result.stop_reason == "answer" and result.answer == "It is 21 degrees in Paris."
    (step, _last) = result.steps
    assert step.calls[0]["name"] == "weather" and json.loads(step.calls[0]["result"])["temperature"] == 21
    tool_message = model.seen[1][-1]
    assert tool_message["role"] == "tool" and "21" in tool_message["content"]


def test_invalid_arguments_are_not_run_and_the_schema_goes_back():
    ran = []

    def add(a: int, b: int) -> int:
        """Add."""
        ran.append((a, b))
        return a + b

    model = Scripted(call("add", a="one", b=2), call("add", a=1, b=2), "3")
    result = gl.Agent(model, tools=[add]).run("1+2")
    assert ran == [(1, 2)]  # the bad call never ran, and was not coerced to {}
    error = result.steps[0].calls[0]["error"]
    assert "invalid arguments for add" in error and '"required": ["a", "b"]' in error
    assert result.answer == "3"


def test_a_raising_tool_is_fed_back_with_its_schema():
    def boom(x: int) -> int:
        """Fails."""
        raise RuntimeError("the database is down")

    result = gl.Agent(Scripted(call("boom", x=1), "sorry"), tools=[boom]).run("go")
    error = result.steps[0].calls[0]["error"]
    assert "RuntimeError: the database is down" in error and '"x": {"type": "integer"}' in error
    assert result.stop_reason == "answer"


def test_a_hanging_tool_times_out_and_the_loop_goes_on():
    def hang(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return "woke"

    agent = gl.Agent(Scripted(call("hang", seconds=30), "gave up"), tools=[hang], tool_timeout=0.3)
    t0 = time.monotonic()
    result = agent.run("wait")
    assert time.monotonic() - t0 < 5
    assert "did not finish within 0.3 s" in result.steps[0].calls[0]["error"] and result.answer == "gave up"


def test_non_json_results_do_not_crash():
    def handle(x: int) -> object:
        """Returns an object."""
        return {"when": dt.date(2024, 1, 2), "obj": object()}

    result = gl.Agent(Scripted(call("handle", x=1), "ok"), tools=[handle]).run("go")
    assert "2024-01-02" in result.steps[0].calls[0]["result"]


def test_repeated_identical_call_stops_the_loop():
    model = Scripted(call("weather", city="Rome"), call("weather", city="Rome"), "never reached")
    result = gl.Agent(model, tools=[weather]).run("go")
    assert result.stop_reason == "repeated_call" and result.answer is None and len(result.steps) == 2


def test_max_steps_and_time_budget():
    model = Scripted(*(call("weather", city=f"c{i}") for i in range(10)))
    result = gl.Agent(model, tools=[weather], max_steps=3).run("go")
    assert result.stop_reason == "max_steps" and len(result.steps) == 3

    def slow(x: int) -> int:
        """Slow."""
        time.sleep(0.3)
        return x

    model = Scripted(*(call("slow", x=i) for i in range(10)))
    result = gl.Agent(model, tools=[slow], time_budget=0.5, max_steps=10).run("go")
    assert result.stop_reason == "time_budget" and len(result.steps) < 10


def test_calculator_is_safe_and_bounded():
    assert calculator("2 * (3 + 4) ** 2 / sqrt(16)") == 24.5
    assert calculator("factorial(5) - 10 // 3") == 117
    for bad in ("__import__('os').system('true')", "9**9**9", "factorial(10**6)", "open('x')", "1/0", "(1).__class__"):
        with pytest.raises(ValueError):
            calculator(bad)


def test_datetime_tool():
    now = dt.datetime.fromisoformat(current_datetime("UTC"))
    assert abs((now - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 5
    with pytest.raises(ValueError, match="unknown time zone"):
        current_datetime("Mars/Olympus")


def test_file_reading_stays_in_its_folder(tmp_path: Path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", allowed / "link.txt")
    read = file_reader(allowed)
    assert read("notes.txt") == "hello"
    for escape in ("../secret.txt", str(tmp_path / "secret.txt"), "link.txt", "sub/../../secret.txt"):
        with pytest.raises(ValueError):
            read(escape)


def test_agent_over_genloom_server(tools_server):
    """The model is an OpenAI-compatible endpoint: genloom's own server (its calls come back as tool_calls)."""
    from tests.serve.conftest import API_KEY

    agent = gl.Agent(tools_server.url + "/v1", tools=[calculator, weather], api_key=API_KEY, max_steps=3,
                     max_new_tokens=80, temperature=1.0, seed=2, first_call="required")  # fmt: skip
    result = agent.run("What is 2+2?")
    assert result.stop_reason in ("answer", "max_steps", "repeated_call") and result.steps
    assert any(step.calls for step in result.steps)  # the server's tool_calls reached the loop
    for step in result.steps:
        for c in step.calls:
            assert c["name"] in ("calculator", "weather")


def test_an_endpoint_that_refuses_is_one_line_naming_the_route(tools_server):
    """The one client of OpenAI-compatible endpoints (agents, grounded answers): a wrong key, an unknown
    route and a closed port are each a UserError naming the route, never a traceback."""
    from genloom.endpoint import Endpoint
    from tests.serve.conftest import API_KEY

    base = tools_server.url + "/v1"
    assert Endpoint(base, API_KEY).first_model()  # the server lists its model
    with pytest.raises(UserError, match=r"/v1/models: the endpoint answered HTTP 401"):
        Endpoint(base, "wrong-key").first_model()
    with pytest.raises(UserError, match=r"/v1/nowhere: the endpoint answered HTTP 404"):
        Endpoint(base, API_KEY).call("/nowhere")
    with pytest.raises(UserError, match=r"--model http://127.0.0.1:9/v1 \(/models\): cannot reach"):
        Endpoint("http://127.0.0.1:9/v1", label="--model http://127.0.0.1:9/v1").first_model()


def test_local_model_calls_always_parse(bpe_run):
    lm = gl.load(bpe_run)
    result = gl.Agent(lm, tools=[calculator, weather], max_steps=3, max_new_tokens=60, temperature=1.0, seed=0).run(
        "What is 2+2?"
    )
    for step in result.steps:
        for c in step.calls:
            assert c["name"] in ("calculator", "weather") and json.loads(c["arguments"]) is not None
    assert result.stop_reason in ("answer", "max_steps", "repeated_call")
