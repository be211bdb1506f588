"""The Berkeley Function Calling Leaderboard (BFCL v4, Patil et al. 2025) offline: its items as OpenAI
tools, and its AST match, scored as BFCL defines it.

BFCL's parameter schemas use Python type names ("dict", "float", "tuple", "any"); `item_tools` maps them
to JSON Schema with BFCL's own table (`GORILLA_TO_OPENAPI`) and adds `additionalProperties: false`.
Function names may contain dots, which OpenAI names may not: they become '_' on the way in and are
mapped back when scoring (as BFCL's harness does).

`ast_match` follows BFCL's `ast_checker` for Python: the function name must match; every required
parameter must be present and no unknown one; each value must have the declared type (an int is
accepted for a float) and be one of the acceptable values of the answer, strings compared after
BFCL's standardisation (lower case, without spaces and the characters ,./-_*^), lists element by
element, dicts key by key; an answer list containing "" marks a parameter that may be left out.
`parallel` items need as many calls as the answer, matched in any order; `multiple` and `simple`
items need exactly one call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
TYPE_MAP = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}  # BFCL's GORILLA_TO_OPENAPI
SCHEMA_KEYS = {
    "type", "properties", "required", "items", "enum", "description", "default", "format", "maximum", "minimum",
    "minItems", "maxItems",
}  # fmt: skip


@dataclass
class Item:
    """One BFCL question with its functions (in BFCL's own spelling) and, when known, its answer."""

    id: str
    messages: list[dict[str, str]]
    functions: list[dict[str, Any]]
    answer: list[dict[str, dict[str, list[Any]]]] | None


def load(directory: str | Path, category: str) -> list[Item]:
    """The items of one category (JSON lines), joined with their possible answers when the file exists."""
    directory = Path(directory)
    answers: dict[str, Any] = {}
    answer_file = directory / "possible_answer" / f"BFCL_v4_{category}.json"
    if answer_file.exists():
        for line in answer_file.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                answers[row["id"]] = row["ground_truth"]
    items = []
    for line in (directory / f"BFCL_v4_{category}.json").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            items.append(Item(row["id"], row["question"][0], row["function"], answers.get(row["id"])))
    return items


def openai_name(name: str) -> str:
    return re.sub(r"\.", "_", name)


def to_json_schema(schema: Any) -> Any:
    """A BFCL parameter schema as JSON Schema (types mapped, objects closed, BFCL-only keys dropped)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            continue
        if key == "type":
            out[key] = TYPE_MAP.get(value, value)
        elif key == "properties":
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key == "items":
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if out.get("type") == "object":
        out.setdefault("properties", {})
        out["additionalProperties"] = False
        out["required"] = [r for r in out.get("required", []) if r in out["properties"]]
    if out.get("type") != "integer":  # bounds are BFCL annotations on numbers; kept only where enforceable
        out.pop("maximum", None)
        out.pop("minimum", None)
    return out


def item_tools(item: Item) -> list[dict[str, Any]]:
    """The item's functions as OpenAI `tools` entries."""
    return [
        {
            "type": "function",
            "function": {
                "name": openai_name(f["name"]),
                "description": f.get("description", ""),
                "parameters": to_json_schema(f["parameters"]),
            },
        }
        for f in item.functions
    ]


# ---- AST match ----------------------------------------------------------------------------------


def standardize(text: str) -> str:
    return re.sub(r"[ ,./\-_*^]", "", text).lower()


def _type_ok(value: Any, bfcl_type: str) -> bool:
    if bfcl_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if bfcl_type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if bfcl_type == "boolean":
        return isinstance(value, bool)
    if bfcl_type == "string":
        return isinstance(value, str)
    if bfcl_type in ("array", "tuple"):
        return isinstance(value, list)
    if bfcl_type == "dict":
        return isinstance(value, dict)
    return True  # "any"


def _same(value: Any, expected: Any) -> bool:
    """Equality with BFCL's string standardisation, recursively through lists and dicts."""
    if isinstance(value, str) and isinstance(expected, str):
        return standardize(value) == standardize(expected)
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return float(value) == float(expected)
    if isinstance(value, list) and isinstance(expected, list):
        return len(value) == len(expected) and all(_same(a, b) for a, b in zip(value, expected, strict=True))
    if isinstance(value, dict) and isinstance(expected, dict):
        for key, v in value.items():
            if key not in expected:
                return False
            options = expected[key] if isinstance(expected[key], list) else [expected[key]]
            if not any(_same(v, o) for o in options if o != ""):
                return False
        return all(k in value or "" in (o if isinstance(o, list) else [o]) for k, o in expected.items())
    return bool(value == expected)


def call_matches(function: Mapping[str, Any], call: Mapping[str, Any], answer: Mapping[str, list[Any]]) -> bool:
    """One call against one function declaration and its acceptable values (BFCL's simple checker)."""
    params = function["parameters"].get("properties", {})
    required = function["parameters"].get("required", [])
    args = call.get("arguments")
    if not isinstance(args, dict):
        return False
    if any(r not in args for r in required):
        return False
    for key, value in args.items():
        if key not in params or key not in answer:
            return False
        if not _type_ok(value, params[key].get("type", "any")):
            return False
        if not any(_same(value, option) for option in answer[key] if option != ""):
            return False
    return all(key in args or "" in options for key, options in answer.items())


def ast_match(item: Item, calls: Sequence[Mapping[str, Any]]) -> bool:
    """Whether `calls` ({"name": openai_name, "arguments": dict}) answer `item` (BFCL's AST checker)."""
    assert item.answer is not None, f"{item.id} has no answer"
    if len(calls) != len(item.answer):
        return False
    functions = {openai_name(f["name"]): f for f in item.functions}
    expected = [(openai_name(name), args) for entry in item.answer for name, args in entry.items()]
    used: set[int] = set()
    for name, args in expected:  # every expected call matched by a distinct produced call
        hit = next(
            (
                i
                for i, c in enumerate(calls)
                if i not in used
                and c.get("name") == name
                and name in functions
                and call_matches(functions[name], c, args)
            ),
            None,
        )
        if hit is None:
            return False
        used.add(hit)
    return True


# ---- validity: every output a complete, schema-valid call ----------------------------------------------


def valid_call(text: str, tools: Sequence[Any], parallel: bool) -> bool:
    """`text` holds a closed tool-call block whose calls name offered tools with arguments valid under their
    schemas; exactly one call unless `parallel`."""
    import jsonschema_rs

    from genloom.generation.tools import CALL_CLOSE, parse_calls

    if CALL_CLOSE not in text:
        return False
    _, calls = parse_calls(text)
    if not calls or (not parallel and len(calls) != 1):
        return False
    schemas = {t.name: t.parameters for t in tools}
    for c in calls:
        if c.name not in schemas:
            return False
        try:
            if not jsonschema_rs.validator_for(schemas[c.name]).is_valid(json.loads(c.arguments)):
                return False
        except ValueError:
            return False
    return True


def validity_trial(
    model: Any, tokenizer: Any, item: Item, parallel: bool, constrained: bool, seed: int
) -> tuple[bool, str]:
    """One item of the validity check: the item's tools, a tight token budget (the shortest valid call + 48,
    so strings and numbers must close in time), the question's last 200 tokens, sampling at temperature 1
    with `seed`, under the tool-call grammar or without it. Whether the output is a valid call within the
    budget, and its text."""
    from genloom.generation import GenerationConfig, complete
    from genloom.generation.tools import check_tools, tool_grammar

    tools = check_tools(item_tools(item))
    grammar = tool_grammar(tokenizer, tools, "required", parallel)
    budget = int(grammar.min_bytes) + 48
    prompt = tokenizer.encode(item.messages[-1]["content"])[-200:]
    cfg = GenerationConfig(max_new_tokens=budget, temperature=1.0, seed=seed, grammar=grammar if constrained else None)
    c = complete(model, [prompt], cfg, tokenizer.decode, tokenizer.eos_id)[0]
    return valid_call(c.text, tools, parallel) and len(c.token_ids) <= budget, c.text
