"""A Python function as a tool: its JSON Schema from the signature, the type hints and the docstring.

`function_tool(f)` reads `f`'s parameters (names, defaults: a parameter without a default is required),
their annotations (int, float, str, bool, None, list[...], tuple[...], dict[str, ...], Literal[...],
Enum subclasses, X | None, datetime.date/datetime) and the docstring (the first paragraph describes the
tool; a Google-style `Args:` section describes each parameter). Anything it cannot express as JSON
Schema (`*args`, an unannotated parameter, a class it does not know) is a `UserError` naming the
parameter, so a tool never silently accepts arguments nobody described.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genloom.errors import UserError
from genloom.generation.tools import NAME_PATTERN, Tool


@dataclass(frozen=True)
class FunctionTool:
    """A callable with the tool description a model sees."""

    tool: Tool
    function: Callable[..., Any]


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    if hint is inspect.Parameter.empty:
        raise UserError(f"{where}: needs a type annotation (the model is told each argument's type)")
    if hint is type(None) or hint is None:
        return {"type": "null"}
    simple = {int: "integer", float: "number", str: "string", bool: "boolean"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is dt.date:
        return {"type": "string", "format": "date"}
    if hint is dt.datetime:
        return {"type": "string", "format": "date-time"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type_schema(a, where) for a in args]}
    if origin is list or hint is list:
        return {"type": "array", "items": _type_schema(args[0], where) if args else {}}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], where)}
        return {"type": "array", "prefixItems": [_type_schema(a, where) for a in args], "items": False,
                "minItems": len(args)}  # fmt: skip
    if origin is dict or hint is dict:
        if args and args[0] is not str:
            raise UserError(f"{where}: JSON object keys are strings; use dict[str, ...]")
        return {"type": "object", "additionalProperties": _type_schema(args[1], where) if args else True}
    raise UserError(
        f"{where}: the type {hint!r} has no JSON Schema here; use int, float, str, bool, list, dict, Literal"
    )


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(the first paragraph, {parameter: its line in `Args:`})."""
    doc = inspect.cleandoc(doc or "")
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.MULTILINE)
    if section:
        current = None
        for line in section.group(1).splitlines():
            m = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if m and (current is None or len(line) - len(line.lstrip()) <= 8):
                current = m.group(1)
                params[current] = m.group(2).strip()
            elif current is not None and line.strip():
                params[current] += " " + line.strip()
    return summary, params


def function_tool(function: Callable[..., Any] | FunctionTool, name: str | None = None) -> FunctionTool:
    """The tool description of `function` (see the module docstring)."""
    if isinstance(function, FunctionTool):
        return function
    if not callable(function):
        raise UserError(f"tools: expected a function, got {type(function).__name__}")
    name = str(name or getattr(function, "__name__", ""))
    if not NAME_PATTERN.match(name):
        raise UserError(f"tool {name!r}: a tool name is 1-64 characters from a-z, A-Z, 0-9, '_' and '-'")
    try:
        hints = typing.get_type_hints(function)
    except Exception as e:  # an annotation naming something that does not exist
        raise UserError(f"tool {name}: its type hints cannot be read ({e})") from None
    summary, described = _docstring(function.__doc__ or "")
    properties: dict[str, Any] = {}
    required = []
    for p in inspect.signature(function).parameters.values():
        where = f"tool {name}, parameter {p.name}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise UserError(f"{where}: *args and **kwargs cannot be described to a model; name each parameter")
        schema = _type_schema(hints.get(p.name, p.annotation), where)
        if p.name in described:
            schema["description"] = described[p.name]
        if p.default is p.empty:
            required.append(p.name)
        properties[p.name] = schema
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return FunctionTool(Tool(name, summary, parameters), function)
