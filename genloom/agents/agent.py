"""The agent loop: the model proposes calls, the program runs them, the results go back, until an answer.

`Agent(model, tools=[...])` takes Python functions (their schemas come from `schema.py`; the built-ins of
`builtin.py` also by name: "calculator", "datetime", "files" with `folder=`) and a model: a
loaded genloom language model, a run directory or model file (`gl.load` opens it), or the URL of any
OpenAI-compatible chat endpoint. `run(task)` loops call → execute → observe and returns an `AgentResult`
with the answer, why it stopped and the whole trace. What keeps the loop safe:

- a local model answers under the tool-call grammar (genloom/generation/tools.py), so its calls always
  parse and name a tool; a remote model's arguments are validated against the schema before the tool runs;
- an invalid call or a tool that raises is answered with a tool message holding the error and the
  tool's schema (arguments are never coerced to `{}`);
- a tool runs in a worker thread with a timeout (a hung tool is abandoned, the loop goes on); a result
  that is not JSON is sent as its `str`, cut to `max_result_chars`;
- the loop stops at `max_steps` model turns, at the first repeat of an identical call (same tool, same
  arguments), when the wall-clock budget is spent, and when the model cannot answer (its context is
  full, the endpoint fails): `stop_reason` says which, and the trace is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genloom.agents.builtin import builtin_tools
from genloom.agents.schema import FunctionTool, function_tool
from genloom.chat import stop_sequences
from genloom.endpoint import Endpoint
from genloom.errors import UserError
from genloom.generation.tools import Tool, ToolCall, parse_calls, render_call_message, tool_grammar, tools_prompt

StopReason = Literal["answer", "max_steps", "repeated_call", "time_budget", "model_error"]


@dataclass
class AgentConfig:
    max_steps: int = 8  # model turns before the loop gives up
    time_budget: float = 120.0  # seconds of wall clock for one run (checked before each model turn and tool call)
    tool_timeout: float = 10.0  # seconds one tool call may take before it is abandoned
    max_new_tokens: int = 256  # tokens of one model turn
    temperature: float = 0.0  # 0: greedy
    seed: int | None = None  # sampling seed (temperature > 0)
    max_result_chars: int = 4000  # a tool's result is cut to this many characters before the model sees it
    system: str | None = None  # extra system text (after the tool listing)
    first_call: Literal["auto", "required"] = "auto"  # "required": the first turn must call a tool (later: auto)

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_new_tokens", "max_result_chars"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.first_call not in ("auto", "required"):
            raise UserError(f"first_call must be 'auto' or 'required', got {self.first_call!r}")
        for name in ("time_budget", "tool_timeout"):
            if not getattr(self, name) > 0:
                raise UserError(f"{name} must be a positive number of seconds, got {getattr(self, name)}")


@dataclass
class TraceStep:
    """One model turn and the tool calls it made."""

    text: str  # what the model wrote
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments", "result" | "error", "seconds"}
    seconds: float = 0.0  # the model turn's time


@dataclass
class AgentResult:
    """The outcome of `Agent.run`."""

    answer: str | None  # the final answer (None when the loop stopped before one)
    stop_reason: StopReason
    steps: list[TraceStep]
    messages: list[dict[str, Any]]  # the conversation in OpenAI's format, tool calls and results included
    seconds: float
    error: str | None = None  # why the model could not answer ("model_error": e.g. the context is full)


class LocalModel:
    """A genloom language model answering under the tool-call grammar."""

    def __init__(self, lm: Any) -> None:
        self.lm = lm

    def respond(self, messages: list[dict[str, Any]], tools: list[Tool], cfg: AgentConfig, choice: str = "auto") -> str:
        lm = self.lm
        grammar = tool_grammar(lm.tokenizer, tools, choice, True, stop_sequences(lm.chat_template))
        rendered = [_as_text(m) for m in messages]
        completion = lm.chat(
            rendered, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed, grammar=grammar
        )
        return str(completion.text)


class RemoteModel:
    """An OpenAI-compatible `/chat/completions` endpoint (genloom's own server, or any other)."""

    def __init__(self, url: str, model: str | None, api_key: str | None) -> None:
        self.endpoint = Endpoint(url, api_key)
        self.model = model

    def respond(self, messages: list[dict[str, Any]], tools: list[Tool], cfg: AgentConfig, choice: str = "auto") -> str:
        if self.model is None:
            self.model = self.endpoint.first_model()
        body = {
            "model": self.model,
            "messages": messages,
            "tools": [t.spec() for t in tools],
            "tool_choice": choice,
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            **({"seed": cfg.seed} if cfg.seed is not None else {}),
        }
        message = self.endpoint.chat(body, max(cfg.time_budget, 1.0))
        calls = message.get("tool_calls") or []
        if calls:
            return (message.get("content") or "") + render_call_message(calls)
        return str(message.get("content") or "")


def _as_text(message: Mapping[str, Any]) -> dict[str, str]:
    """A message of the conversation as the role/content pair a chat template renders."""
    if message.get("tool_calls"):
        return {
            "role": "assistant",
            "content": (message.get("content") or "") + render_call_message(message["tool_calls"]),
        }
    return {"role": str(message["role"]), "content": str(message.get("content") or "")}


def _open_model(model: Any, remote_model: str | None, api_key: str | None) -> LocalModel | RemoteModel:
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        return RemoteModel(model, remote_model, api_key)
    if isinstance(model, str | Path):
        import genloom as gl

        return LocalModel(gl.load(model))
    if hasattr(model, "respond"):
        return model  # type: ignore[no-any-return]
    if hasattr(model, "chat") and hasattr(model, "tokenizer"):
        return LocalModel(model)
    raise UserError(
        f"Agent: expected a loaded language model, a run path or an http(s) URL, got {type(model).__name__}"
    )


def _json_text(value: Any, limit: int) -> str:
    """A tool result as text the model reads: JSON when it is JSON, its `str` otherwise."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)  # dates, objects: their str
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[:limit] + " [... cut]"


class Agent:
    """A model with tools, looping call → execute → observe until it answers (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        tools: Sequence[Callable[..., Any] | FunctionTool | str],
        config: AgentConfig | None = None,
        *,
        folder: str | Path | None = None,
        remote_model: str | None = None,
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        if not tools:
            raise UserError("Agent: give at least one tool (a Python function, or a built-in's name)")
        named = [t for t in tools if isinstance(t, str)]  # built-ins by name: calculator, datetime, files
        functions = iter(builtin_tools(named, folder))
        self.tools = [function_tool(next(functions)) if isinstance(t, str) else function_tool(t) for t in tools]
        names = [t.tool.name for t in self.tools]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise UserError(f"Agent: two tools are named {dup!r}")
        self.by_name = {t.tool.name: t for t in self.tools}
        self.config = config or AgentConfig(**options)
        self.model = _open_model(model, remote_model, api_key)
        import jsonschema_rs

        self.validators = {t.tool.name: jsonschema_rs.validator_for(dict(t.tool.parameters)) for t in self.tools}

    def run(self, task: str) -> AgentResult:
        """Work on `task` until an answer, or a stop."""
        if not isinstance(task, str) or not task.strip():
            raise UserError("Agent.run: give the task as a non-empty string")
        cfg = self.config
        start = time.monotonic()
        tools = [t.tool for t in self.tools]
        system = tools_prompt(tools) + (f"\n\n{cfg.system}" if cfg.system else "")
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        steps: list[TraceStep] = []
        seen: set[tuple[str, str]] = set()

        def result(answer: str | None, reason: StopReason, error: str | None = None) -> AgentResult:
            return AgentResult(answer, reason, steps, messages, time.monotonic() - start, error)

        for turn in range(cfg.max_steps):
            if time.monotonic() - start > cfg.time_budget:
                return result(None, "time_budget")
            t0 = time.monotonic()
            try:
                text = self.model.respond(messages, tools, cfg, cfg.first_call if turn == 0 else "auto")
            except UserError as e:  # the conversation outgrew the context, the endpoint refused: stop, keep the trace
                return result(None, "model_error", str(e))
            step = TraceStep(text, seconds=time.monotonic() - t0)
            steps.append(step)
            content, calls = parse_calls(text)
            if not calls:
                answer = "" if text.startswith("<tool_call>") else text.strip()
                messages.append({"role": "assistant", "content": answer})
                return result(answer, "answer")
            messages.append(
                {
                    "role": "assistant",
                    "content": content or None,
                    "tool_calls": [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in calls
                    ],
                }
            )
            for call in calls:
                key = (call.name, json.dumps(_loads(call.arguments), sort_keys=True))
                if key in seen:
                    return result(None, "repeated_call")
                seen.add(key)
                if time.monotonic() - start > cfg.time_budget:
                    return result(None, "time_budget")
                record = self._execute(call)
                step.calls.append(record)
                output = record["result"] if "result" in record else record["error"]
                messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        return result(None, "max_steps")

    def _execute(self, call: ToolCall) -> dict[str, Any]:
        """Validate, run with a timeout, and turn the outcome into the text the model reads."""
        cfg = self.config
        record: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
        tool = self.by_name.get(call.name)
        if tool is None:
            record["error"] = f"error: there is no tool named {call.name!r}; tools: {', '.join(self.by_name)}"
            return record
        schema = json.dumps(dict(tool.tool.parameters))
        args = _loads(call.arguments)
        if not isinstance(args, dict) or not self.validators[call.name].is_valid(args):
            problems = (
                "; ".join(e.message for e in self.validators[call.name].iter_errors(args))
                if isinstance(args, dict)
                else "the arguments are not a JSON object"
            )
            record["error"] = (
                f"error: invalid arguments for {call.name}: {problems}. Its arguments follow this schema: {schema}"
            )
            return record
        t0 = time.monotonic()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = tool.function(**args)
            except BaseException as e:  # the tool's own failure goes back to the model
                outcome["error"] = e

        worker = threading.Thread(target=work, name=f"genloom-tool-{call.name}", daemon=True)
        worker.start()
        worker.join(cfg.tool_timeout)  # a hung tool is abandoned (a daemon thread), the loop goes on
        if worker.is_alive():
            record["error"] = f"error: {call.name} did not finish within {cfg.tool_timeout:g} s"
        elif "error" in outcome:
            e = outcome["error"]
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            record["error"] = (
                f"error: {call.name} raised {type(e).__name__}: {message}. Its arguments follow this schema: {schema}"
            )
        else:
            record["result"] = _json_text(outcome.get("value"), cfg.max_result_chars)
        record["seconds"] = round(time.monotonic() - t0, 3)
        return record


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
