"""Beam search (e.g. Graves 2012; Wu et al. 2016 for the length penalty), one prompt at a time.

The prompt is run once and its KV cache copied to `num_beams` rows. Each step scores every
continuation of every beam by its total log-probability (after the edit processors: penalties, bias,
bans), keeps the 2·num_beams best candidates, moves those ending in end-of-text to the finished
hypotheses and continues with the best num_beams others, re-ordering the cache rows to follow their
beams. A hypothesis is ranked by sum(log p) / length ** length_penalty (length in generated tokens);
`early_stopping` ends the search as soon as num_beams hypotheses are finished, otherwise it ends when
no running beam can beat the worst of them, as in Hugging Face's `BeamSearchScorer`.
"""

from __future__ import annotations

import torch
from torch import nn

from genloom.errors import UserError
from genloom.generation.config import GenerationConfig
from genloom.generation.engine import Completion, Decode
from genloom.generation.processors import build_processors


@torch.inference_mode()
def beam_search(
    model: nn.Module, prompt: list[int], cfg: GenerationConfig, decode: Decode, eos_id: int | None
) -> Completion:
    """The best hypothesis for one prompt; a stop string cuts its text afterwards."""
    if cfg.logprobs:
        raise UserError("logprobs are not available with beam search (num_beams > 1)")
    block_size = int(model.config.block_size)  # type: ignore[union-attr,arg-type]
    vocab = int(model.config.vocab_size)  # type: ignore[union-attr,arg-type]
    P, nb = len(prompt), cfg.num_beams
    if P + cfg.max_new_tokens > block_size:
        raise UserError(
            f"beam search needs prompt + max_new_tokens ≤ the context of {block_size} tokens, got {P} + {cfg.max_new_tokens}"
        )
    if cfg.max_new_tokens == 0:
        return Completion("", [], "length", P)
    if cfg.grammar is not None and not (eos_id is not None and cfg.stop_at_eos):
        raise UserError("beam search with a constraint needs a tokenizer with an end-of-text token")
    edits, _ = build_processors(cfg, vocab)
    device = next(model.parameters()).device
    cache = model.new_cache(1, P + cfg.max_new_tokens)  # type: ignore[operator]
    ids = torch.tensor([prompt], device=device)
    logits = model(ids, cache=cache, last_only=True)[:, -1].float()  # (1, V): the prompt runs once
    cache.reorder(torch.zeros(nb, dtype=torch.long, device=device))  # ... and is shared by every beam
    logits = logits.expand(nb, vocab)
    seqs = ids.expand(nb, P)  # (nb, P + generated)
    beam_scores = torch.full((nb,), -1e9, device=device)
    beam_scores[0] = 0.0  # all beams start identical: only the first may expand at step 0
    finished: list[tuple[float, list[int], bool]] = []  # (score, tokens, ended with end-of-text)
    use_eos = eos_id is not None and cfg.stop_at_eos
    done = False

    def score(total: float, length: int) -> float:
        return total / (length**cfg.length_penalty)

    for step in range(cfg.max_new_tokens):
        scores = logits.log_softmax(dim=-1)  # (nb, V)
        for proc in edits:
            scores = proc(seqs, scores)
        total = (scores + beam_scores[:, None]).view(-1)  # (nb·V,) every continuation of every beam
        top_scores, top_index = total.topk(2 * nb)
        beams, tokens, new_scores = [], [], []
        for rank, (s, i) in enumerate(zip(top_scores.tolist(), top_index.tolist(), strict=True)):
            beam, token = divmod(i, vocab)
            if use_eos and token == eos_id:
                if rank < nb:  # an end-of-text among the best nb candidates finishes a hypothesis
                    finished.append((score(s, step + 1), seqs[beam, P:].tolist(), True))
                continue
            beams.append(beam)
            tokens.append(token)
            new_scores.append(s)
            if len(beams) == nb:
                break
        finished = sorted(finished, key=lambda h: h[0], reverse=True)[:nb]
        index = torch.tensor(beams, device=device)
        next_ids = torch.tensor(tokens, device=device)
        seqs = torch.cat((seqs.index_select(0, index), next_ids[:, None]), dim=1)
        beam_scores = torch.tensor(new_scores, device=device)
        if len(finished) == nb:
            best_possible = score(new_scores[0], step + 1)
            done = cfg.early_stopping or finished[-1][0] >= best_possible
        if done or step == cfg.max_new_tokens - 1:
            break
        cache.reorder(index)
        logits = model(next_ids[:, None], cache=cache, last_only=True)[:, -1].float()
    if not done:  # the running beams compete with the finished ones
        n = seqs.shape[1] - P
        finished += [(score(s, n), seqs[b, P:].tolist(), False) for b, s in enumerate(beam_scores.tolist())]
    _, best, ended = max(finished, key=lambda h: h[0])
    text = decode(best)
    reason: str = "eos" if ended else "length"
    cut = min((at for at in (text.find(s) for s in cfg.stop) if at >= 0), default=-1)
    if cut >= 0:
        text, reason = text[:cut], "stop"
    return Completion(text, best, reason, P)  # type: ignore[arg-type]
