"""Constrained decoding: the JSON Schema and regex compilers (what they accept and refuse, and how fast),
and the processor in every decoding path (batches, beams, streaming, continuous batching, char tokenizer)."""

from __future__ import annotations

import json
import time

import jsonschema_rs
import pytest
import torch

import genloom as gl
from genloom.api.text import generation_config
from genloom.errors import UserError
from genloom.generation import GenerationConfig, complete
from genloom.generation.constrained import bind, compile_schema, grammar_for, parse_regex
from genloom.generation.constrained.automaton import Automaton
from genloom.generation.continuous import ContinuousBatcher
from genloom.models.gpt.model import GPT, GPTConfig
from genloom.tokenizers import CharTokenizer


def matcher(schema):
    a = Automaton(compile_schema(schema))
    return lambda text: a.matches(text.encode())


CASES = [
    (
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 3}},
         "required": ["a"], "additionalProperties": False},
        ['{"a":1}', '{"a": -2, "b": "xyz"}', '{"a":0,"b":""}'],
        ['{"a":01}', '{"b":"x"}', '{"a":1,"b":"long"}', '{"a":1,  "b":"x"}', '{"a":1,"c":2}', '{"a":1.5}'],
    ),
    ({"enum": ["red", 3, None]}, ['"red"', "3", "null"], ['"blue"', "4", '"Red"']),
    ({"const": {"k": [1, 2]}}, ['{"k":[1,2]}'], ['{"k":[1,3]}']),
    ({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, ["12", "true"], ['"12"', "1.0"]),
    ({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 3},
     ["[1, 2.5]", "[1,2,3e5]"], ["[1]", "[1,2,3,4]", "[]"]),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
     ['["a", 1]', "[]", '["a"]'], ['[1, "a"]', '["a", 1, 2]']),
    ({"type": "string", "pattern": "^[a-z]{2}-\\d{3}$"}, ['"ab-123"'], ['"ab-12"', '"AB-123"']),
    ({"type": "string", "format": "date"}, ['"2024-02-29"'], ['"2024-13-01"', '"24-01-01"']),
    ({"type": "integer", "minimum": -5, "maximum": 120}, ["-5", "0", "99", "120"], ["-6", "121", "1000", "-0"]),
    ({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}, ["1", "9"], ["0", "10"]),
    ({"type": "string", "minLength": 2, "maxLength": 2}, ['"ab"', '"\\n\\t"', '"é✓"'], ['"a"', '"abc"', '"a\tb"']),
    (
        {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#/$defs/node"}},
                            "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
        ['{"v":1}', '{"v":1,"next":{"v":2,"next":{"v":3}}}'], ['{"next":{"v":1}}'],
    ),
    ({"oneOf": [{"type": "string"}, {"type": "null"}]}, ['"x"', "null"], ["1"]),
    ({"type": ["string", "null"]}, ['"x"', "null"], ["1"]),
    (True, ['{"a": [1, {"b": null}]}', '"s"', "1e5"], ["{a:1}", "[1,]"]),
]  # fmt: skip


@pytest.mark.parametrize("schema,good,bad", CASES)
def test_schema_language(schema, good, bad):
    matches = matcher(schema)
    for text in good:
        assert matches(text), text
        if schema is not True:
            assert jsonschema_rs.validator_for(schema).is_valid(json.loads(text)), text
    for text in bad:
        assert not matches(text), text


@pytest.mark.parametrize(
    "schema,field",
    [
        ({"type": "string", "not": {"const": "x"}}, "json_schema.not"),
        ({"type": "object", "properties": {"p": {"type": "number", "multipleOf": 3}}}, "json_schema.properties.p.multipleOf"),
        ({"type": "number", "minimum": 0}, "json_schema.minimum"),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, "json_schema.oneOf"),
        ({"type": "strin"}, "json_schema: not a valid JSON Schema"),
        ({"enum": list(range(10_000))}, "json_schema.enum: 10000 members"),
        ({"$ref": "#/$defs/missing"}, "json_schema.$ref"),
        ({"type": "string", "format": "email"}, "json_schema.format"),
        ({"type": "string", "pattern": "(?=a)b"}, "json_schema.pattern"),
        ({"$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "required": ["n"]}},
          "$ref": "#/$defs/n"}, "no JSON value"),
    ],
)  # fmt: skip
def test_unenforceable_schemas_are_refused_naming_the_keyword(schema, field):
    t0 = time.monotonic()
    with pytest.raises(UserError, match=field.replace("$", r"\$").replace(".", r"\.")):
        compile_schema(schema)
    assert time.monotonic() - t0 < 2


def test_deep_nesting_is_refused_quickly():
    schema: dict = {"type": "integer"}
    for _ in range(50):
        schema = {"type": "array", "items": schema}
    t0 = time.monotonic()
    with pytest.raises(UserError, match="nested deeper than"):
        compile_schema(schema)
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize(
    "pattern,text,expected",
    [
        ("(a+)+$", "a" * 5000 + "b", False),
        ("(a|aa)*c", "a" * 5000 + "c", True),
        ("(x+x+)+y", "x" * 3000, False),
        ("\\d{3}-[A-Z]{2}|x[^0-9]*y", "xhello y", True),
        ("[\\u00e0-\\u00ff]+", "àéÿ", True),
        ("colou?r", "color", True),
    ],
)
def test_catastrophic_patterns_match_in_linear_time(pattern, text, expected):
    t0 = time.monotonic()
    assert Automaton(parse_regex(pattern)).matches(text.encode()) is expected
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("pattern", ["(a", "a{5,2}", "(?<=a)b", "\\1", "a{99999}", "*a"])
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(UserError, match="regex"):
        parse_regex(pattern)


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "n": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
    "required": ["name", "n"],
    "additionalProperties": False,
}  # fmt: skip


def valid(text: str) -> bool:
    try:
        return jsonschema_rs.validator_for(SCHEMA).is_valid(json.loads(text))
    except ValueError:
        return False


def test_batches_beams_and_every_budget(bpe, random_model):
    prompts = [bpe.encode(p) for p in ("Hello", "A much longer prompt here", "x")]
    for options in ({"temperature": 1.0, "seed": 0}, {"temperature": 0}, {"temperature": 0, "num_beams": 3}):
        for budget in (40, 200):
            cfg = bind(GenerationConfig(max_new_tokens=budget, json_schema=SCHEMA, **options), bpe)
            batch = prompts[:1] if options.get("num_beams") else prompts
            for c in complete(random_model, batch, cfg, bpe.decode, bpe.eos_id):
                assert valid(c.text) and len(c.token_ids) <= budget, (options, budget, c.text)
    unconstrained = complete(random_model, prompts, GenerationConfig(max_new_tokens=40, seed=0), bpe.decode, bpe.eos_id)
    assert not any(valid(c.text) for c in unconstrained)


def test_choice_and_regex(bpe, random_model):
    cfg = bind(GenerationConfig(max_new_tokens=20, choice=("yes", "no", "maybe later"), seed=1), bpe)
    outs = {c.text for c in complete(random_model, [bpe.encode("q")] * 8, cfg, bpe.decode, bpe.eos_id)}
    assert outs <= {"yes", "no", "maybe later"} and len(outs) >= 2
    cfg = bind(GenerationConfig(max_new_tokens=30, regex=r"[A-Z]{3}-\d{2,4}", seed=2), bpe)
    for c in complete(random_model, [bpe.encode("q")] * 4, cfg, bpe.decode, bpe.eos_id):
        assert Automaton(parse_regex(r"[A-Z]{3}-\d{2,4}")).matches(c.text.encode()), c.text


def test_char_tokenizer_without_an_end_token_still_ends():
    tok = CharTokenizer.train(['{}[]":,0123456789abcdefghijklmnopqrstuvwxyz -.'], byte_fallback=True)
    assert tok.eos_id is None
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=32)).eval()
    cfg = bind(GenerationConfig(max_new_tokens=120, json_schema=SCHEMA, seed=3), tok)
    for c in complete(model, [tok.encode("go")] * 4, cfg, tok.decode, None):
        assert valid(c.text) and c.finish_reason == "stop", c.text


def test_a_vocabulary_that_cannot_write_the_output_is_refused():
    tok = CharTokenizer.train(["abc"], byte_fallback=False)
    with pytest.raises(UserError, match="no token that can start"):
        grammar_for(tok, json_schema=SCHEMA)


def test_streaming_and_continuous_batching(bpe_run):
    lm = gl.load(bpe_run)
    pieces = list(lm.stream("Hi", max_new_tokens=80, json_schema=SCHEMA, seed=4))
    assert len(pieces) > 1 and valid("".join(pieces))
    requests = [("Hi", {"max_new_tokens": 80, "json_schema": SCHEMA, "seed": s}) for s in range(3)]
    requests.append(("Hi", {"max_new_tokens": 30, "temperature": 0.9, "seed": 9}))  # an unconstrained row alongside
    batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=4)
    rows = []
    for prompt, options in requests:
        cfg = bind(generation_config(**options), lm.tokenizer)
        rows.append(batcher.add(lm.prompt_ids(prompt), cfg))
        batcher.step()
    while batcher.rows:
        batcher.step()
    for row, (prompt, options) in zip(rows, requests, strict=True):
        alone = lm.complete(prompt, **options)[0]
        assert row.completion().token_ids == alone.token_ids
        if "json_schema" in options:
            assert valid(row.completion().text)


def test_generate_api_refuses_two_constraints(bpe_run):
    lm = gl.load(bpe_run)
    with pytest.raises(UserError, match="give one constraint"):
        lm.generate("x", json_schema=SCHEMA, regex="a")
    with pytest.raises(UserError, match=r"json_schema\.properties\.x\.not"):
        lm.generate("x", json_schema={"type": "object", "properties": {"x": {"not": {}}}})
