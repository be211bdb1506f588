"""Logits processors: small callables `processor(tokens, logits) -> logits`, applied in a fixed order.

`tokens` is (B, T): every token so far (prompt and generated) of each row, with padding given the
out-of-range id `vocab_size` so that it counts as nothing; `logits` is (B, V) float32 for the next
token. `build_processors` turns a `GenerationConfig` into the list, in this order (the order of
Hugging Face's `generation/logits_process.py` pipeline, where these have a counterpart):

1. repetition penalty (Keskar et al. 2019, CTRL §4.1) — on the raw scores, so its sign rule sees them;
2. frequency and presence penalties (OpenAI's definition) — also on raw scores; then no repeated
   n-grams (Hugging Face's `no_repeat_ngram_size`, from Paulus et al. 2017);
3. logit bias — the user's explicit preferences;
4. banned tokens — so no bias can bring a banned token back;
4a. the text watermark (Kirchenbauer et al. 2023: + δ on the previous token's green list, `watermark.py`);
4b. the regurgitation guard (`verbatim.py`: tokens that would complete a verbatim copy of the training
   text get -inf) — after the watermark and bias, so neither can bring such a token back;
4c. the grammar of a constraint (json_schema, regex, choice: `constrained/`) — the last edit, so nothing
   can bring back a token the grammar forbids;
5. temperature — rescales everything above before truncation;
6. top-k, 7. top-p (Holtzman et al. 2020), 8. min-p (Nguyen et al. 2024) — truncations of the
   tempered distribution.

Greedy decoding takes the argmax after step 4: steps 5–8 never change which token is most likely.
A setting that changes nothing (temperature 1, top_k None, penalty 1, ...) adds no processor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genloom.errors import UserError
from genloom.generation.config import GenerationConfig
from genloom.generation.constrained.automaton import GrammarProcessor
from genloom.generation.verbatim import VerbatimGuard
from genloom.generation.watermark import Watermark

NEG_INF = float("-inf")


def token_counts(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, V) how often each token occurs in each row of `tokens` (B, T); ids ≥ V (padding) are ignored."""
    counts = torch.zeros(tokens.shape[0], vocab_size + 1, dtype=torch.float32, device=tokens.device)
    counts.scatter_add_(1, tokens.clamp(max=vocab_size), torch.ones_like(tokens, dtype=torch.float32))
    return counts[:, :vocab_size]


class RepetitionPenalty:
    """Seen tokens: positive logits divided by `penalty`, negative ones multiplied (CTRL)."""

    def __init__(self, penalty: float) -> None:
        self.penalty = penalty

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        seen = token_counts(tokens, logits.shape[-1]) > 0  # (B, V)
        penalized = torch.where(logits < 0, logits * self.penalty, logits / self.penalty)
        return torch.where(seen, penalized, logits)


class FrequencyPresencePenalty:
    """logit -= frequency · count + presence · [count > 0], counting each token in the row so far."""

    def __init__(self, frequency: float, presence: float) -> None:
        self.frequency = frequency
        self.presence = presence

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        counts = token_counts(tokens, logits.shape[-1])  # (B, V)
        return logits - self.frequency * counts - self.presence * (counts > 0).float()


class NoRepeatNGram:
    """Tokens that would complete an n-gram already in the row (prompt included) get -inf."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        n, (B, T), V = self.n, tokens.shape, logits.shape[-1]
        if n > T:
            return logits
        grams = tokens.unfold(1, n, 1)  # (B, T - n + 1, n): every n-gram so far
        prefix = tokens[:, T - n + 1 :]  # (B, n - 1): what the next token would extend
        seen = (grams[:, :, : n - 1] == prefix[:, None, :]).all(-1)  # (B, T - n + 1)
        rows, at = seen.nonzero(as_tuple=True)
        follow = grams[rows, at, n - 1]
        real = follow < V  # padding has the id V
        banned = torch.zeros(B, V, dtype=torch.bool, device=logits.device)
        banned[rows[real], follow[real]] = True
        return logits.masked_fill(banned, NEG_INF)


class LogitBias:
    """Adds a fixed bias to chosen token ids."""

    def __init__(self, bias: dict[int, float], vocab_size: int) -> None:
        check_token_ids(bias, vocab_size, "logit_bias")
        self.bias = torch.zeros(vocab_size)
        for token, value in bias.items():
            self.bias[token] = value

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.bias.to(logits.device)


class BannedTokens:
    """Sets banned token ids to -inf, so they are never chosen."""

    def __init__(self, banned: Sequence[int], vocab_size: int) -> None:
        check_token_ids(banned, vocab_size, "banned_tokens")
        self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long)

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits.index_fill(-1, self.banned.to(logits.device), NEG_INF)


class Temperature:
    """logits / T: T < 1 sharpens the distribution, T > 1 flattens it."""

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


class TopK:
    """Keep the k highest logits (ties with the k-th kept too), the rest to -inf."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, self.k, dim=-1).values[:, -1:]  # (B, 1) the k-th best score
        return logits.masked_fill(logits < kth, NEG_INF)


class TopP:
    """Nucleus: keep the most likely tokens until their probabilities sum to ≥ p (always ≥ 1 token)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=False)  # (B, V) ascending
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - self.p  # the least likely tokens whose total mass is ≤ 1 - p
        drop[:, -1] = False  # the most likely token always stays
        return logits.masked_fill(drop.scatter(1, order, drop), NEG_INF)


class MinP:
    """Drop tokens whose probability is below min_p × the top token's probability."""

    def __init__(self, min_p: float) -> None:
        self.min_p = min_p

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(dim=-1)
        threshold = self.min_p * probs.max(dim=-1, keepdim=True).values  # (B, 1)
        return logits.masked_fill(probs < threshold, NEG_INF)


Processor = (
    RepetitionPenalty
    | FrequencyPresencePenalty
    | NoRepeatNGram
    | LogitBias
    | BannedTokens
    | Temperature
    | TopK
    | TopP
    | MinP
    | GrammarProcessor
    | Watermark
    | VerbatimGuard
)


def check_token_ids(ids: Sequence[int] | dict[int, float], vocab_size: int, name: str) -> None:
    for token in ids:
        if not isinstance(token, int) or not 0 <= token < vocab_size:
            raise UserError(f"{name}: token id {token!r} is not in the vocabulary (ids 0..{vocab_size - 1})")


def build_processors(cfg: GenerationConfig, vocab_size: int) -> tuple[list[Processor], list[Processor]]:
    """The (edits, warpers) a config asks for, each list in application order; greedy and beam
    search use the edits only."""
    edits: list[Processor] = []
    if cfg.repetition_penalty != 1.0:
        edits.append(RepetitionPenalty(cfg.repetition_penalty))
    if cfg.frequency_penalty or cfg.presence_penalty:
        edits.append(FrequencyPresencePenalty(cfg.frequency_penalty, cfg.presence_penalty))
    if cfg.no_repeat_ngram_size:
        edits.append(NoRepeatNGram(cfg.no_repeat_ngram_size))
    if cfg.logit_bias:
        edits.append(LogitBias(cfg.logit_bias, vocab_size))
    if cfg.banned_tokens:
        edits.append(BannedTokens(cfg.banned_tokens, vocab_size))
    if cfg.watermark:
        if cfg.watermark_key is None:
            raise UserError(
                "watermark needs the run's key: generate through a loaded run (gl.load(run).generate(..., watermark=True))"
            )
        edits.append(Watermark(cfg.watermark_key, cfg.watermark_gamma, cfg.watermark_delta))
    if cfg.block_verbatim:
        if cfg.verbatim_index is None:
            raise UserError(
                "block_verbatim needs the run's training-text index: generate through a loaded run "
                "(gl.load(run).generate(..., block_verbatim=50))"
            )
        edits.append(cfg.verbatim_index.guard(cfg.block_verbatim))
    if cfg.grammar is not None:
        edits.append(GrammarProcessor(cfg.grammar, cfg.max_new_tokens))
    elif cfg.json_schema is not None or cfg.regex is not None or cfg.choice is not None:
        raise UserError(
            "json_schema/regex/choice need the tokenizer: generate through a loaded model (lm.generate), or "
            "compile them with genloom.generation.constrained.bind(cfg, tokenizer)"
        )
    warpers: list[Processor] = []
    if cfg.greedy:
        return edits, warpers
    if cfg.temperature != 1.0:
        warpers.append(Temperature(cfg.temperature))
    if cfg.top_k is not None and cfg.top_k < vocab_size:
        warpers.append(TopK(cfg.top_k))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        warpers.append(TopP(cfg.top_p))
    if cfg.min_p:
        warpers.append(MinP(cfg.min_p))
    return edits, warpers


def needs_history(processors: Sequence[Processor]) -> bool:
    """Whether any processor reads the tokens so far (the others look at the logits only)."""
    return any(
        isinstance(
            p,
            RepetitionPenalty | FrequencyPresencePenalty | NoRepeatNGram | GrammarProcessor | Watermark | VerbatimGuard,
        )
        for p in processors
    )
