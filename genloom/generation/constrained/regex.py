"""Regular expressions over bytes, matched by derivatives (Brzozowski 1964; Owens, Reppy and Turon,
"Regular-expression derivatives re-examined", JFP 2009).

Every constraint genloom enforces (a JSON Schema, a user's regular expression, a choice of strings)
becomes one `Node`: a regular expression over UTF-8 bytes. The derivative of a node by a byte is the
node that matches what may follow that byte, so a node *is* a state of a deterministic automaton and
the automaton is built lazily, one state at a time, as decoding reaches it (`automaton.py`). Nothing
backtracks: matching costs one table lookup per byte whatever the expression, which is why a pattern
like `(a+)+$` cannot be catastrophic here.

Nodes are hash-consed (one object per distinct expression) and built only through the smart
constructors `cat`, `alt` and `rep`, which apply the similarity rules of Owens et al. §4.1 (flatten,
drop the empty language and ε where they change nothing, sort and deduplicate alternatives, merge byte
sets). Bounded repetition `rep(r, lo, hi)` keeps its counter in the node, so `x{0,1000}` is one node,
not a thousand states built up front.

`parse_regex` reads the usual syntax (literals, `.`, classes, `\\d \\w \\s`, groups, `|`, `* + ? {m,n}`),
matching characters (a class or `.` matches any UTF-8 encoded character in it).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence

from genloom.errors import UserError

MAX_REPEAT = 10_000  # the largest count in `{m,n}` a pattern may write
MAX_PATTERN = 5_000  # characters of a pattern
MAX_CODEPOINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)  # not characters: never produced


class Node:
    """One regular expression over bytes (immutable, interned: compare with `is`).

    kind is one of "empty" (no string), "eps" (the empty string), "bytes" (one byte from the set
    `mask`, a 256-bit int), "cat" (`items` in sequence), "alt" (any of `items`), "rep" (`items[0]`
    repeated between `lo` and `hi` times; hi None: unbounded)."""

    __slots__ = ("_cuts", "_derivs", "_minlen", "hi", "items", "kind", "lo", "mask", "nullable", "uid")

    def __init__(self, kind: str, items: tuple[Node, ...], mask: int, lo: int, hi: int | None, uid: int) -> None:
        self.kind = kind
        self.items = items
        self.mask = mask
        self.lo = lo
        self.hi = hi
        self.uid = uid  # creation order: the sort key that makes `alt` canonical
        self._derivs: dict[int, Node] = {}
        self._cuts: tuple[int, ...] | None = None
        self._minlen: float | None = None
        if kind == "eps":
            self.nullable = True
        elif kind == "cat":
            self.nullable = all(i.nullable for i in items)
        elif kind == "alt":
            self.nullable = any(i.nullable for i in items)
        elif kind == "rep":
            self.nullable = lo == 0 or items[0].nullable
        else:
            self.nullable = False

    def __repr__(self) -> str:
        return f"Node({self.kind}#{self.uid})"

    @property
    def minlen(self) -> float:
        """The fewest bytes of a matching string (inf for the empty language): what a generation must
        still spend to end, which is how a token budget is kept (`automaton.py`)."""
        if self._minlen is None:
            k = self.kind
            if k == "empty":
                value = math.inf
            elif k == "eps":
                value = 0.0
            elif k == "bytes":
                value = 1.0
            elif k == "cat":
                value = sum(i.minlen for i in self.items)
            elif k == "alt":
                value = min(i.minlen for i in self.items)
            else:
                value = self.lo * self.items[0].minlen if self.lo else 0.0
            self._minlen = value
        return self._minlen

    def cuts(self) -> tuple[int, ...]:
        """Sorted byte values where the derivative may change (block starts, 0 included): every byte of
        a block [cut_i, cut_i+1) gives the same derivative, so a state's row is filled block by block."""
        if self._cuts is None:
            points: set[int] = {0}
            self._collect_cuts(points)
            self._cuts = tuple(sorted(points))
        return self._cuts

    def _collect_cuts(self, points: set[int]) -> None:
        k = self.kind
        if k == "bytes":
            points.update(_mask_cuts(self.mask))
        elif k == "cat":
            head, tail = self.items
            points.update(head.cuts())
            if head.nullable:
                points.update(tail.cuts())
        elif k == "alt":
            for item in self.items:
                points.update(item.cuts())
        elif k == "rep":
            points.update(self.items[0].cuts())

    def derive(self, byte: int) -> Node:
        """The expression matching every s such that `byte + s` matches this one."""
        cached = self._derivs.get(byte)
        if cached is not None:
            return cached
        k = self.kind
        if k == "bytes":
            out = EPS if (self.mask >> byte) & 1 else EMPTY
        elif k == "cat":
            head, tail = self.items
            out = _cat2(head.derive(byte), tail)
            if head.nullable:
                out = alt(out, tail.derive(byte))
        elif k == "alt":
            out = alt(*(i.derive(byte) for i in self.items))
        elif k == "rep":
            inner = self.items[0]
            hi = None if self.hi is None else self.hi - 1
            out = cat(inner.derive(byte), rep(inner, max(self.lo - 1, 0), hi))
        else:  # empty, eps
            out = EMPTY
        self._derivs[byte] = out
        return out


def _mask_cuts(mask: int) -> list[int]:
    """Byte values b where membership differs from b - 1."""
    return [b for b in range(1, 256) if ((mask >> b) & 1) != ((mask >> (b - 1)) & 1)]


_INTERN: dict[tuple[object, ...], Node] = {}
INTERN_LIMIT = 1_000_000  # interned nodes kept before the table is dropped (a long-running server's memory)
_counter = itertools.count()


def _make(kind: str, items: tuple[Node, ...] = (), mask: int = 0, lo: int = 0, hi: int | None = None) -> Node:
    key = (kind, tuple(i.uid for i in items), mask, lo, hi)
    node = _INTERN.get(key)
    if node is None:
        if len(_INTERN) > INTERN_LIMIT:  # equal nodes made later are then distinct objects: still correct,
            _INTERN.clear()  # an automaton only sees a few duplicate states
        node = Node(kind, items, mask, lo, hi, next(_counter))
        _INTERN[key] = node
    return node


EMPTY = _make("empty")
EPS = _make("eps")


def byteset(values: Iterable[int] | None = None, ranges: Iterable[tuple[int, int]] = ()) -> Node:
    """One byte from `values` and the inclusive `ranges`."""
    mask = 0
    for v in values or ():
        mask |= 1 << v
    for lo, hi in ranges:
        mask |= ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1)
    return _make("bytes", mask=mask) if mask else EMPTY


def literal(text: str | bytes) -> Node:
    """Exactly these bytes (a str is UTF-8 encoded)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return cat(*(_make("bytes", mask=1 << b) for b in data))


def cat(*items: Node) -> Node:
    """Concatenation, kept right-nested: a "cat" node is (head, tail) with a head that is no "cat", so the
    derivative of a long sequence makes one new node and shares its whole tail; ε dropped; the empty
    language absorbs."""
    out = EPS
    for item in reversed(items):
        out = _cat2(item, out)
    return out


def _cat2(head: Node, tail: Node) -> Node:
    if head is EMPTY or tail is EMPTY:
        return EMPTY
    if head is EPS:
        return tail
    if tail is EPS:
        return head
    if head.kind == "cat":
        return _cat2(head.items[0], _cat2(head.items[1], tail))
    return _make("cat", (head, tail))


def alt(*items: Node) -> Node:
    """Alternation: flattened, sorted, deduplicated, byte sets merged; the empty language dropped."""
    members: dict[int, Node] = {}
    mask = 0
    for item in items:
        for i in item.items if item.kind == "alt" else (item,):
            if i.kind == "bytes":
                mask |= i.mask
            elif i is not EMPTY:
                members[i.uid] = i
    if mask:
        b = _make("bytes", mask=mask)
        members[b.uid] = b
    if not members:
        return EMPTY
    if len(members) == 1:
        return next(iter(members.values()))
    return _make("alt", tuple(members[k] for k in sorted(members)))


def rep(node: Node, lo: int, hi: int | None) -> Node:
    """`node` repeated lo..hi times (hi None: any number)."""
    if hi is not None and hi < lo:
        return EMPTY
    if hi == 0 or node is EPS:
        return EPS
    if node is EMPTY:
        return EPS if lo == 0 else EMPTY
    if lo == 1 and hi == 1:
        return node
    return _make("rep", (node,), lo=lo, hi=hi)


def opt(node: Node) -> Node:
    return alt(node, EPS)


def seq(parts: Sequence[Node], sep: Node) -> Node:
    """parts joined by sep."""
    out: list[Node] = []
    for i, p in enumerate(parts):
        if i:
            out.append(sep)
        out.append(p)
    return cat(*out)


def size(node: Node, limit: int) -> int:
    """Distinct sub-expressions under `node`, counting up to `limit` (a compile-time bound)."""
    seen: set[int] = set()
    stack = [node]
    while stack and len(seen) <= limit:
        n = stack.pop()
        if n.uid in seen:
            continue
        seen.add(n.uid)
        stack.extend(n.items)
    return len(seen)


# ---- characters as UTF-8 byte sequences ---------------------------------------------------------


def _utf8_seqs(lo: int, hi: int, k: int, lead: int) -> list[list[tuple[int, int]]]:
    """Byte-range sequences for code points lo..hi whose first byte is `lead | (v >> 6k)` followed by k
    continuation bytes (all of them within the same UTF-8 length)."""
    if k == 0:
        return [[(lead | lo, lead | hi)]]
    shift = 6 * k
    low_bits = (1 << shift) - 1
    first, last = lo >> shift, hi >> shift
    if first == last:
        return [[(lead | first, lead | first), *s] for s in _utf8_seqs(lo & low_bits, hi & low_bits, k - 1, 0x80)]
    out: list[list[tuple[int, int]]] = []
    if lo & low_bits:  # a partial first block
        out += _utf8_seqs(lo, lo | low_bits, k, lead)
        first += 1
    partial_last = (hi & low_bits) != low_bits
    full_last = last - 1 if partial_last else last
    if first <= full_last:
        out.append([(lead | first, lead | full_last), *[(0x80, 0xBF)] * k])
    if partial_last:
        out += _utf8_seqs(hi & ~low_bits, hi, k, lead)
    return out


_UTF8_LENGTHS = (
    (0, 0x7F, 0, 0x00),
    (0x80, 0x7FF, 1, 0xC0),
    (0x800, 0xFFFF, 2, 0xE0),
    (0x10000, MAX_CODEPOINT, 3, 0xF0),
)


def codepoints(ranges: Iterable[tuple[int, int]]) -> Node:
    """One UTF-8 encoded character whose code point is in one of the inclusive `ranges` (surrogates
    excluded: they are not characters)."""
    parts: list[Node] = []
    for lo, hi in _without_surrogates(ranges):
        for a, b, k, lead in _UTF8_LENGTHS:
            low, high = max(lo, a), min(hi, b)
            if low <= high:
                for s in _utf8_seqs(low, high, k, lead):
                    parts.append(cat(*(byteset(ranges=[r]) for r in s)))
    return alt(*parts)


def _without_surrogates(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for lo, hi in ranges:
        if hi < SURROGATES[0] or lo > SURROGATES[1]:
            out.append((lo, hi))
            continue
        if lo < SURROGATES[0]:
            out.append((lo, SURROGATES[0] - 1))
        if hi > SURROGATES[1]:
            out.append((SURROGATES[1] + 1, hi))
    return out


def normalize_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def complement(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The code points not in `ranges`."""
    out, start = [], 0
    for lo, hi in normalize_ranges(ranges):
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODEPOINT:
        out.append((start, MAX_CODEPOINT))
    return out


# ---- parsing a regular expression ---------------------------------------------------------------

DIGITS = [(0x30, 0x39)]
WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
SPACE = [(0x09, 0x0D), (0x20, 0x20)]
CLASS_ESCAPES = {"d": DIGITS, "w": WORD, "s": SPACE}
_COUNT = re.compile(r"\{\d+(,\d*)?\}")  # a counted repetition (a fixed, linear pattern)
CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}


class _Parser:
    """Recursive descent over a pattern; errors name the pattern's field and the position."""

    def __init__(self, pattern: str, field: str) -> None:
        self.p = pattern
        self.i = 0
        self.field = field

    def fail(self, what: str) -> UserError:
        return UserError(f"{self.field}: {what} at position {self.i} of the regular expression {self.p!r}")

    def peek(self) -> str:
        return self.p[self.i] if self.i < len(self.p) else ""

    def parse(self) -> Node:
        node = self.alternation()
        if self.i != len(self.p):
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def alternation(self) -> Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        return alt(*branches)

    def sequence(self) -> Node:
        parts: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            parts.append(self.quantified())
        return cat(*parts)

    def quantified(self) -> Node:
        atom = self.atom()
        while True:
            c = self.peek()
            if c == "*":
                self.i += 1
                atom = rep(atom, 0, None)
            elif c == "+":
                self.i += 1
                atom = rep(atom, 1, None)
            elif c == "?":
                self.i += 1
                atom = opt(atom)
            elif c == "{" and self._is_count():
                lo, hi = self.count()
                atom = rep(atom, lo, hi)
            else:
                return atom
            if self.peek() == "?":  # a lazy quantifier matches the same strings
                self.i += 1

    def _is_count(self) -> bool:
        return _COUNT.match(self.p, self.i) is not None

    def count(self) -> tuple[int, int | None]:
        end = self.p.index("}", self.i)
        body = self.p[self.i + 1 : end]
        self.i = end + 1
        lo_s, _, hi_s = body.partition(",")
        lo = int(lo_s)
        hi: int | None = lo if "," not in body else (int(hi_s) if hi_s.strip() else None)
        if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
            raise self.fail(f"a repetition count above {MAX_REPEAT}")
        if hi is not None and hi < lo:
            raise self.fail(f"{{{lo},{hi}}} has its maximum below its minimum")
        return lo, hi

    def atom(self) -> Node:
        c = self.peek()
        if c == "(":
            self.i += 1
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.p.startswith("?P<", self.i) or (
                self.p.startswith("?<", self.i) and self.p[self.i + 2] not in "=!"
            ):
                self.i = self.p.index(">", self.i) + 1  # a named group matches what its body matches
            elif self.peek() == "?":
                raise self.fail("a look-around or inline flag (not a regular language, or not supported)")
            node = self.alternation()
            if self.peek() != ")":
                raise self.fail("a missing ')'")
            self.i += 1
            return node
        if c == "[":
            return codepoints(self.char_class())
        if c == ".":
            self.i += 1
            return codepoints(complement([(0x0A, 0x0A)]))
        if c == "\\":
            return self.escape()
        if c in ("^", "$"):
            if (c == "^" and self.i != 0) or (c == "$" and self.i != len(self.p) - 1):
                raise self.fail(f"an anchor {c!r} inside the pattern (anchors are only allowed at its ends)")
            self.i += 1
            return EPS  # the whole output must match anyway
        if c in ("*", "+", "?", "{"):
            raise self.fail(f"a quantifier {c!r} with nothing to repeat")
        if c == ")":
            raise self.fail("an unbalanced ')'")
        self.i += 1
        return literal(c)

    def escape(self) -> Node:
        self.i += 1
        c = self.peek()
        if not c:
            raise self.fail("a trailing backslash")
        self.i += 1
        if c in CLASS_ESCAPES:
            return codepoints(CLASS_ESCAPES[c])
        if c.upper() in CLASS_ESCAPES and c.isupper():
            return codepoints(complement(CLASS_ESCAPES[c.lower()]))
        if c in CHAR_ESCAPES:
            return literal(CHAR_ESCAPES[c])
        if c in ("u", "x"):
            return literal(chr(self._hex(4 if c == "u" else 2)))
        if c.isalnum():
            raise self.fail(f"an unsupported escape \\{c} (back-references and word boundaries are not regular)")
        return literal(c)

    def _hex(self, n: int) -> int:
        digits = self.p[self.i : self.i + n]
        if len(digits) != n or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise self.fail(f"an escape that needs {n} hex digits")
        self.i += n
        return int(digits, 16)

    def char_class(self) -> list[tuple[int, int]]:
        self.i += 1  # '['
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            c = self.peek()
            if not c:
                raise self.fail("a missing ']'")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            lo_class = self.class_char()
            if isinstance(lo_class, list):
                ranges += lo_class
                continue
            if self.peek() == "-" and self.p[self.i + 1 : self.i + 2] not in ("]", ""):
                self.i += 1
                hi_class = self.class_char()
                if isinstance(hi_class, list) or hi_class < lo_class:
                    raise self.fail("a bad range in a character class")
                ranges.append((lo_class, hi_class))
            else:
                ranges.append((lo_class, lo_class))
        ranges = normalize_ranges(ranges)
        return complement(ranges) if negate else ranges

    def class_char(self) -> int | list[tuple[int, int]]:
        c = self.peek()
        self.i += 1
        if c != "\\":
            return ord(c)
        e = self.peek()
        if not e:
            raise self.fail("a trailing backslash")
        self.i += 1
        if e in CLASS_ESCAPES:
            return CLASS_ESCAPES[e]
        if e.isupper() and e.lower() in CLASS_ESCAPES:
            return complement(CLASS_ESCAPES[e.lower()])
        if e in CHAR_ESCAPES:
            return ord(CHAR_ESCAPES[e])
        if e in ("u", "x"):
            return self._hex(4 if e == "u" else 2)
        return ord(e)


def parse_regex(pattern: str, field: str = "regex") -> Node:
    """A regular expression (Python/ECMA syntax, the regular subset) as a byte-level `Node`. The whole
    output must match (anchors at the ends are accepted and change nothing)."""
    if not isinstance(pattern, str):
        raise UserError(f"{field}: expected a string pattern, got {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise UserError(f"{field}: the pattern has {len(pattern)} characters, at most {MAX_PATTERN} are accepted")
    return _Parser(pattern, field).parse()
