"""The decoding loop: prompts in, completions out, one KV-cached model step per new token.

`complete` runs a batch of prompts of different lengths together: they are left-padded, and the
model's attention mask and per-row positions make padding invisible, so each row gets exactly the
tokens it would get alone. Each row stops on its own (end-of-text, a stop string, max_new_tokens);
the batch ends when every row has. `stream` yields the text of one prompt as it is decided.

Per step: logits of the last position only → the processors (see `processors.py`) → argmax
(greedy) or a draw from the sampler's own seeded `torch.Generator` → the token goes into the
preallocated sequence buffer and, through one model call, into the preallocated KV cache. When a
generation runs past the model's context (block_size), the cache is rebuilt from the last ¾ of the
context (a sliding window), so long generations keep going at O(context) per token on average.
Beam search lives in `beam.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from genloom.errors import UserError
from genloom.generation.config import GenerationConfig
from genloom.generation.processors import build_processors
from genloom.generation.text import TextAssembler

Decode = Callable[[list[int]], str]


@dataclass
class TokenLogprob:
    """One generated token with its log-probability under the model (raw logits, before any processor)."""

    token: int
    text: str
    logprob: float
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (id, text, logprob), most likely first


@dataclass
class Completion:
    """The result for one prompt."""

    text: str  # the continuation, without the prompt and without a stop string
    token_ids: list[int]  # generated ids (an end-of-text token that ended it is left out)
    finish_reason: Literal["length", "stop", "eos"]
    prompt_tokens: int  # prompt length after any truncation
    logprobs: list[TokenLogprob] | None = None


@dataclass
class Step:
    """What one decoding step decided for every row."""

    tokens: list[int]  # (B,) the next token of each row
    logprobs: list[float] | None = None  # (B,) its log-probability
    top: list[list[tuple[int, float]]] | None = None  # (B, n) alternatives


def fit_prompts(prompts: Sequence[Sequence[int]], block_size: int, cfg: GenerationConfig) -> list[list[int]]:
    """Check prompts against the context: an error, or (when asked) keep the last block_size tokens."""
    fitted = []
    for i, p in enumerate(prompts):
        if not p:
            raise UserError(f"prompt {i} is empty after tokenization")
        if len(p) > block_size:
            if cfg.context_overflow != "truncate":
                raise UserError(
                    f"prompt {i} has {len(p)} tokens, more than the model's context of {block_size}; "
                    "shorten it or pass context_overflow='truncate' (--truncate) to keep its last tokens"
                )
            p = p[-block_size:]  # sliding-window truncation: the end of the prompt matters most
        fitted.append(list(p))
    return fitted


def _model_step(
    model: nn.Module, ids: torch.Tensor, cache: object, mask: torch.Tensor | None
) -> torch.Tensor:  # (B, V) float32 logits of the last position
    return model(ids, cache=cache, attention_mask=mask, last_only=True)[:, -1].float()


@torch.inference_mode()
def decode_steps(
    model: nn.Module, prompts: list[list[int]], cfg: GenerationConfig, finished: list[bool]
) -> Iterator[Step]:
    """Yield one `Step` per new token for a batch of (fitted) prompts; stops early once the caller has
    marked every row in `finished`."""
    block_size = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    vocab = int(model.config.vocab_size)  # type: ignore[union-attr,arg-type]
    B, P = len(prompts), max(len(p) for p in prompts)
    total = P + cfg.max_new_tokens
    device = next(model.parameters()).device
    seq = torch.full((B, total), vocab, dtype=torch.long, device=device)  # padding = the id `vocab`
    valid = torch.zeros(B, total, dtype=torch.bool, device=device)
    for r, p in enumerate(prompts):
        seq[r, P - len(p) : P] = torch.tensor(p)  # left padding: every row ends at column P
        valid[r, P - len(p) : P] = True
    padded = any(len(p) < P for p in prompts)
    edits, warpers = build_processors(cfg, vocab)
    generator = torch.Generator(device=device).manual_seed(cfg.seed) if cfg.seed is not None else None
    n_top = cfg.top_logprobs

    cache = model.new_cache(B, min(block_size, total))  # type: ignore[operator]
    # with cfg.compile, one-token steps go through the model's fixed-shape (compiled) decoder
    step_function = getattr(model, "step_function", None)
    decoder = step_function(compiled=True) if cfg.compile and step_function is not None else None
    ids = seq[:, :P].masked_fill(~valid[:, :P], 0)
    logits = _model_step(model, ids, cache, valid[:, :P] if padded else None)  # prefill: (B, V)
    cur = P
    for step in range(cfg.max_new_tokens):
        history = seq[:, :cur]  # (B, cur) a view; padding counts as nothing
        scores = logits
        for proc in edits:
            scores = proc(history, scores)
        if cfg.greedy:
            next_ids = scores.argmax(dim=-1)  # (B,)
        else:
            for proc in warpers:
                scores = proc(history, scores)
            next_ids = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)[:, 0]  # (B,)
        out = Step(next_ids.tolist())
        if cfg.logprobs:
            logp = logits.log_softmax(dim=-1)  # (B, V) the model's own distribution
            out.logprobs = logp.gather(1, next_ids[:, None])[:, 0].tolist()
            if n_top:
                top = logp.topk(min(n_top, vocab), dim=-1)
                out.top = [
                    list(zip(i, v, strict=True)) for i, v in zip(top.indices.tolist(), top.values.tolist(), strict=True)
                ]
        seq[:, cur] = next_ids
        valid[:, cur] = True
        cur += 1
        yield out
        if all(finished) or step == cfg.max_new_tokens - 1:
            return
        if cache.length < cache.max_len:  # type: ignore[attr-defined]
            if decoder is not None:
                logits = decoder(next_ids[:, None], cache)
            else:
                logits = _model_step(model, next_ids[:, None], cache, None)
        else:  # the context is full: slide the window, keeping its last ¾
            keep = block_size - block_size // 4
            cache = model.new_cache(B, block_size)  # type: ignore[operator]
            window, window_valid = seq[:, cur - keep : cur], valid[:, cur - keep : cur]
            mask = window_valid if not bool(window_valid.all()) else None
            logits = _model_step(model, window.masked_fill(~window_valid, 0), cache, mask)


def complete(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    cfg: GenerationConfig,
    decode: Decode,
    eos_id: int | None = None,
) -> list[Completion]:
    """Generate a completion for every prompt (token ids), batched together."""
    block_size = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    fitted = fit_prompts(prompts, block_size, cfg)
    if cfg.num_beams > 1:
        from genloom.generation.beam import beam_search

        return [beam_search(model, p, cfg, decode, eos_id) for p in fitted]
    B = len(fitted)
    finished = [cfg.max_new_tokens == 0] * B
    texts = [TextAssembler(decode, cfg.stop) for _ in range(B)]
    ids: list[list[int]] = [[] for _ in range(B)]
    reasons: list[Literal["length", "stop", "eos"]] = ["length"] * B
    logprobs: list[list[TokenLogprob]] = [[] for _ in range(B)]
    check_stop = bool(cfg.stop)
    trackers = [cfg.grammar.tracker() if cfg.grammar is not None else None for _ in range(B)]  # constrained rows
    for step in decode_steps(model, fitted, cfg, finished) if cfg.max_new_tokens else ():
        for r, token in enumerate(step.tokens):
            if finished[r]:
                continue
            if token == eos_id and cfg.stop_at_eos:
                finished[r], reasons[r] = True, "eos"
                continue
            ids[r].append(token)
            if cfg.logprobs and step.logprobs is not None:
                top = [(t, decode([t]), lp) for t, lp in step.top[r]] if step.top else []
                logprobs[r].append(TokenLogprob(token, decode([token]), step.logprobs[r], top))
            if check_stop:
                texts[r].push(token)
                if texts[r].stopped:
                    finished[r], reasons[r] = True, "stop"
            tracker = trackers[r]
            if tracker is not None and tracker.push(token):  # the constrained output is complete
                finished[r], reasons[r] = True, "stop"
            if len(ids[r]) == cfg.max_new_tokens:
                finished[r] = True
    out = []
    for r in range(B):
        text = texts[r].text if check_stop else decode(ids[r])
        out.append(Completion(text, ids[r], reasons[r], len(fitted[r]), logprobs[r] if cfg.logprobs else None))
    return out


def stream(
    model: nn.Module, prompt: Sequence[int], cfg: GenerationConfig, decode: Decode, eos_id: int | None = None
) -> Iterator[str]:
    """Yield the continuation of one prompt piece by piece, each piece final (whole characters, no
    part of a stop string)."""
    if cfg.num_beams > 1:
        raise UserError("streaming needs num_beams=1: beam search only knows its result at the end")
    block_size = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    fitted = fit_prompts([prompt], block_size, cfg)  # bad input fails here, before the first piece
    return _stream(model, fitted, cfg, decode, eos_id)


def _stream(
    model: nn.Module, fitted: list[list[int]], cfg: GenerationConfig, decode: Decode, eos_id: int | None
) -> Iterator[str]:
    if cfg.max_new_tokens == 0:
        return
    finished = [False]
    text = TextAssembler(decode, cfg.stop)
    tracker = cfg.grammar.tracker() if cfg.grammar is not None else None
    for n, step in enumerate(decode_steps(model, fitted, cfg, finished), start=1):
        token = step.tokens[0]
        if token == eos_id and cfg.stop_at_eos:
            finished[0] = True
            break
        piece = text.push(token)
        if piece:
            yield piece
        if text.stopped or n == cfg.max_new_tokens or (tracker is not None and tracker.push(token)):
            finished[0] = True
    rest = text.finish()
    if rest:
        yield rest
