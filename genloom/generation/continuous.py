"""Continuous batching: requests join and leave a running batch between decode steps.

Iteration-level scheduling as in Yu et al. 2022 ("Orca: A Distributed Serving System for
Transformer-Based Generative Models", OSDI '22, §3.1): the batch is re-formed at every step instead of
once per batch, so a new request does not wait for the longest one in flight, and a finished (or
cancelled) one frees its row at once.

`ContinuousBatcher` keeps one `KVCache` for all running rows. Its rows share slots (see
`genloom.nn.attention.KVCache`), so rows are right-aligned: every row's newest token sits in the last
filled slot and a row that joined later has invalid (masked) slots on its left, exactly like the
left padding of `engine.complete`. Joining a request = prefilling its prompt alone in a cache of its
own, then rebuilding the shared cache with the new row appended (`_right_align`), sized to the rows'
spans plus the most tokens any row may still produce; when the shared cache is full, the same function
drops the leading slots no row uses any more. A row needs at most block_size slots in its lifetime
(prompt + max_new_tokens ≤ block_size is checked in `add`), so there is always room after that
compaction: no sliding window here.

Each row keeps its own `GenerationConfig`: its own processors (temperature, top-k/p, penalties, ...),
applied to its own (1, V) logits, and its own seeded `torch.Generator`; its tokens are then the
tokens the same request gets decoded alone (the model's rows do not interact, see
tests/generation/test_continuous.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from genloom.errors import UserError
from genloom.generation.config import GenerationConfig
from genloom.generation.engine import Completion, TokenLogprob, fit_prompts
from genloom.generation.processors import Processor, build_processors, needs_history
from genloom.generation.text import TextAssembler

FinishReason = Literal["length", "stop", "eos", "cancelled", "error"]


@dataclass
class DecodeRow:
    """One request in the running batch: its options, its text so far and how it ended."""

    prompt: list[int]  # fitted prompt ids
    cfg: GenerationConfig
    text: TextAssembler
    generator: torch.Generator | None  # its own sampler state (None: torch's global generator)
    history: torch.Tensor | None  # (1, P + max_new_tokens) prompt and generated ids, for the penalties
    edits: list[Processor] = field(default_factory=list)  # its processors, in `build_processors` order
    warpers: list[Processor] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # generated ids (an end-of-text that ended it is left out)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None  # None while it runs
    cancelled: bool = False  # set by the caller (e.g. the client went away); it leaves at the next step
    error: str | None = None  # why this row failed ("error" finish): it leaves alone, the others go on
    tracker: Any = None  # the constraint's state (cfg.grammar), which ends the row once its output is complete

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def completion(self) -> Completion:
        """The result in the engine's form ("cancelled" is reported as "length": it was cut short)."""
        reason: Literal["length", "stop", "eos"] = "length"
        if self.finish_reason == "stop" or self.finish_reason == "eos":
            reason = self.finish_reason
        logprobs = self.logprobs if self.cfg.logprobs else None
        return Completion(self.text.text, self.ids, reason, len(self.prompt), logprobs)


def _first_valid_slot(cache: object) -> int:
    """The leftmost slot that some row still uses."""
    length = cache.length  # type: ignore[attr-defined]
    valid = cache.valid[:, :length]  # type: ignore[attr-defined]  # (B, L)
    return int(valid.any(dim=0).int().argmax())  # every row has ≥ 1 real token, so some column is True


def _right_align(model: nn.Module, parts: Sequence[object], to_come: int, block_size: int) -> object:
    """One padded `KVCache` holding the rows of every cache in `parts` (in order), each part's last
    filled slot at the new last slot, and no leading slot that no row uses; with room for `to_come` more
    tokens (the most any row may still feed back), at most block_size slots. Sized to what the rows can
    still use, not to the context: a 2k-token context costs SmolLM2-135M 94 MB of keys and values per
    row, so 16 rows preallocated at its 8k context would hold 6 GB for requests of a few hundred tokens."""
    spans = [p.length - _first_valid_slot(p) for p in parts]  # type: ignore[attr-defined]
    L = max(spans)  # slots the merged cache needs
    rows = sum(p.valid.shape[0] for p in parts)  # type: ignore[attr-defined]
    out = model.new_cache(rows, min(block_size, L + to_come))  # type: ignore[operator]
    out.valid[:, :L] = False
    r = 0
    for p in parts:
        b, n = p.valid.shape[0], p.length  # type: ignore[attr-defined]
        m = min(n, L)  # the last m slots of the part hold all its real tokens
        for i in range(len(out.k)):
            out.k[i][r : r + b, :, L - m : L] = p.k[i][:, :, n - m : n]  # type: ignore[attr-defined]
            out.v[i][r : r + b, :, L - m : L] = p.v[i][:, :, n - m : n]  # type: ignore[attr-defined]
        out.valid[r : r + b, L - m : L] = p.valid[:, n - m : n]  # type: ignore[attr-defined]
        out.positions[r : r + b, L - m : L] = p.positions[:, n - m : n]  # type: ignore[attr-defined]
        out.seen[r : r + b] = p.seen  # type: ignore[attr-defined]
        r += b
    out.length = L
    out.padded = True  # rows now sit at different positions: the model takes the per-row path
    return out


class ContinuousBatcher:
    """The running batch of one language model. Not thread-safe: one thread calls `add` and `step`."""

    def __init__(
        self, model: nn.Module, decode: Callable[[list[int]], str], eos_id: int | None, max_batch: int = 16
    ) -> None:
        if max_batch < 1:
            raise UserError(f"max_batch must be >= 1, got {max_batch}")
        self.model = model
        self.decode = decode
        self.eos_id = eos_id
        self.max_batch = max_batch
        self.block_size = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
        self.vocab = int(model.config.vocab_size)  # type: ignore[union-attr,arg-type]
        self.rows: list[DecodeRow] = []  # in the cache's row order
        self.cache: object | None = None
        self.logits: torch.Tensor | None = None  # (B, V) next-token logits of every row

    @property
    def free(self) -> int:
        """How many more rows may join now."""
        return self.max_batch - len(self.rows)

    def check(self, prompt: Sequence[int], cfg: GenerationConfig) -> list[int]:
        """The fitted prompt, or a `UserError` naming what does not fit the context."""
        if cfg.num_beams > 1:
            raise UserError("num_beams > 1 (beam search) is not served by continuous batching")
        (fitted,) = fit_prompts([prompt], self.block_size, cfg)
        if len(fitted) + cfg.max_new_tokens > self.block_size:
            raise UserError(
                f"prompt of {len(fitted)} tokens + max_tokens {cfg.max_new_tokens} is more than the model's "
                f"context of {self.block_size} tokens; lower max_tokens to at most {self.block_size - len(fitted)}"
            )
        build_processors(cfg, self.vocab)  # token ids in logit_bias / banned_tokens are checked here
        return fitted

    @torch.inference_mode()
    def add(self, prompt: Sequence[int], cfg: GenerationConfig) -> DecodeRow:
        """Prefill `prompt` and join the batch; its first token is chosen at the next `step`."""
        if self.free <= 0:
            raise RuntimeError("the batch is full: check `free` before adding")
        fitted = self.check(prompt, cfg)
        device = next(self.model.parameters()).device
        edits, warpers = build_processors(cfg, self.vocab)
        history = None
        if needs_history(edits):
            history = torch.full((1, len(fitted) + cfg.max_new_tokens), self.vocab, dtype=torch.long, device=device)
            history[0, : len(fitted)] = torch.tensor(fitted)
        generator = torch.Generator(device=device).manual_seed(cfg.seed) if cfg.seed is not None else None
        row = DecodeRow(fitted, cfg, TextAssembler(self.decode, cfg.stop), generator, history, edits, warpers)
        row.tracker = cfg.grammar.tracker() if cfg.grammar is not None else None
        if cfg.max_new_tokens == 0:
            row.finish_reason = "length"
            return row
        cache = self.model.new_cache(1, len(fitted))  # type: ignore[operator]
        ids = torch.tensor([fitted], device=device)
        logits = self.model(ids, cache=cache, last_only=True)[:, -1].float()  # (1, V) prefill alone
        parts = [cache] if self.cache is None else [self.cache, cache]
        self.cache = _right_align(self.model, parts, max(cfg.max_new_tokens, self._to_come()), self.block_size)
        self.rows.append(row)
        self.logits = logits if self.logits is None else torch.cat((self.logits, logits))
        return row

    def _to_come(self) -> int:
        """The most tokens any running row may still feed back into the cache."""
        return max((row.cfg.max_new_tokens - len(row.ids) for row in self.rows), default=0)

    def _choose(self, row: DecodeRow, logits: torch.Tensor) -> int:
        """The next token of one row from its (1, V) logits, through its own processors and generator
        (the same operations as `engine.decode_steps` on a batch of one)."""
        history = row.history[:, : len(row.prompt) + len(row.ids)] if row.history is not None else None
        scores = logits
        for proc in row.edits:
            scores = proc(history, scores)  # type: ignore[arg-type]  # history is set when a processor reads it
        if row.cfg.greedy:
            return int(scores.argmax(dim=-1))
        for proc in row.warpers:
            scores = proc(history, scores)  # type: ignore[arg-type]
        return self._draw(row, scores.softmax(dim=-1))

    def _choose_all(self, active: list[int]) -> dict[int, int]:
        """The next token of each row in `active`. Rows whose processors read only the logits and have
        the same settings are processed as one (G, V) block (every processor works row by row, so each
        row's scores are the ones it gets alone), then each draws with its own generator."""
        assert self.logits is not None
        groups: dict[tuple[object, ...], list[int]] = {}
        tokens: dict[int, int] = {}
        for r in active:
            cfg = self.rows[r].cfg
            if self.rows[r].edits:  # penalties, bias, bans: row by row
                tokens[r] = self._choose(self.rows[r], self.logits[r : r + 1])
            else:
                groups.setdefault((cfg.greedy, cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p), []).append(r)
        for members in groups.values():
            first = self.rows[members[0]]
            scores = self.logits[members]  # (G, V)
            if first.cfg.greedy:
                tokens.update(zip(members, scores.argmax(dim=-1).tolist(), strict=True))
                continue
            for proc in first.warpers:
                scores = proc(None, scores)  # type: ignore[arg-type]  # warpers read the logits only
            probs = scores.softmax(dim=-1)  # (G, V)
            for g, r in enumerate(members):
                tokens[r] = self._draw(self.rows[r], probs[g : g + 1])
        return tokens

    def _draw(self, row: DecodeRow, probs: torch.Tensor) -> int:
        """One token from a (1, V) distribution with the row's own generator; a distribution with NaN or
        inf (a numerically hopeless request) fails this row alone (-1), never the batch."""
        try:
            return int(torch.multinomial(probs, 1, generator=row.generator)[0, 0])
        except RuntimeError as e:
            row.error = f"sampling failed: {str(e).splitlines()[0]}"
            return -1

    def _accept(self, row: DecodeRow, token: int, logits: torch.Tensor) -> str:
        """Record `token` for `row`; returns the text that became final (as `engine.complete` decides)."""
        cfg = row.cfg
        if token == self.eos_id and cfg.stop_at_eos:
            row.finish_reason = "eos"
            return row.text.finish()
        if row.history is not None:
            row.history[0, len(row.prompt) + len(row.ids)] = token
        row.ids.append(token)
        if cfg.logprobs:
            logp = logits.log_softmax(dim=-1)[0]  # (V,) the model's own distribution
            top = []
            if cfg.top_logprobs:
                best = logp.topk(min(cfg.top_logprobs, self.vocab))
                top = [
                    (t, self.decode([t]), v) for t, v in zip(best.indices.tolist(), best.values.tolist(), strict=True)
                ]
            row.logprobs.append(TokenLogprob(token, self.decode([token]), float(logp[token]), top))
        piece = row.text.push(token)
        if row.text.stopped or (row.tracker is not None and row.tracker.push(token)):
            row.finish_reason = "stop"
        elif len(row.ids) == cfg.max_new_tokens:
            row.finish_reason = "length"
        if row.finished:
            piece += row.text.finish()
        return piece

    @torch.inference_mode()
    def step(self) -> list[tuple[DecodeRow, str]]:
        """One token for every running row: returns (row, new text) for each, finished rows included
        (they have left the batch); cancelled rows leave without a token."""
        if not self.rows:
            return []
        assert self.logits is not None and self.cache is not None
        events: list[tuple[DecodeRow, str]] = []
        keep: list[int] = []
        next_ids: list[int] = []
        tokens = self._choose_all([r for r, row in enumerate(self.rows) if not row.cancelled])
        for r, row in enumerate(self.rows):
            if row.cancelled:
                row.finish_reason = "cancelled"
                events.append((row, ""))
                continue
            if row.error is not None:  # its own sampling failed: it leaves, the batch goes on
                row.finish_reason = "error"
                events.append((row, ""))
                continue
            token = tokens[r]
            events.append((row, self._accept(row, token, self.logits[r : r + 1])))
            if not row.finished:
                keep.append(r)
                next_ids.append(token)
        if not keep:
            self.rows, self.cache, self.logits = [], None, None
            return events
        if len(keep) < len(self.rows):  # finished rows leave the batch
            self.cache.reorder(torch.tensor(keep, device=self.logits.device))  # type: ignore[attr-defined]
            self.rows = [self.rows[r] for r in keep]
        if self.cache.length == self.cache.max_len:  # type: ignore[attr-defined]  # full: drop unused slots
            self.cache = _right_align(self.model, [self.cache], self._to_come(), self.block_size)
        ids = torch.tensor(next_ids, device=self.logits.device)[:, None]  # (B, 1)
        self.logits = self.model(ids, cache=self.cache, last_only=True)[:, -1].float()  # (B, V)
        return events
