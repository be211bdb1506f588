"""The tool-use recipe: demonstrations from schemas disjoint from BFCL, valid calls, and `tune sft` on them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs

import genloom as gl
from genloom.evaluate import bfcl
from genloom.generation.tools import parse_calls
from genloom.tune.tooldata import DECLINE, TOOLS, demonstrations, tool_names


def test_recipe_functions_are_disjoint_from_bfcl(bfcl_dir):
    theirs = set()
    for category in bfcl.CATEGORIES:
        for item in bfcl.load(bfcl_dir, category):
            theirs |= {bfcl.openai_name(f["name"]).lower() for f in item.functions}
    assert not {n.lower() for n in tool_names()} & theirs


def test_demonstrations_are_valid_calls_in_openai_format():
    rows = demonstrations(n=200, seed=3)
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    declined = 0
    for row in rows:
        system, user, answer = row["messages"]
        assert system["role"] == "system" and "<tools>" in system["content"] and user["role"] == "user"
        if answer.get("content") == DECLINE:
            declined += 1
            continue
        (call,) = answer["tool_calls"]
        name, args = call["function"]["name"], json.loads(call["function"]["arguments"])
        assert name in system["content"] and jsonschema_rs.validator_for(schemas[name]).is_valid(args)
        assert all(str(v) in user["content"] for v in args.values() if not isinstance(v, bool))
    assert 30 <= declined <= 70  # the 25% of requests no tool fits
    assert demonstrations(n=5, seed=3) == demonstrations(n=5, seed=3)


def test_tune_sft_trains_on_tool_demonstrations(tmp_path: Path, bpe_run):
    data = tmp_path / "tools.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in demonstrations(n=40, seed=0)))
    out = tmp_path / "tuned"
    gl.tune("sft", bpe_run, data=data, out=out, sets=["train.max_iters=2", "train.eval_interval=2", "train.eval_iters=1",
                                                       "train.progress=false", "train.batch_size=2"])  # fmt: skip
    lm = gl.load(out)
    messages = demonstrations(n=1, seed=9, decline=0.0)[0]["messages"][:2]
    text = lm.chat(messages, max_new_tokens=5, temperature=0).text
    assert isinstance(text, str)
    _, calls = parse_calls('<tool_call>[{"name": "set_timer", "arguments": {"minutes": 5}}]</tool_call>')
    assert calls[0].args() == {"minutes": 5}
