"""JSON Schema → a byte-level regular expression whose every match is a JSON text valid under the schema.

The output is JSON with at most one space of insignificant whitespace (after `:` and `,` only), object
properties in the schema's order, strings without raw control characters (escapes `\\" \\\\ \\/ \\n \\r \\t`
only) and bounded in length, numbers bounded in digits. The language is a subset of the schema's valid
instances (no additional properties are generated, for instance), never a superset: every keyword that
restricts instances is either enforced or rejected with an error naming it.

Supported: type (one or a list), enum, const, properties, required, additionalProperties (false, true or a
schema), items, prefixItems, minItems, maxItems, minProperties/maxProperties (objects without
properties), minLength, maxLength, pattern, format (date, time, date-time, uuid), minimum / maximum /
exclusiveMinimum / exclusiveMaximum on integers, anyOf, oneOf (branches of different types or disjoint
constants), allOf of one schema, $ref to #/$defs/... and #/definitions/... (recursion unrolled to a
depth), and the annotations (title, description, default, examples, $schema, $id, $comment, deprecated,
readOnly, writeOnly). Limits (`SchemaLimits`) bound the compile: enum size, nesting depth, sub-expressions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from genloom.errors import UserError
from genloom.generation.constrained.regex import (
    EMPTY,
    EPS,
    Node,
    alt,
    byteset,
    cat,
    codepoints,
    literal,
    opt,
    parse_regex,
    rep,
    seq,
    size,
)

ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}
)
SUPPORTED = ANNOTATIONS | {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "minProperties", "maxProperties",
}  # fmt: skip
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")


@dataclass(frozen=True)
class SchemaLimits:
    """Bounds that make every output finite and every compile quick."""

    max_string_length: int = 256  # characters of a string without maxLength
    max_integer_digits: int = 15  # digits of an integer (and of a number's integer part)
    max_fraction_digits: int = 15  # digits after a number's decimal point
    max_items: int = 64  # items of an array without maxItems
    max_free_properties: int = 16  # keys of an object without properties (additionalProperties, json_object)
    max_depth: int = 8  # nesting of objects/arrays
    max_recursion: int = 3  # times a recursive $ref is unrolled (deeper branches are not generated)
    max_enum: int = 1000  # members of an enum
    max_nodes: int = 200_000  # sub-expressions of the compiled expression
    whitespace: bool = True  # allow one space after ':' and ','

    def __post_init__(self) -> None:
        for name in ("max_string_length", "max_integer_digits", "max_items", "max_depth", "max_enum"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")


# ---- JSON pieces --------------------------------------------------------------------------------

# a string character: any code point but '"', '\\' and the C0/C1 controls (and DEL), or a short escape
_RAW_CHAR = codepoints([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7E), (0xA0, 0x10FFFF)])
_ESCAPE = cat(literal("\\"), byteset(b'"\\/nrt'))
STRING_CHAR = alt(_RAW_CHAR, _ESCAPE)
DIGIT = byteset(ranges=[(0x30, 0x39)])
NONZERO = byteset(ranges=[(0x31, 0x39)])


def json_string(min_len: int = 0, max_len: int = 256, pattern: Node | None = None) -> Node:
    """A JSON string of min_len..max_len characters (or whose raw content matches `pattern`)."""
    body = pattern if pattern is not None else rep(STRING_CHAR, min_len, max_len)
    return cat(literal('"'), body, literal('"'))


def json_integer(max_digits: int) -> Node:
    return cat(opt(literal("-")), alt(literal("0"), cat(NONZERO, rep(DIGIT, 0, max_digits - 1))))


def json_number(limits: SchemaLimits) -> Node:
    fraction = cat(literal("."), rep(DIGIT, 1, limits.max_fraction_digits))
    exponent = cat(byteset(b"eE"), opt(byteset(b"+-")), rep(DIGIT, 1, 2))  # |exponent| < 100: a finite double
    return cat(json_integer(limits.max_integer_digits), opt(fraction), opt(exponent))


def _digits_range(lo: str, hi: str) -> Node:
    """Digit strings of equal length n between lo and hi (inclusive, as strings)."""
    if not lo:
        return EPS
    if lo[0] == hi[0]:
        return cat(literal(lo[0]), _digits_range(lo[1:], hi[1:]))
    n = len(lo) - 1
    parts = [cat(literal(lo[0]), _digits_range(lo[1:], "9" * n))]
    if int(hi[0]) - int(lo[0]) > 1:
        parts.append(cat(byteset(ranges=[(ord(lo[0]) + 1, ord(hi[0]) - 1)]), rep(DIGIT, n, n)))
    parts.append(cat(literal(hi[0]), _digits_range("0" * n, hi[1:])))
    return alt(*parts)


def _natural_range(lo: int, hi: int) -> Node:
    """Decimal naturals lo..hi without leading zeros."""
    parts = []
    for n in range(len(str(lo)), len(str(hi)) + 1):
        a, b = max(lo, 10 ** (n - 1) if n > 1 else 0), min(hi, 10**n - 1)
        if a <= b:
            parts.append(_digits_range(str(a).zfill(n), str(b).zfill(n)))
    return alt(*parts)


def integer_range(lo: int, hi: int) -> Node:
    """Integers lo..hi in JSON (no leading zeros, no "-0")."""
    parts = []
    if hi >= 0:
        parts.append(_natural_range(max(lo, 0), hi))
    if lo < 0:
        parts.append(cat(literal("-"), _natural_range(max(-hi, 1), -lo)))
    return alt(*parts)


FORMATS = {
    "date": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])",
    "time": r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
    "date-time": r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}


# ---- the compiler -------------------------------------------------------------------------------


class SchemaCompiler:
    """One compile of one schema (its $defs, limits and the path of the value being compiled)."""

    def __init__(self, root: Any, limits: SchemaLimits, field: str) -> None:
        self.root = root
        self.limits = limits
        self.field = field
        ws = opt(literal(" ")) if limits.whitespace else EPS
        self.colon = cat(literal(":"), ws)
        self.comma = cat(literal(","), ws)
        self.ref_depth: dict[str, int] = {}

    def fail(self, path: str, what: str) -> UserError:
        return UserError(f"{self.field}{path}: {what}")

    def compile(self) -> Node:
        node = self.value(self.root, "", 0)
        if node is EMPTY:
            raise self.fail("", "no JSON value satisfies this schema (within the depth and length limits)")
        if size(node, self.limits.max_nodes) > self.limits.max_nodes:
            raise self.fail("", f"the schema is too large to compile (more than {self.limits.max_nodes} parts)")
        return node

    def value(self, schema: Any, path: str, depth: int) -> Node:
        if schema is True or schema == {}:
            return self.any_value(depth)
        if schema is False:
            return EMPTY
        if not isinstance(schema, dict):
            raise self.fail(path, f"expected a schema object, got {json.dumps(schema)[:60]}")
        unknown = sorted(set(schema) - SUPPORTED)
        if unknown:
            raise self.fail(
                f"{path}.{unknown[0]}", f"the keyword {unknown[0]!r} cannot be enforced by constrained decoding"
            )
        if depth > self.limits.max_depth:
            raise self.fail(path, f"nested deeper than {self.limits.max_depth} levels")
        if "$ref" in schema:
            return self.ref(schema, path, depth)
        if "allOf" in schema:
            branches = schema["allOf"]
            if not isinstance(branches, list) or len(branches) != 1:
                raise self.fail(f"{path}.allOf", "only an allOf of exactly one schema can be enforced")
            merged = {**{k: v for k, v in schema.items() if k != "allOf"}, **branches[0]}
            return self.value(merged, path, depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.union(schema, key, path, depth)
        if "const" in schema:
            return self.constant(schema["const"], f"{path}.const")
        if "enum" in schema:
            return self.enum(schema["enum"], f"{path}.enum")
        types = schema.get("type", list(TYPES))
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not types or any(t not in TYPES for t in types):
            raise self.fail(f"{path}.type", f"expected one of {', '.join(TYPES)} (or a list of them), got {types!r}")
        self.check_keywords(schema, types, path)
        return alt(*(self.typed(t, schema, path, depth) for t in dict.fromkeys(types)))

    def check_keywords(self, schema: dict[str, Any], types: list[str], path: str) -> None:
        """A keyword for a type the schema does not allow changes nothing; one for the only types present
        must be enforceable (e.g. minimum on a number is not)."""
        if (
            "minimum" in schema or "maximum" in schema or "exclusiveMinimum" in schema or "exclusiveMaximum" in schema
        ) and ("number" in types):
            key = next(k for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in schema)
            raise self.fail(f"{path}.{key}", f"{key!r} on a number cannot be enforced (it can on an integer)")

    def typed(self, t: str, schema: dict[str, Any], path: str, depth: int) -> Node:
        lim = self.limits
        if t == "null":
            return literal("null")
        if t == "boolean":
            return alt(literal("true"), literal("false"))
        if t == "integer":
            return self.integer(schema, path)
        if t == "number":
            return json_number(lim)
        if t == "string":
            return self.string(schema, path)
        if t == "array":
            return self.array(schema, path, depth)
        return self.object(schema, path, depth)

    def integer(self, schema: dict[str, Any], path: str) -> Node:
        big = 10**self.limits.max_integer_digits - 1
        lo, hi = -big, big
        for key, inclusive, upper in (
            ("minimum", True, False),
            ("exclusiveMinimum", False, False),
            ("maximum", True, True),
            ("exclusiveMaximum", False, True),
        ):
            if key not in schema:
                continue
            bound = schema[key]
            if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                raise self.fail(f"{path}.{key}", f"expected a number, got {bound!r}")
            if upper:
                hi = min(hi, math.floor(bound) if inclusive or bound != math.floor(bound) else int(bound) - 1)
            else:
                lo = max(lo, math.ceil(bound) if inclusive or bound != math.ceil(bound) else int(bound) + 1)
        if lo > hi:
            return EMPTY
        if (lo, hi) == (-big, big):
            return json_integer(self.limits.max_integer_digits)
        return integer_range(lo, hi)

    def string(self, schema: dict[str, Any], path: str) -> Node:
        lo = self.count(schema, "minLength", 0, path) or 0
        hi = self.count(schema, "maxLength", None, path)
        if hi is None:
            hi = max(self.limits.max_string_length, lo)
        if "pattern" in schema or "format" in schema:
            if "minLength" in schema or "maxLength" in schema:
                raise self.fail(
                    f"{path}.pattern", "pattern (or format) together with minLength/maxLength cannot be enforced"
                )
            if "format" in schema:
                fmt = schema["format"]
                if fmt not in FORMATS:
                    raise self.fail(
                        f"{path}.format", f"the format {fmt!r} cannot be enforced; supported: {', '.join(FORMATS)}"
                    )
                return json_string(pattern=parse_regex(FORMATS[fmt]))
            pattern = schema["pattern"]
            node = _unescaped(parse_regex(pattern, f"{self.field}{path}.pattern"), {})
            if node is EMPTY:
                raise self.fail(f"{path}.pattern", "the pattern matches no string that needs no escaping")
            return json_string(pattern=node)
        if lo > hi:
            return EMPTY
        return json_string(lo, hi)

    def count(self, schema: dict[str, Any], key: str, default: int | None, path: str) -> int | None:
        if key not in schema:
            return default
        value = schema[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{path}.{key}", f"expected a non-negative integer, got {value!r}")
        if value > 100_000:
            raise self.fail(f"{path}.{key}", f"{value} is beyond what can be generated (at most 100000)")
        return value

    def array(self, schema: dict[str, Any], path: str, depth: int) -> Node:
        lo = self.count(schema, "minItems", 0, path) or 0
        hi = self.count(schema, "maxItems", None, path)
        prefix_schemas = schema.get("prefixItems", [])
        items = schema.get("items", True)
        rest_schema: Any = items
        if isinstance(items, list):  # the tuple form of drafts 4-7: extra items are not generated
            prefix_schemas, rest_schema = items, False
        if not isinstance(prefix_schemas, list):
            raise self.fail(f"{path}.prefixItems", "expected a list of schemas")
        prefix = [self.value(s, f"{path}.prefixItems[{i}]", depth + 1) for i, s in enumerate(prefix_schemas)]
        rest = self.value(rest_schema, f"{path}.items", depth + 1)
        k = len(prefix)
        if hi is None:
            hi = max(self.limits.max_items, lo, k)
        options = [seq(prefix[:n], self.comma) for n in range(lo, min(k, hi + 1))]  # arrays ending in the prefix
        if hi >= k and (rest is not EMPTY or lo <= k):
            need, extra = max(lo - k, 0), hi - k
            if k == 0:  # n items of `rest`, lo <= n <= hi
                more = rep(cat(self.comma, rest), max(need - 1, 0), extra - 1) if extra else EPS
                tail = cat(rest, more) if extra else EMPTY
                options.append(tail if need else opt(tail))
            else:
                more = rep(cat(self.comma, rest), need, extra) if rest is not EMPTY else EPS
                options.append(cat(seq(prefix, self.comma), more))
        return cat(literal("["), alt(*options), literal("]"))

    def object(self, schema: dict[str, Any], path: str, depth: int) -> Node:
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise self.fail(f"{path}.properties", "expected an object of schemas")
        required = schema.get("required", [])
        if not isinstance(required, list) or any(not isinstance(r, str) for r in required):
            raise self.fail(f"{path}.required", "expected a list of property names")
        additional = schema.get("additionalProperties", True)
        missing = [r for r in required if r not in props]
        if missing and additional is False:
            return EMPTY  # a required property that may not appear
        if missing:
            for r in missing:  # required but undeclared: generated with the additionalProperties schema
                props = {**props, r: additional}
        if not props:
            return self.free_object(schema, additional, path, depth)
        if "minProperties" in schema or "maxProperties" in schema:
            raise self.fail(f"{path}.minProperties", "minProperties/maxProperties with properties cannot be enforced")
        names = list(props)
        values = {n: self.value(props[n], f"{path}.properties.{n}", depth + 1) for n in names}
        pairs = {n: cat(literal(json.dumps(n, ensure_ascii=False)), self.colon, values[n]) for n in names}
        req = set(required)
        memo: dict[tuple[int, bool], Node] = {}

        def rest(i: int, first: bool) -> Node:
            """Properties i.. in order, each required one present; `first`: no comma before the next."""
            key = (i, first)
            if key in memo:
                return memo[key]
            if i == len(names):
                out = EPS
            else:
                n = names[i]
                present = cat(EPS if first else self.comma, pairs[n], rest(i + 1, False))
                if values[n] is EMPTY:
                    present = EMPTY
                out = present if n in req else alt(present, rest(i + 1, first))
            memo[key] = out
            return out

        body = rest(0, True)
        if body is EMPTY:
            return EMPTY
        return cat(literal("{"), body, literal("}"))

    def free_object(self, schema: dict[str, Any], additional: Any, path: str, depth: int) -> Node:
        """An object with no declared properties: up to max_free_properties keys, values from
        additionalProperties (any JSON value when it is absent or true)."""
        lo = self.count(schema, "minProperties", 0, path) or 0
        hi = self.count(schema, "maxProperties", None, path)
        hi = min(hi, self.limits.max_free_properties) if hi is not None else self.limits.max_free_properties
        if additional is False or lo > hi:
            return literal("{}") if lo == 0 else EMPTY
        if lo > 1:
            raise self.fail(f"{path}.minProperties", "minProperties above 1 cannot be enforced (keys must differ)")
        value = self.value(additional, f"{path}.additionalProperties", depth + 1)
        pair = cat(json_string(1, 64), self.colon, value)
        if hi > 1:  # distinct keys cannot be enforced by a regular expression: one key at most
            hi = 1
        body = cat(pair, rep(cat(self.comma, pair), 0, hi - 1))
        return cat(literal("{"), body if lo else opt(body), literal("}"))

    def any_value(self, depth: int) -> Node:
        """Any JSON value, nested at most to the depth limit (JSON mode)."""
        lim = self.limits
        scalars = alt(
            json_string(0, lim.max_string_length), json_number(lim), literal("true"), literal("false"), literal("null")
        )
        if depth >= lim.max_depth:
            return scalars
        inner = self.any_value(depth + 1)
        array = cat(literal("["), opt(cat(inner, rep(cat(self.comma, inner), 0, lim.max_items - 1))), literal("]"))
        pair = cat(json_string(1, 64), self.colon, inner)
        obj = cat(
            literal("{"), opt(cat(pair, rep(cat(self.comma, pair), 0, lim.max_free_properties - 1))), literal("}")
        )
        return alt(scalars, array, obj)

    def constant(self, value: Any, path: str) -> Node:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            raise self.fail(path, "expected a JSON value") from None
        return literal(text)

    def enum(self, members: Any, path: str) -> Node:
        if not isinstance(members, list) or not members:
            raise self.fail(path, "expected a non-empty list")
        if len(members) > self.limits.max_enum:
            raise self.fail(path, f"{len(members)} members; at most {self.limits.max_enum} can be enforced")
        return alt(*(self.constant(m, f"{path}[{i}]") for i, m in enumerate(members)))

    def union(self, schema: dict[str, Any], key: str, path: str, depth: int) -> Node:
        branches = schema[key]
        if not isinstance(branches, list) or not branches:
            raise self.fail(f"{path}.{key}", "expected a non-empty list of schemas")
        base = {k: v for k, v in schema.items() if k not in (key, *ANNOTATIONS)}
        nodes = []
        for i, b in enumerate(branches):
            merged = {**base, **b} if isinstance(b, dict) else b
            nodes.append(self.value(merged, f"{path}.{key}[{i}]", depth))
        if key == "oneOf" and not _disjoint(branches):
            raise self.fail(
                f"{path}.oneOf",
                "oneOf can be enforced only when its branches are of different types or distinct constants; use anyOf",
            )
        return alt(*nodes)

    def ref(self, schema: dict[str, Any], path: str, depth: int) -> Node:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not (
            ref.startswith("#/$defs/") or ref.startswith("#/definitions/") or ref == "#"
        ):
            raise self.fail(
                f"{path}.$ref", f"only local references (#, #/$defs/..., #/definitions/...) are supported, got {ref!r}"
            )
        target: Any = self.root
        if ref != "#":
            section, _, name = ref[2:].partition("/")
            defs = self.root.get(section) if isinstance(self.root, dict) else None
            name = name.replace("~1", "/").replace("~0", "~")
            if not isinstance(defs, dict) or name not in defs:
                raise self.fail(f"{path}.$ref", f"{ref!r} names no definition")
            target = defs[name]
        seen = self.ref_depth.get(ref, 0)
        if seen >= self.limits.max_recursion or depth + 1 > self.limits.max_depth:
            return EMPTY  # recursion unrolled to its limit: deeper branches are not generated
        self.ref_depth[ref] = seen + 1
        try:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            merged = {**target, **rest} if isinstance(target, dict) and rest else target
            return self.value(merged, path, depth + 1)
        finally:
            self.ref_depth[ref] = seen


def _branch_types(b: Any) -> set[str] | None:
    if not isinstance(b, dict):
        return None
    if "const" in b:
        return None
    t = b.get("type")
    if isinstance(t, str):
        return {"number" if t == "integer" else t}
    if isinstance(t, list):
        return {"number" if x == "integer" else x for x in t}
    return None


def _disjoint(branches: list[Any]) -> bool:
    """Whether no JSON value can match two branches (by type, or as distinct constants)."""
    consts = [json.dumps(b["const"], sort_keys=True) for b in branches if isinstance(b, dict) and "const" in b]
    if len(consts) == len(branches):
        return len(set(consts)) == len(consts)
    seen: set[str] = set()
    for b in branches:
        types = _branch_types(b)
        if types is None or seen & types:
            return False
        seen |= types
    return True


_MUST_ESCAPE = (1 << ord('"')) | (1 << ord("\\")) | ((1 << 0x20) - 1) | (1 << 0x7F)


def _unescaped(node: Node, memo: dict[int, Node]) -> Node:
    """`node` without the bytes a JSON string must escape (quote, backslash, controls): its matches are then
    written raw in a JSON string, whose value is the match itself, so the pattern holds for the value."""
    done = memo.get(node.uid)
    if done is not None:
        return done
    if node.kind == "bytes":
        out = byteset(ranges=[(b, b) for b in range(256) if (node.mask >> b) & 1 and not (_MUST_ESCAPE >> b) & 1])
    elif node.kind == "cat":
        out = cat(*(_unescaped(i, memo) for i in node.items))
    elif node.kind == "alt":
        out = alt(*(_unescaped(i, memo) for i in node.items))
    elif node.kind == "rep":
        out = rep(_unescaped(node.items[0], memo), node.lo, node.hi)
    else:
        out = node
    memo[node.uid] = out
    return out


def compile_schema(schema: Any, limits: SchemaLimits | None = None, field: str = "json_schema") -> Node:
    """The expression whose matches are the JSON texts this schema accepts (see the module docstring).
    Bad or unenforceable schemas raise `UserError` naming `field` and the keyword's path."""
    limits = limits or SchemaLimits()
    if isinstance(schema, dict):
        import jsonschema_rs

        try:
            jsonschema_rs.meta.validate(schema)
        except jsonschema_rs.ValidationError as e:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.instance_path)
            raise UserError(f"{field}: not a valid JSON Schema ({e.message}, at {where or 'the top'})") from None
        except Exception as e:  # a schema the meta-validator cannot even read (e.g. an unknown $schema)
            raise UserError(f"{field}: not a valid JSON Schema ({str(e).splitlines()[0]})") from None
    return SchemaCompiler(schema, limits, field).compile()
