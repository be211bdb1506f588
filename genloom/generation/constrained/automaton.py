"""From a byte-level regular expression to a token mask per decoding step.

- `Automaton`: the deterministic automaton of one `Node` (regex.py), built lazily. State i is a node;
  its row of 256 next states is filled the first time it is needed, one block of equivalent bytes at a
  time (`Node.cuts`). State 0 is the dead state. `dist[i]` is the fewest bytes still needed to reach an
  accepting state (the node's `minlen`).
- `TokenVocabulary`: each token id's bytes (byte-level BPE maps its printable alphabet back to bytes;
  byte-fallback `<0xNN>` tokens are one byte; special tokens have none), arranged as a trie stored level
  by level: nodes at depth d have a parent at depth d-1 and a byte.
- `TokenGrammar.entry(state)`: every token the automaton accepts from `state`, with the state each one
  leads to. It is one walk down the trie, done for all nodes of a level at once with numpy (a gather in
  the transition table per level), so its cost is the trie's size in vectorised steps, not Python steps
  per token; it is cached per state, so a state seen before costs a dictionary lookup.
- `GrammarProcessor`: the logits processor (`processors.py` calls it after banned tokens). It tracks each
  row's state from the row's tokens, so it works unchanged under batching, beam search (rows re-ordered),
  streaming and continuous batching, and it keeps every row within its token budget: a token is allowed
  only if the bytes still needed after it fit in the tokens left (`dist[next] <= left - 1`), and the
  end-of-text token only in an accepting state. Every path therefore ends, valid, within max_new_tokens
  (when single-byte tokens exist for the bytes it needs, as they do for byte-level BPE).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genloom.errors import UserError
from genloom.generation.constrained.regex import EMPTY, Node, alt, cat, rep

DEAD = 0
FINISHED = -1  # a row that produced its end token
MAX_STATES = 200_000  # automaton states materialised before generation is refused (memory bound)
MAX_TOKEN_BYTES = 32  # longer tokens (runs of spaces or dashes) are never allowed under a constraint: shorter
# ones write the same bytes, and a shallower trie makes each walk cheaper and lets more states share an entry
ENTRY_CACHE = 4096  # per vocabulary: expressions whose token entries are kept (shared by every grammar)
NARROW_BYTES = 4  # a state that at most this many bytes may follow is walked depth first in Python ...
NARROW_NODES = 4096  # ... unless it reaches more trie nodes than this (then vectorised)
DENSE_BYTES = 64  # a state that at least this many bytes may follow is walked over the whole trie


class Automaton:
    """The lazily built DFA of one expression."""

    def __init__(self, root: Node) -> None:
        self.nodes: list[Node] = [EMPTY]
        self.index: dict[int, int] = {EMPTY.uid: DEAD}
        self.table = np.zeros((64, 256), dtype=np.int32)
        self.computed = np.zeros(64, dtype=bool)
        self.computed[DEAD] = True  # the dead state's row is all dead
        self.dist = np.full(64, np.inf, dtype=np.float64)
        self.start = self.state(root)

    def state(self, node: Node) -> int:
        i = self.index.get(node.uid)
        if i is None:
            i = len(self.nodes)
            if i >= MAX_STATES:
                raise UserError(
                    f"the constraint's automaton grew past {MAX_STATES} states; simplify the schema/pattern"
                )
            if i >= len(self.computed):
                self._grow()
            self.nodes.append(node)
            self.index[node.uid] = i
            self.dist[i] = node.minlen
        return i

    def _grow(self) -> None:
        n = len(self.computed)
        self.table = np.concatenate((self.table, np.zeros((n, 256), dtype=np.int32)))
        self.computed = np.concatenate((self.computed, np.zeros(n, dtype=bool)))
        self.dist = np.concatenate((self.dist, np.full(n, np.inf)))

    def ensure(self, states: np.ndarray) -> None:
        """Fill the rows of `states` not built yet."""
        missing = states[~self.computed[states]]
        if missing.size:
            for s in sorted(set(missing.tolist())):  # a set: np.unique costs more on the few states here
                if not self.computed[s]:
                    self._fill(s)

    def _fill(self, s: int) -> None:
        node = self.nodes[s]
        cuts = node.cuts()
        row = np.zeros(256, dtype=np.int32)
        for k, lo in enumerate(cuts):
            hi = cuts[k + 1] if k + 1 < len(cuts) else 256
            row[lo:hi] = self.state(node.derive(lo))
        self.table[s] = row  # after state() calls: the table may have grown
        self.computed[s] = True

    def accepting(self, s: int) -> bool:
        return s > DEAD and self.nodes[s].nullable

    def walk(self, s: int, data: bytes) -> int:
        """The state after `data`. A state whose row is not built takes one derivative per byte instead of
        building its row (advancing a row through a long string would otherwise build a row per character)."""
        for b in data:
            if s == DEAD:
                return DEAD
            s = int(self.table[s, b]) if self.computed[s] else self.state(self.nodes[s].derive(b))
        return s

    def matches(self, data: bytes) -> bool:
        return self.accepting(self.walk(self.start, data))


# ---- tokens as bytes ----------------------------------------------------------------------------


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte (Radford et al. 2019, `bytes_to_unicode`), inverted."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def token_bytes(tokenizer: object) -> list[bytes | None]:
    """Each token id's bytes as it appears in decoded text; None for special tokens (and any whose bytes
    cannot be known), which a constraint never allows except as the end token."""
    itos = getattr(tokenizer, "itos", None)
    if itos is not None:  # genloom's character tokenizer
        out: list[bytes | None] = []
        byte_offset = tokenizer.byte_offset  # type: ignore[attr-defined]
        special_offset = tokenizer.special_offset  # type: ignore[attr-defined]
        for i, t in enumerate(itos):
            if i >= special_offset:
                out.append(None)
            elif i >= byte_offset:
                out.append(bytes([i - byte_offset]))
            else:
                out.append(t.encode("utf-8"))
        return out
    hf = tokenizer.hf  # type: ignore[attr-defined]
    import json

    spec = json.loads(hf.to_str())
    decoder = spec.get("decoder") or {}
    kinds = {d.get("type") for d in decoder.get("decoders", [])} | {decoder.get("type")}
    specials = {i for i, t in hf.get_added_tokens_decoder().items() if t.special}
    size = hf.get_vocab_size()
    out = [None] * size
    alphabet = _byte_level_alphabet()
    for text, i in hf.get_vocab().items():
        if i in specials or i >= size:
            continue
        if "ByteLevel" in kinds:
            if all(c in alphabet for c in text):
                out[i] = bytes(alphabet[c] for c in text)
            else:
                out[i] = text.encode("utf-8")  # an added, non-special token written in plain text
        elif "ByteFallback" in kinds and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            out[i] = bytes([int(text[3:5], 16)])
        else:
            out[i] = (
                text.replace("▁", " ").encode("utf-8") if "Metaspace" in kinds or "Replace" in kinds else text.encode()
            )
    return out


class TokenVocabulary:
    """A tokenizer's tokens as a byte trie stored level by level (breadth first), so that a walk can go
    down one level at a time for all live nodes at once: the children of a node are contiguous in the
    next level (`starts`), in the order of their parents."""

    def __init__(self, pieces: Sequence[bytes | None]) -> None:
        self.size = len(pieces)
        self.pieces = list(pieces)
        children: list[dict[int, int]] = [{}]
        end_node = np.full(self.size, -1, dtype=np.int64)
        for t, data in enumerate(pieces):
            if not data or len(data) > MAX_TOKEN_BYTES:
                self.pieces[t] = None
                continue
            node = 0
            for b in data:
                nxt = children[node].get(b)
                if nxt is None:
                    nxt = len(children)
                    children.append({})
                    children[node][b] = nxt
                node = nxt
            end_node[t] = node
        # breadth-first renumbering: flat position of every node; per level, CSR offsets into the next one
        flat_of = np.zeros(len(children), dtype=np.int64)
        level = [0]
        self.offsets = [0, 1]  # level d occupies offsets[d]:offsets[d+1]
        self.starts: list[np.ndarray] = []  # per level d >= 1: (n_{d-1} + 1,) child ranges per parent
        self.bytes: list[np.ndarray] = []  # per level d >= 1: (n_d,) each node's byte
        while True:
            below: list[int] = []
            starts: list[int] = [0]
            byte: list[int] = []
            for parent in level:
                for b, child in sorted(children[parent].items()):
                    below.append(child)
                    byte.append(b)
                starts.append(len(below))
            if not below:
                break
            base = self.offsets[-1]
            for i, child in enumerate(below):
                flat_of[child] = base + i
            self.starts.append(np.array(starts, dtype=np.int64))
            self.bytes.append(np.array(byte, dtype=np.int64))
            self.offsets.append(base + len(below))
            level = below
        self.max_depth = len(self.bytes)
        self.total = self.offsets[-1]
        # per level d >= 1: each node's parent (its index within level d-1), for the dense walk
        self.parents = [np.repeat(np.arange(len(st) - 1), np.diff(st)) for st in self.starts]
        # the same trie as Python lists, for the narrow walk (a few live nodes: numpy's per-call cost dominates)
        self.starts_list = [st.tolist() for st in self.starts]
        self.bytes_list = [b.tolist() for b in self.bytes]
        self.clamp_memo: dict[int, Node] = {}  # clamp_counts results for this vocabulary's depth (nodes are global)
        self.entries: OrderedDict[int, Entry] = OrderedDict()  # node uid → its tokens (TokenGrammar.entry)
        self.valid = np.flatnonzero(end_node >= 0)  # token ids that have bytes
        self.token_flat = flat_of[end_node[self.valid]]  # their end node's flat position
        self.tokens_at: dict[int, list[int]] = {}  # flat position → the tokens ending there (duplicates share one)
        for t, node in zip(self.valid.tolist(), self.token_flat.tolist(), strict=True):
            self.tokens_at.setdefault(node, []).append(t)


def clamp_counts(node: Node, most: int, memo: dict[int, Node]) -> Node:
    """`node` with every repetition bound above `most` lowered to `most`. A token of fewer than `most`
    bytes cannot use that many repetitions (each takes at least one byte), so it is allowed from the
    clamped state exactly when from the original one, and the bytes each leaves to finish are the same
    (they depend on the lower bounds only): the two states share one token entry. This is what makes a
    string of 256 characters cost a handful of entries instead of one per character."""
    done = memo.get(node.uid)
    if done is not None:
        return done
    k = node.kind
    if k == "cat":
        out = cat(*(clamp_counts(i, most, memo) for i in node.items))
    elif k == "alt":
        out = alt(*(clamp_counts(i, most, memo) for i in node.items))
    elif k == "rep":
        hi = node.hi if node.hi is not None and node.hi <= most else (most if node.items[0].minlen >= 1 else node.hi)
        out = rep(clamp_counts(node.items[0], most, memo), node.lo, hi) if hi is None or hi >= node.lo else node
    else:
        out = node
    memo[node.uid] = out
    return out


@dataclass
class Entry:
    """The tokens allowed from one state: ids (sorted) and the bytes each leaves to finish."""

    ids: np.ndarray  # (n,) int64
    dist: np.ndarray  # (n,) float64
    mask: torch.Tensor  # (V,) bool: these ids
    most: float  # dist.max() (-inf without ids)
    least: float  # dist.min() (inf without ids)


class TokenGrammar:
    """An automaton joined to a vocabulary: which tokens each state allows, and the end tokens."""

    def __init__(self, root: Node, vocab: TokenVocabulary, end_ids: Iterable[int], description: str = "") -> None:
        if root is EMPTY:
            raise UserError(f"{description or 'the constraint'}: no output can satisfy it")
        self.automaton = Automaton(root)
        self.vocab = vocab
        self.end_ids = sorted({int(i) for i in end_ids})  # may be empty: the engine then ends a row when `done`
        end_mask = np.zeros(vocab.size, dtype=bool)  # numpy, not torch, builds masks: no thread-pool start-up
        end_mask[self.end_ids] = True
        self.end_mask = torch.from_numpy(end_mask)
        self.description = description
        self.accepting_masks: dict[int, torch.Tensor] = {}  # entry masks with the end tokens added
        self.canonical: dict[int, int] = {}  # state → the state whose entry it shares

    @property
    def min_bytes(self) -> float:
        """The fewest bytes of any valid output."""
        return float(self.automaton.dist[self.automaton.start])

    def entry(self, s: int) -> Entry:
        """The tokens allowed from state s (one vectorised trie walk per canonical state; cached)."""
        a, v = self.automaton, self.vocab
        c = self.canonical.get(s)
        if c is None:
            c = a.state(clamp_counts(a.nodes[s], v.max_depth + 1, v.clamp_memo))
            self.canonical[s] = c
        key = a.nodes[c].uid  # the entry depends on the expression and the vocabulary only
        e = v.entries.get(key)
        if e is not None:
            v.entries.move_to_end(key)
            return e
        if not a.computed[c]:
            a._fill(c)
        opening = int(np.count_nonzero(a.table[c]))  # bytes that may come next
        reached = self._walk_narrow(c) if opening <= NARROW_BYTES else None
        if reached is not None:  # the few nodes reached: the tokens ending there, in id order
            pairs = sorted((t, state) for node, state in reached for t in v.tokens_at.get(node, ()))
            ids = np.array([t for t, _ in pairs], dtype=np.int64)
            dist = a.dist[np.array([state for _, state in pairs], dtype=np.int64)]
        else:
            flat = self._walk_dense(c) if opening >= DENSE_BYTES else self._walk_sparse(c)
            ends_all = flat[v.token_flat]  # (n_valid,) state after each token
            alive = ends_all != DEAD
            ids = v.valid[alive]
            dist = a.dist[ends_all[alive]]
        mask = np.zeros(v.size, dtype=bool)
        mask[ids] = True
        e = Entry(
            ids,
            dist,
            torch.from_numpy(mask),
            float(dist.max()) if ids.size else -math.inf,
            float(dist.min()) if ids.size else math.inf,
        )
        v.entries[key] = e
        if len(v.entries) > ENTRY_CACHE:
            v.entries.popitem(last=False)
        return e

    # ---- the three walks: the state at every trie node, DEAD where the automaton refused a byte ----

    def _walk_sparse(self, c: int) -> np.ndarray:
        """Down the trie one level at a time, over the live nodes only (gathered per level)."""
        a, v = self.automaton, self.vocab
        flat = np.zeros(v.total, dtype=np.int32)
        flat[0] = c
        live = np.zeros(1, dtype=np.int64)  # live nodes of the current level (indices within it)
        states = np.array([c], dtype=np.int32)
        for d in range(v.max_depth):  # down one level for every live node at once
            starts = v.starts[d]
            lo, counts = starts[live], starts[live + 1] - starts[live]
            n = int(counts.sum())
            if n == 0:
                break
            first = np.cumsum(counts) - counts  # where each parent's children begin in the gathered list
            children = np.arange(n) - np.repeat(first - lo, counts)  # (n,) child indices within level d+1
            parents = np.repeat(states, counts)
            a.ensure(states)
            nxt = a.table[parents, v.bytes[d][children]]
            keep = nxt != DEAD
            live, states = children[keep], nxt[keep]
            flat[v.offsets[d + 1] + live] = states
        return flat

    def _walk_dense(self, c: int) -> np.ndarray:
        """Every node of every level at once: a node's state is its parent's state moved by its byte (the
        dead state's row is all dead, so dead subtrees stay dead). Two gathers a level, no bookkeeping: the
        fast walk when most of the trie is alive (inside a string, most tokens are)."""
        a, v = self.automaton, self.vocab
        flat = np.zeros(v.total, dtype=np.int32)
        flat[0] = c
        states = flat[:1]
        for d in range(v.max_depth):
            parent_states = states[v.parents[d]]
            missing = parent_states[~a.computed[parent_states]]
            if missing.size:
                a.ensure(np.unique(missing))
            states = a.table[parent_states, v.bytes[d]]
            flat[v.offsets[d + 1] : v.offsets[d + 2]] = states
        return flat

    def _walk_narrow(self, c: int) -> list[tuple[int, int]] | None:
        """Depth first in Python from a state few bytes may follow (a key, punctuation, a literal): it
        visits only the nodes the automaton lets through, a few dozen, where a vectorised level costs more
        in numpy calls than the nodes themselves. The (flat position, state) of every node reached below
        the root; None past NARROW_NODES of them."""
        a, v = self.automaton, self.vocab
        table, computed = a.table, a.computed
        starts, bytes_ = v.starts_list, v.bytes_list
        offsets = v.offsets
        reached: list[tuple[int, int]] = []  # (flat position, state)
        stack = [(0, 0, c)]  # (level, index within the level, state)
        while stack:
            d, i, s = stack.pop()
            if d == v.max_depth:
                continue
            if not computed[s]:
                a._fill(s)
                table, computed = a.table, a.computed  # filling may grow them
            row = table[s]
            lo, hi = starts[d][i], starts[d][i + 1]
            level_bytes = bytes_[d]
            if hi - lo > 8:  # many children (the root has ~256): look up the few bytes the state allows
                allowed = np.flatnonzero(row).tolist()
                children = (bisect_left(level_bytes, b, lo, hi) for b in allowed)
                chosen = [j for j, b in zip(children, allowed, strict=True) if j < hi and level_bytes[j] == b]
            else:
                chosen = list(range(lo, hi))
            for j in chosen:
                nxt = int(row[level_bytes[j]])
                if nxt != DEAD:
                    reached.append((offsets[d + 1] + j, nxt))
                    stack.append((d + 1, j, nxt))
            if len(reached) > NARROW_NODES:
                return None
        return reached

    def advance(self, s: int, token: int) -> int:
        """The state after `token` (FINISHED for an end token, DEAD for a token the state does not allow)."""
        if s in (DEAD, FINISHED):
            return s
        if token in self.end_ids:
            return FINISHED if self.automaton.accepting(s) else DEAD
        data = self.vocab.pieces[token] if 0 <= token < self.vocab.size else None
        if not data:
            return DEAD
        return self.automaton.walk(s, data)

    def allowed(self, s: int, left: int) -> torch.Tensor:
        """(V,) bool: the tokens allowed in state s with `left` tokens still to generate (this one included).
        A token must leave no more bytes to finish than tokens will be left after it; past that budget,
        only the tokens that finish the fastest."""
        if s in (DEAD, FINISHED):
            return self.end_mask
        e = self.entry(s)
        limit = max(left - 1, e.least)
        if e.most <= limit:
            if not self.automaton.accepting(s):
                return e.mask if e.ids.size else self.end_mask
            mask = self.accepting_masks.get(s)
            if mask is None:
                mask = self.accepting_masks[s] = e.mask | self.end_mask
            return mask
        chosen = np.zeros(self.vocab.size, dtype=bool)
        chosen[e.ids[e.dist <= limit]] = True
        if self.automaton.accepting(s):
            chosen[self.end_ids] = True
        return torch.from_numpy(chosen)

    def done(self, s: int) -> bool:
        """Whether a row in state s is complete: it ended, or it accepts and no token may follow."""
        if s == FINISHED:
            return True
        return s != DEAD and self.automaton.accepting(s) and self.entry(s).ids.size == 0

    def check_start(self) -> None:
        """Refuse a grammar whose first byte no token of this vocabulary can write (e.g. '{' missing
        from a character vocabulary)."""
        if not self.entry(self.automaton.start).ids.size and not self.automaton.accepting(self.automaton.start):
            raise UserError(
                f"{self.description or 'the constraint'}: the tokenizer has no token that can start the output; "
                "use a byte-level BPE or a character tokenizer with byte_fallback"
            )

    def tracker(self) -> GrammarTracker:
        return GrammarTracker(self)

    def matches(self, text: str) -> bool:
        """Whether `text` is a complete output of this grammar."""
        return self.automaton.matches(text.encode("utf-8"))


class GrammarTracker:
    """One row's state, pushed token by token by the engine, which ends the row once it is `done` (for a
    tokenizer without an end token, that is the only way a constrained row ends early)."""

    def __init__(self, grammar: TokenGrammar) -> None:
        self.grammar = grammar
        self.state = grammar.automaton.start

    def push(self, token: int) -> bool:
        """Advance by `token`; whether the output is now complete."""
        self.state = self.grammar.advance(self.state, token)
        return self.grammar.done(self.state)


class GrammarProcessor:
    """Masks every token the grammar does not allow next, per row; -inf elsewhere.

    The generated part of a row is what follows the history length seen at the first call (the prompt:
    every caller passes the prompt alone first). Rows are looked up by their generated tokens, so a row
    may be re-ordered or copied (beam search) between calls."""

    def __init__(self, grammar: TokenGrammar, max_new_tokens: int) -> None:
        self.grammar = grammar
        self.max_new_tokens = max_new_tokens
        self.start: int | None = None
        self.states: dict[tuple[int, ...], int] = {(): grammar.automaton.start}
        self._blocked_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def state_of(self, generated: tuple[int, ...]) -> int:
        s = self.states.get(generated)
        if s is None:
            s = self.grammar.advance(self.state_of(generated[:-1]), generated[-1])
            self.states[generated] = s
        return s

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = tokens.shape[1]
        generated = [tuple(row) for row in tokens[:, self.start :].tolist()]
        n = len(generated[0]) if generated else 0
        allowed = [self.grammar.allowed(self.state_of(row), self.max_new_tokens - n) for row in generated]
        self.states = {row: self.states[row] for row in generated}  # the next call extends these
        V = logits.shape[-1]
        if len(allowed) == 1:  # one row (the common case): a cached blocked-token mask, no stacking
            return logits.masked_fill(self._blocked(allowed[0], V).to(logits.device), -math.inf)
        masks = torch.stack(allowed)
        masks[~masks.any(dim=1)] = True  # a row that ended without an end token: its tokens are not used
        if masks.shape[1] != V:  # the model's rows beyond the tokenizer's ids are never allowed
            masks = torch.nn.functional.pad(masks, (0, V - masks.shape[1])) if masks.shape[1] < V else masks[:, :V]
        return logits.masked_fill(~masks.to(logits.device), -math.inf)

    def _blocked(self, mask: torch.Tensor, V: int) -> torch.Tensor:
        """The tokens `mask` does not allow, as a (V,) mask the logits' width (nothing blocked when it allows
        none: a row that ended without an end token, whose tokens are not used). Kept per mask object: the
        masks of cached entries come back step after step."""
        hit = self._blocked_cache.get(id(mask))
        if hit is not None and hit[0] is mask:
            return hit[1]
        if not bool(mask.any()):
            blocked = torch.zeros(V, dtype=torch.bool)
        else:
            m = mask[:V] if mask.shape[0] >= V else torch.nn.functional.pad(mask, (0, V - mask.shape[0]))
            blocked = ~m
        if len(self._blocked_cache) >= 256:
            self._blocked_cache.clear()
        self._blocked_cache[id(mask)] = (mask, blocked)  # the mask itself is kept, so its id stays its own
        return blocked
