"""Tool calls as text: how tools are shown to a model, the grammar its calls must follow, and parsing.

A model calls tools by answering `<tool_call>[{"name": ..., "arguments": {...}}, ...]</tool_call>` (the
shape SmolLM2-Instruct's function-calling data uses); an empty list means "no call". `tools_prompt`
writes the system text that lists the tools; `call_grammar` is the constraint that makes every call
parse, name an offered tool and carry arguments valid under its schema (docs/tools.md); `parse_calls`
reads an answer back into text and calls. The server, `gl.Agent` and the tool-use recipe all go through
this module, so a model is prompted, constrained and read the same way everywhere.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from genloom.errors import UserError
from genloom.generation.constrained.automaton import TokenGrammar
from genloom.generation.constrained.regex import MAX_CODEPOINT, Node, alt, cat, codepoints, literal, rep
from genloom.generation.constrained.schema import SchemaLimits, compile_schema

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for function names
MAX_PARALLEL = 8  # calls in one answer when parallel calls are allowed
MAX_TOOLS = 128  # tools in one request


@dataclass(frozen=True)
class Tool:
    """One function a model may call."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def spec(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


@dataclass
class ToolCall:
    """One call a model made: `arguments` is the JSON text, as OpenAI returns it."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def args(self) -> dict[str, Any]:
        value = json.loads(self.arguments)
        return value if isinstance(value, dict) else {}


def check_tools(tools: Any, field: str = "tools") -> list[Tool]:
    """OpenAI-style tool specs (`{"type": "function", "function": {...}}`, or the inner function object)
    as `Tool`s; a one-line error naming the bad entry's field otherwise."""
    if not isinstance(tools, Sequence) or isinstance(tools, str) or not tools:
        raise UserError(f"{field}: expected a non-empty list of tools")
    if len(tools) > MAX_TOOLS:
        raise UserError(f"{field}: {len(tools)} tools; at most {MAX_TOOLS} are accepted")
    out: list[Tool] = []
    for i, t in enumerate(tools):
        if isinstance(t, Tool):
            out.append(t)
            continue
        where = f"{field}[{i}]"
        if not isinstance(t, Mapping):
            raise UserError(f"{where}: expected an object")
        if "function" in t:
            if t.get("type", "function") != "function":
                raise UserError(f"{where}.type: expected 'function', got {t.get('type')!r}")
            t, where = t["function"], f"{where}.function"
            if not isinstance(t, Mapping):
                raise UserError(f"{where}: expected an object")
        name = t.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise UserError(f"{where}.name: expected 1-64 characters from a-z, A-Z, 0-9, '_' and '-', got {name!r}")
        params = t.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, Mapping):
            raise UserError(f"{where}.parameters: expected a JSON Schema object")
        description = t.get("description") or ""
        if not isinstance(description, str):
            raise UserError(f"{where}.description: expected a string")
        compile_schema(_arguments_schema(params), None, f"{where}.parameters")  # errors name this tool's field
        out.append(Tool(name, description, dict(params)))
    names = [t.name for t in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise UserError(f"{field}: the name {dup!r} is used by two tools")
    return out


def tools_prompt(tools: Sequence[Tool]) -> str:
    """The system text that offers `tools` and says how to call them."""
    listing = json.dumps(
        [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools], ensure_ascii=False
    )
    return (
        "You can call functions. Given the question and the functions below, decide which ones to call and "
        "with which arguments. If none of them fits the question, do not call any.\n\n"
        f"You have access to the following tools:\n<tools>{listing}</tools>\n\n"
        "To call functions, answer with nothing else than\n"
        f'{CALL_OPEN}[{{"name": "function_name", "arguments": {{"argument": "value"}}}}]{CALL_CLOSE}\n'
        "with one object per call, each argument of the type its schema gives. "
        f"If no function call is needed, answer {CALL_OPEN}[]{CALL_CLOSE} or in plain text."
    )


def call_schema(tools: Sequence[Tool], parallel: bool = True, allow_none: bool = False) -> dict[str, Any]:
    """The JSON Schema of the list of calls: each names one tool and has arguments valid for it."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": _arguments_schema(t.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    item: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    return {
        "type": "array",
        "items": item,
        "minItems": 0 if allow_none else 1,
        "maxItems": MAX_PARALLEL if parallel else 1,
    }


def _arguments_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's parameters as the schema of its arguments object (no undeclared arguments generated)."""
    params = dict(parameters)
    if params.get("type", "object") == "object" and "properties" not in params and "additionalProperties" not in params:
        params["additionalProperties"] = False  # a function without parameters takes {}
    return params


ToolChoice = Literal["auto", "none", "required"] | str


def call_grammar(
    tools: Sequence[Tool], choice: ToolChoice = "auto", parallel: bool = True, limits: SchemaLimits | None = None
) -> Node:
    """The constraint for an answer: `required` (or a tool's name): a call block only; `auto`: a call
    block (possibly empty: no call) or plain text that does not start with the call marker."""
    if choice == "none":
        raise UserError("tool_choice 'none' has no call grammar")
    offered = tools
    if choice not in ("auto", "required"):
        offered = [t for t in tools if t.name == choice]
        if not offered:
            raise UserError(f"tool_choice: no tool named {choice!r} (tools: {', '.join(t.name for t in tools)})")
    schema = call_schema(offered, parallel, allow_none=choice == "auto")
    block = cat(literal(CALL_OPEN), compile_schema(schema, limits, "tools"), literal(CALL_CLOSE))
    if choice != "auto":
        return block
    first = codepoints([(0x20, ord("<") - 1), (ord("<") + 1, MAX_CODEPOINT)])  # text starts with no '<' (nor a control)
    text = cat(first, rep(codepoints([(0x09, 0x0A), (0x20, MAX_CODEPOINT)]), 0, None))
    return alt(block, text)


def tool_grammar(
    tokenizer: Any, tools: Sequence[Tool], choice: ToolChoice = "auto", parallel: bool = True, stop: Sequence[str] = ()
) -> TokenGrammar:
    """`call_grammar` bound to a tokenizer (cached per tools, choice and parallel)."""
    from genloom.generation.constrained import cached_grammar

    spec = json.dumps([[t.name, t.description, t.parameters] for t in tools], sort_keys=True, default=str)
    key = ("tools", spec, choice, parallel)
    return cached_grammar(tokenizer, key, lambda: call_grammar(tools, choice, parallel), stop, "tools")


def parse_calls(text: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of an answer; text without a well-formed call block is all content."""
    start = text.find(CALL_OPEN)
    if start < 0:
        return text, []
    end = text.find(CALL_CLOSE, start)
    body = text[start + len(CALL_OPEN) : end if end >= 0 else len(text)]
    try:
        items = json.loads(body)
    except ValueError:
        return text, []
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return text, []
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return text, []
        args = item.get("arguments", {})
        calls.append(ToolCall(item["name"], json.dumps(args, ensure_ascii=False)))
    return text[:start].strip(), calls


def render_call_message(calls: Sequence[Mapping[str, Any]]) -> str:
    """The text of an assistant turn that made `calls` (OpenAI `tool_calls` entries), as the model writes it."""
    items = []
    for c in calls:
        fn = c.get("function", c)
        args = fn.get("arguments", "{}")
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            parsed = args
        items.append({"name": fn.get("name"), "arguments": parsed})
    return f"{CALL_OPEN}{json.dumps(items, ensure_ascii=False)}{CALL_CLOSE}"
