"""Constrained decoding: outputs that match a JSON Schema, a regular expression or a choice of strings,
for any model and tokenizer (docs/tools.md).

`bind(cfg, tokenizer)` turns the `json_schema` / `regex` / `choice` of a `GenerationConfig` into a
`TokenGrammar` (the automaton joined to the tokenizer's vocabulary) in `cfg.grammar`; the engine then adds
a `GrammarProcessor` after the other edits (`processors.py`). Compiled grammars are kept in a small cache,
so a server answering the same schema again pays nothing; token tries are kept per tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from genloom.errors import UserError
from genloom.generation.config import GenerationConfig
from genloom.generation.constrained.automaton import GrammarProcessor, TokenGrammar, TokenVocabulary, token_bytes
from genloom.generation.constrained.regex import Node, alt, literal, parse_regex
from genloom.generation.constrained.schema import SchemaLimits, compile_schema

__all__ = [
    "GrammarProcessor",
    "SchemaLimits",
    "TokenGrammar",
    "bind",
    "cached_grammar",
    "compile_choice",
    "compile_schema",
    "grammar_for",
    "parse_regex",
    "vocabulary",
]

GRAMMAR_CACHE = 64  # compiled grammars kept (per schema/pattern, tokenizer and end tokens)
MAX_CHOICES = 10_000  # strings a choice may list

_vocabularies: OrderedDict[int, tuple[object, TokenVocabulary]] = OrderedDict()
_grammars: OrderedDict[tuple[object, ...], TokenGrammar] = OrderedDict()


def vocabulary(tokenizer: object) -> TokenVocabulary:
    """The token trie of `tokenizer` (built once per tokenizer object, ~0.1-0.5 s for 50k tokens)."""
    key = id(tokenizer)
    hit = _vocabularies.get(key)
    if hit is not None and hit[0] is tokenizer:
        _vocabularies.move_to_end(key)
        return hit[1]
    vocab = TokenVocabulary(token_bytes(tokenizer))
    _vocabularies[key] = (tokenizer, vocab)
    if len(_vocabularies) > 4:
        _vocabularies.popitem(last=False)
    return vocab


def compile_choice(choices: Sequence[str], field: str = "choice") -> Node:
    """Exactly one of `choices`."""
    if isinstance(choices, str) or not isinstance(choices, Sequence) or not choices:
        raise UserError(f"{field}: expected a non-empty list of strings")
    if len(choices) > MAX_CHOICES:
        raise UserError(f"{field}: {len(choices)} strings; at most {MAX_CHOICES} are accepted")
    for i, c in enumerate(choices):
        if not isinstance(c, str) or not c:
            raise UserError(f"{field}[{i}]: expected a non-empty string, got {c!r}")
    return alt(*(literal(c) for c in choices))


def end_tokens(tokenizer: Any, stop: Sequence[str], vocab: TokenVocabulary) -> list[int]:
    """Tokens that end a constrained output: end-of-text, and any stop string that is one special token
    (a chat template's end-of-turn marker)."""
    ends = [] if tokenizer.eos_id is None else [int(tokenizer.eos_id)]
    for s in stop:
        try:
            ids = tokenizer.encode(s)
        except UserError:
            continue
        if len(ids) == 1 and 0 <= ids[0] < vocab.size and vocab.pieces[ids[0]] is None:
            ends.append(ids[0])
    return ends


def cached_grammar(
    tokenizer: Any, key: tuple[object, ...], build: Callable[[], Node], stop: Sequence[str] = (), description: str = ""
) -> TokenGrammar:
    """The grammar `build()` returns, bound to `tokenizer`, cached under `key` (which must name the
    constraint fully: its spec and limits)."""
    vocab = vocabulary(tokenizer)
    ends = tuple(end_tokens(tokenizer, stop, vocab))
    full = (*key, id(vocab), ends)
    hit = _grammars.get(full)
    if hit is not None:
        _grammars.move_to_end(full)
        return hit
    grammar = TokenGrammar(build(), vocab, ends, description)
    grammar.check_start()
    _grammars[full] = grammar
    if len(_grammars) > GRAMMAR_CACHE:
        _grammars.popitem(last=False)
    return grammar


def grammar_for(
    tokenizer: Any,
    *,
    json_schema: Any = None,
    regex: str | None = None,
    choice: Sequence[str] | None = None,
    stop: Sequence[str] = (),
    limits: SchemaLimits | None = None,
    field: str | None = None,
) -> TokenGrammar:
    """The grammar of one constraint bound to `tokenizer` (cached). `field` names the constraint in errors."""
    limits = limits or SchemaLimits()
    if json_schema is not None:
        key: tuple[object, ...] = ("schema", json.dumps(json_schema, sort_keys=True, default=str), limits)
        return cached_grammar(
            tokenizer, key, lambda: compile_schema(json_schema, limits, field or "json_schema"), stop, "json_schema"
        )
    if regex is not None:
        return cached_grammar(tokenizer, ("regex", regex), lambda: parse_regex(regex, field or "regex"), stop, "regex")
    if choice is not None:
        key = ("choice", json.dumps(list(choice), default=str))
        return cached_grammar(tokenizer, key, lambda: compile_choice(choice, field or "choice"), stop, "choice")
    raise UserError("no constraint given: json_schema, regex or choice")


def bind(cfg: GenerationConfig, tokenizer: Any) -> GenerationConfig:
    """`cfg` with its json_schema / regex / choice compiled for `tokenizer` (unchanged without one)."""
    if cfg.grammar is not None or (cfg.json_schema is None and cfg.regex is None and cfg.choice is None):
        return cfg
    grammar = grammar_for(tokenizer, json_schema=cfg.json_schema, regex=cfg.regex, choice=cfg.choice, stop=cfg.stop)
    return dataclasses.replace(cfg, grammar=grammar)
