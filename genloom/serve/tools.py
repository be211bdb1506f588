"""Tool calling and structured output on `/v1/chat/completions`: `tools`, `tool_choice`,
`parallel_tool_calls`, `response_format`, `role: "tool"` messages, `tool_calls` answers (also streamed,
in OpenAI's fragment shape).

`plan(req, lm)` checks those fields (a 400 naming the field for anything wrong: a bad schema, an
unsupported keyword, a tool name outside OpenAI's pattern, a `tool_choice` naming no tool), renders the
messages (the tools are offered in a system message; earlier calls and their results become text the
chat template renders) and compiles the constraint the answer is decoded under
(genloom/generation/tools.py, genloom/generation/constrained/). `ToolStream` turns the streamed text of
a call block into `tool_calls` deltas as the arguments arrive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from genloom.errors import UserError
from genloom.generation.constrained import grammar_for
from genloom.generation.tools import (
    CALL_OPEN,
    Tool,
    ToolCall,
    check_tools,
    parse_calls,
    render_call_message,
    tool_grammar,
    tools_prompt,
)
from genloom.serve.app import APIError


@dataclass
class ToolPlan:
    """What a chat request with tools or a response format decodes under, and how its answer is read."""

    messages: list[dict[str, str]]  # rendered-ready messages (role, content)
    grammar: Any = None  # the TokenGrammar of the answer (None: free text)
    tools: list[Tool] = field(default_factory=list)  # offered tools; answers are parsed for calls when set


def _param_of(message: str, default: str) -> str:
    """The request field a UserError names first ("tools[0].function.parameters.properties.x: ...")."""
    head = message.split(":", 1)[0]
    return head if head.startswith(default.split(".")[0]) and " " not in head else default


def _bad(e: UserError, default: str) -> APIError:
    message = str(e)
    return APIError(400, message, _param_of(message, default))


def chat_messages(raw: list[Any]) -> list[dict[str, str]]:
    """The request's messages as role/content text: an assistant turn's `tool_calls` become the call
    block the model writes, a `tool` message keeps its role (the chat template renders it)."""
    out = []
    for i, m in enumerate(raw):
        content = m.content
        if content is None:
            content = ""
        elif not isinstance(content, str):
            if any(part.get("type") != "text" or not isinstance(part.get("text"), str) for part in content):
                raise APIError(
                    400, f"messages[{i}].content: only parts of type 'text' are supported", f"messages.{i}.content"
                )
            content = "".join(part["text"] for part in content)
        role = "system" if m.role == "developer" else m.role
        if m.tool_calls:
            if role != "assistant":
                raise APIError(400, f"messages[{i}].tool_calls: only assistant messages make calls", f"messages.{i}")
            for j, c in enumerate(m.tool_calls):
                fn = c.get("function") if isinstance(c, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise APIError(
                        400, f"messages[{i}].tool_calls[{j}].function: expected {{name, arguments}}", f"messages.{i}"
                    )
            content = (content + render_call_message(m.tool_calls)) if content else render_call_message(m.tool_calls)
        if role == "tool" and m.content is None:
            raise APIError(
                400, f"messages[{i}].content: a tool message needs the tool's result", f"messages.{i}.content"
            )
        out.append({"role": role, "content": content})
    return out


def _with_system(messages: list[dict[str, str]], text: str) -> list[dict[str, str]]:
    """`text` as the system message (before the user's own system text, when there is one)."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{text}\n\n{messages[0]['content']}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _tool_choice(choice: Any, tools: list[Tool]) -> str:
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise APIError(
                400, f"tool_choice: expected 'auto', 'none', 'required' or a function, got {choice!r}", "tool_choice"
            )
        return choice
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise APIError(400, 'tool_choice: expected {"type": "function", "function": {"name": ...}}', "tool_choice")
    if name not in {t.name for t in tools}:
        raise APIError(
            400, f"tool_choice: no tool named {name!r} (tools: {', '.join(t.name for t in tools)})", "tool_choice"
        )
    return name


def plan(req: Any, lm: Any, stop: tuple[str, ...]) -> ToolPlan:
    """Check the tool and format fields of a chat request and build what it decodes under."""
    messages = chat_messages(req.messages)
    if req.tools is not None and req.response_format is not None and req.response_format.get("type") != "text":
        raise APIError(400, "response_format: give tools or a response_format, not both", "response_format")
    if req.tools is not None:
        if not req.tools:
            raise APIError(400, "tools: expected a non-empty list of tools", "tools")
        try:
            tools = check_tools(req.tools)
        except UserError as e:
            raise _bad(e, "tools") from None
        choice = _tool_choice(req.tool_choice, tools)
        if choice == "none":
            return ToolPlan(messages)
        try:
            grammar = tool_grammar(lm.tokenizer, tools, choice, req.parallel_tool_calls is not False, stop)
        except UserError as e:
            raise _bad(e, "tools") from None
        return ToolPlan(_with_system(messages, tools_prompt(tools)), grammar, tools)
    if req.tool_choice is not None:
        raise APIError(400, "tool_choice: needs tools", "tool_choice")
    fmt = req.response_format
    if fmt is None or fmt.get("type") == "text":
        return ToolPlan(messages)
    kind = fmt.get("type")
    try:
        if kind == "json_object":
            return ToolPlan(messages, grammar_for(lm.tokenizer, json_schema={"type": "object"}, stop=stop))
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
                raise APIError(400, "response_format.json_schema: expected {name, schema, strict}", "response_format")
            schema = spec.get("schema", {})
            field_name = "response_format.json_schema.schema"
            return ToolPlan(messages, grammar_for(lm.tokenizer, json_schema=schema, stop=stop, field=field_name))
    except UserError as e:
        raise _bad(e, "response_format") from None
    raise APIError(
        400, f"response_format.type: expected 'text', 'json_object' or 'json_schema', got {kind!r}", "response_format"
    )


def answer(text: str, tools: list[Tool]) -> tuple[str | None, list[ToolCall]]:
    """(content, calls) of a finished answer: calls only when tools were offered and a call was made."""
    if not tools:
        return text, []
    content, calls = parse_calls(text)
    if not calls:
        return (None if text.startswith(CALL_OPEN) else text), []  # an empty call list declines: no content
    return content or None, calls


def call_dicts(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


class ToolStream:
    """Streamed text of one choice → chat deltas: plain content as it comes, or, once the answer is a call
    block, one `tool_calls` delta naming each call (id, type, name, empty arguments) followed by deltas
    carrying its arguments' JSON text as it arrives."""

    def __init__(self) -> None:
        self.buffer = ""  # text received, not yet handed out
        self.mode: str | None = None  # None (undecided), "text", "calls"
        self.index = -1  # the call being streamed
        self.in_args = False
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.made = False  # whether any call was emitted

    def feed(self, text: str) -> list[dict[str, Any]]:
        self.buffer += text
        if self.mode is None:
            probe = self.buffer.lstrip()
            if not probe:
                return []
            if CALL_OPEN.startswith(probe[: len(CALL_OPEN)]) and len(probe) < len(CALL_OPEN):
                return []  # could still become the call marker
            self.mode = "calls" if probe.startswith(CALL_OPEN) else "text"
            if self.mode == "calls":
                self.buffer = probe[len(CALL_OPEN) :]
        if self.mode == "text":
            out, self.buffer = self.buffer, ""
            return [{"content": out}] if out else []
        return self._calls()

    def _calls(self) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        while self.buffer:
            if not self.in_args:
                head = self._call_head()
                if head is None:
                    return deltas
                name, used = head
                self.buffer = self.buffer[used:]
                self.index += 1
                self.made = True
                self.in_args, self.depth, self.in_string, self.escaped = True, 0, False, False
                call = ToolCall(name, "")
                deltas.append(
                    {
                        "tool_calls": [
                            {
                                "index": self.index,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
                continue
            end = self._args_end()
            piece = self.buffer[:end] if end >= 0 else self.buffer
            if piece:
                deltas.append({"tool_calls": [{"index": self.index, "function": {"arguments": piece}}]})
            if end < 0:
                self.buffer = ""
                return deltas
            self.buffer = self.buffer[end:]
            self.in_args = False
        return deltas

    def _call_head(self) -> tuple[str, int] | None:
        """The next call's name and the characters up to its arguments, once they have all arrived."""
        key = '"arguments":'
        at = self.buffer.find(key)
        if at < 0:
            return None
        start = self.buffer.find("{")
        try:
            name = json.loads(self.buffer[start:at].rstrip(" ,") + "}")["name"]
        except (ValueError, KeyError, TypeError):
            return None
        used = at + len(key)
        if used < len(self.buffer) and self.buffer[used] == " ":
            used += 1
        elif used >= len(self.buffer):
            return None  # a space may follow
        return str(name), used

    def _args_end(self) -> int:
        """Where the arguments' JSON value ends in the buffer (scanning from the last state), or -1."""
        for i, ch in enumerate(self.buffer):
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = True
            elif ch in "{[":
                self.depth += 1
            elif ch in "}]":
                self.depth -= 1
                if self.depth == 0:
                    return i + 1
        return -1

    def finish(self) -> list[dict[str, Any]]:
        """What is left when the choice ends: text held back while it could have become the call marker
        (the rest of a call block, brackets and the closing marker, is not content)."""
        if self.mode in (None, "text") and self.buffer:
            out, self.buffer = self.buffer, ""
            return [{"content": out}]
        return []
