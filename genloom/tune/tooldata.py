"""Tool-use demonstrations for `genloom tune sft`, generated from function schemas.

`demonstrations(tools, n)` writes conversations in OpenAI's message format: the tools prompt as the
system message (genloom/generation/tools.py, the one the server and the agent use), a user request that
names the task and its argument values in words, and the assistant's `tool_calls` with exactly those
arguments; a share of them are requests no tool fits, answered in text. `read_sft` renders the calls as
the call block the model must learn to write. `TOOLS` is a set of everyday functions (weather, units,
currency, calendars, ...) whose names and tasks are disjoint from BFCL's test items, so a model tuned on
them is measured on functions it has never seen (bench/tools.py).

    python -m genloom.tune.tooldata --n 2000 --out tool_sft.jsonl
    genloom tune sft RUN --data tool_sft.jsonl --out runs/tool-tuned --lora
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genloom.errors import UserError
from genloom.generation.tools import Tool, ToolCall, check_tools, tools_prompt

WORDS = {
    "city": ["Lisbon", "Osaka", "Nairobi", "Quebec", "Bergen", "Cusco", "Tbilisi", "Perth", "Porto", "Hanoi"],
    "name": ["Amara", "Jonas", "Priya", "Mateo", "Ingrid", "Kenji", "Leila", "Tomasz", "Ana", "Oskar"],
    "topic": ["budget review", "team lunch", "dentist", "book club", "flight check-in", "yoga class"],
    "item": ["notebook", "kettle", "bicycle lamp", "rain jacket", "desk chair", "headphones"],
    "currency": ["EUR", "USD", "JPY", "GBP", "CHF", "INR"],
    "language": ["French", "Japanese", "Swahili", "Portuguese", "Polish", "Korean"],
    "word": ["serendipity", "harbor", "lantern", "meadow", "quartz", "ember"],
}


def _fn(name: str, description: str, props: dict[str, Any], required: Sequence[str], ask: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": list(required),
                "additionalProperties": False,
            },
        },
        "ask": ask,  # how a user asks for it: {arg} placeholders
    }


TOOLS = [
    _fn("outdoor_outlook", "Outdoor conditions expected in a city.", {"city": {"type": "string"}, "days": {"type": "integer"}},
        ["city", "days"], "What are the outdoor conditions in {city} for the next {days} days?"),
    _fn("money_exchange_quote", "What an amount is worth in another currency.",
        {"amount": {"type": "number"}, "source": {"type": "string"}, "target": {"type": "string"}},
        ["amount", "source", "target"], "How much is {amount} {source} in {target}?"),
    _fn("convert_length", "Convert a length between units.",
        {"value": {"type": "number"}, "unit_from": {"type": "string", "enum": ["km", "mi", "m", "ft"]},
         "unit_to": {"type": "string", "enum": ["km", "mi", "m", "ft"]}},
        ["value", "unit_from", "unit_to"], "Convert {value} {unit_from} to {unit_to}."),
    _fn("schedule_meeting", "Put a meeting in the calendar.",
        {"topic": {"type": "string"}, "with_person": {"type": "string"}, "hour": {"type": "integer"}},
        ["topic", "with_person", "hour"], "Schedule a {topic} with {with_person} at {hour} o'clock."),
    _fn("translate_text", "Translate a word or phrase.", {"text": {"type": "string"}, "language": {"type": "string"}},
        ["text", "language"], "How do you say '{text}' in {language}?"),
    _fn("add_to_shopping_list", "Add an item to the shopping list.",
        {"item": {"type": "string"}, "quantity": {"type": "integer"}}, ["item"], "Add {quantity} {item} to my shopping list."),
    _fn("set_timer", "Start a countdown timer.", {"minutes": {"type": "integer"}, "label": {"type": "string"}},
        ["minutes"], "Set a timer for {minutes} minutes called {label}."),
    _fn("define_word", "Dictionary definition of a word.", {"word": {"type": "string"}}, ["word"],
        "What does the word '{word}' mean?"),
    _fn("send_message", "Send a short text message.", {"recipient": {"type": "string"}, "text": {"type": "string"}},
        ["recipient", "text"], "Text {recipient}: '{text}'."),
    _fn("count_days_between", "Days between two dates.",
        {"start": {"type": "string", "format": "date"}, "end": {"type": "string", "format": "date"}},
        ["start", "end"], "How many days are there between {start} and {end}?"),
    _fn("tip_amount", "The tip for a bill.", {"bill": {"type": "number"}, "percent": {"type": "integer"}},
        ["bill", "percent"], "What is a {percent}% tip on a bill of {bill}?"),
    _fn("suggest_dish", "Suggest a dish to cook with an ingredient.",
        {"ingredient": {"type": "string"}, "vegetarian": {"type": "boolean"}}, ["ingredient"],
        "Find me a recipe with {ingredient}, vegetarian: {vegetarian}."),
]  # fmt: skip

OFF_TOPIC = [
    "Tell me a joke about penguins.",
    "Who wrote the novel Moby-Dick?",
    "Why is the sky blue?",
    "Write a haiku about autumn.",
    "What is the capital of Canada?",
    "Explain photosynthesis in one sentence.",
    "What is your favourite colour?",
    "Summarise the plot of Hamlet.",
]
DECLINE = "None of the available tools can help with that, so I will answer directly."


def _value(name: str, schema: Mapping[str, Any], rng: random.Random) -> Any:
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return rng.randint(1, 60)
    if kind == "number":
        return round(rng.uniform(1, 500), rng.choice([0, 1, 2]))
    if kind == "boolean":
        return rng.random() < 0.5
    if schema.get("format") == "date":
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    for key, words in WORDS.items():
        if key in name:
            return rng.choice(words)
    if name in ("source", "target"):
        return rng.choice(WORDS["currency"])
    if name in ("recipient", "with_person"):
        return rng.choice(WORDS["name"])
    if name in ("text", "label", "ingredient"):
        return rng.choice(WORDS["word"] + WORDS["item"])
    return rng.choice(WORDS["word"])


def demonstrations(
    tools: Sequence[Mapping[str, Any]] = TOOLS, n: int = 1000, seed: int = 0, decline: float = 0.25, offered: int = 3
) -> list[dict[str, Any]]:
    """`n` conversations: each offers `offered` of `tools` (OpenAI specs with an "ask" template), asks for
    one of them (or, with probability `decline`, something none of them does) and answers with the call."""
    rng = random.Random(seed)
    if not tools:
        raise UserError("demonstrations: give at least one tool")
    records = []
    for _ in range(n):
        chosen = rng.sample(list(tools), min(offered, len(tools)))
        specs = check_tools([{k: v for k, v in t.items() if k != "ask"} for t in chosen])
        system = {"role": "system", "content": tools_prompt(specs)}
        if rng.random() < decline:
            user = rng.choice(OFF_TOPIC)
            records.append(
                {"messages": [system, {"role": "user", "content": user}, {"role": "assistant", "content": DECLINE}]}
            )
            continue
        target = rng.choice(chosen)
        params = target["function"]["parameters"]["properties"]
        args = {name: _value(name, schema, rng) for name, schema in params.items()}
        ask = target.get("ask") or f"Please use {target['function']['name']} with " + ", ".join(
            f"{k}={{{k}}}" for k in args
        )
        user = ask.format(**args)
        call = ToolCall(
            target["function"]["name"], json.dumps(args, ensure_ascii=False), f"call_{rng.getrandbits(64):016x}"
        )
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            ],
        }
        records.append({"messages": [system, {"role": "user", "content": user}, assistant]})
    return records


def tool_names(tools: Sequence[Mapping[str, Any]] = TOOLS) -> list[str]:
    return [t["function"]["name"] for t in tools]


def as_tools(tools: Sequence[Mapping[str, Any]] = TOOLS) -> list[Tool]:
    return check_tools([{k: v for k, v in t.items() if k != "ask"} for t in tools])


def main() -> None:
    parser = argparse.ArgumentParser(description="Write tool-use demonstrations (JSONL) for genloom tune sft.")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decline", type=float, default=0.25, help="share of requests no tool fits")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = demonstrations(n=args.n, seed=args.seed, decline=args.decline)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} demonstrations written to {args.out}")


if __name__ == "__main__":
    main()
