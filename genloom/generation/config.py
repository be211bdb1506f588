"""`GenerationConfig`: every decoding option in one dataclass, checked when it is built.

The names follow Hugging Face `GenerationConfig` and the OpenAI completions API where they exist
(`top_p`, `repetition_penalty`, `frequency_penalty`, `logit_bias`, `stop`, `logprobs`), so options
carry over from either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from genloom.errors import UserError

MIN_SCALE = 1e-3  # the smallest temperature and repetition penalty: logits / 1e-3 stay finite in float32


@dataclass
class GenerationConfig:
    max_new_tokens: int = 200  # tokens to generate per prompt (fewer if a stop or end-of-text comes first)
    temperature: float = 1.0  # divides the logits; 0 (or less) means greedy decoding
    top_k: int | None = None  # sample among the k most likely tokens only
    top_p: float | None = None  # nucleus sampling: the smallest set of tokens with this much probability
    min_p: float | None = None  # drop tokens less likely than min_p × the most likely token's probability
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text (CTRL, Keskar et al. 2019)
    no_repeat_ngram_size: int = 0  # > 0: never generate a token that repeats an n-gram of this size in the text
    frequency_penalty: float = 0.0  # subtracted from a token's logit once per earlier occurrence
    presence_penalty: float = 0.0  # subtracted once from the logit of any token that already occurred
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id → added to its logit
    banned_tokens: tuple[int, ...] = ()  # token ids that are never generated
    stop: tuple[str, ...] = ()  # strings that end a completion (matched across tokens, not in the output)
    stop_at_eos: bool = True  # end a completion at the tokenizer's end-of-text token
    seed: int | None = None  # seeds the sampler's own generator: same seed, same text
    num_beams: int = 1  # > 1: beam search (deterministic) with this many beams per prompt
    length_penalty: float = 1.0  # beam score = sum of log-probs / length ** length_penalty
    early_stopping: bool = False  # beam search: stop as soon as num_beams hypotheses are finished
    logprobs: bool = False  # report each generated token's log-probability
    top_logprobs: int = 0  # and this many most likely alternatives at each step
    context_overflow: Literal["error", "truncate"] = "error"  # prompt longer than the context: error, or keep its end
    compile: bool = False  # torch.compile the one-token decode step: ~10-30 s once per batch and length, then
    # faster tokens for small models (their step is bound by per-op overhead, not arithmetic)
    json_schema: Any = None  # the output is JSON valid under this schema (a dict; True: any JSON value); docs/tools.md
    regex: str | None = None  # the whole output matches this regular expression
    choice: tuple[str, ...] | None = None  # the output is exactly one of these strings
    grammar: Any = None  # the three above compiled for a tokenizer (`generation.constrained.bind` sets it)
    # responsible generation (docs/responsible.md): both need the run's files, which a loaded run attaches
    block_verbatim: int = 0  # > 0: never output a span of this many characters copied from the training text
    watermark: bool = False  # Kirchenbauer et al. 2023: bias green tokens so `genloom detect` can tell the text
    watermark_gamma: float = 0.25  # share of the vocabulary on each step's green list
    watermark_delta: float = 2.0  # added to green logits (before temperature)
    verbatim_index: Any = None  # the run's training-text index for block_verbatim (set by the loaded run)
    watermark_key: Any = None  # the run's secret key for watermark (set by the loaded run; never printed)

    def __post_init__(self) -> None:
        for name in ("temperature", "repetition_penalty", "frequency_penalty", "presence_penalty", "length_penalty"):
            if not math.isfinite(getattr(self, name)):  # NaN passes every range check written as `x <= 0`
                raise UserError(f"{name} must be a finite number, got {getattr(self, name)}")
        for name in ("top_p", "min_p"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise UserError(f"{name} must be a finite number, got {value}")
        if any(not math.isfinite(v) for v in self.logit_bias.values()):
            raise UserError("logit_bias: every bias must be a finite number")
        if 0 < self.temperature < MIN_SCALE:  # logits / 1e-300 overflow to inf and sampling fails
            raise UserError(
                f"temperature must be 0 (greedy) or at least {MIN_SCALE}, got {self.temperature}; "
                "use 0 for greedy decoding"
            )
        if not MIN_SCALE <= self.repetition_penalty <= 1 / MIN_SCALE:  # divides or multiplies the logits
            raise UserError(
                f"repetition_penalty must be in [{MIN_SCALE}, {1 / MIN_SCALE:g}] (1 means none), "
                f"got {self.repetition_penalty}"
            )
        if self.no_repeat_ngram_size < 0:
            raise UserError(f"no_repeat_ngram_size must be >= 0 (0: off), got {self.no_repeat_ngram_size}")
        if self.max_new_tokens < 0:
            raise UserError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.top_k is not None and self.top_k <= 0:
            raise UserError(f"top_k must be a positive integer, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.min_p is not None and not 0.0 <= self.min_p <= 1.0:
            raise UserError(f"min_p must be in [0, 1], got {self.min_p}")
        if self.num_beams < 1:
            raise UserError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.top_logprobs < 0:
            raise UserError(f"top_logprobs must be >= 0, got {self.top_logprobs}")
        if self.context_overflow not in ("error", "truncate"):
            raise UserError(f"context_overflow must be 'error' or 'truncate', got {self.context_overflow!r}")
        if any(not s for s in self.stop):
            raise UserError("stop: an empty stop string would end every completion at once")
        given = [n for n in ("json_schema", "regex", "choice") if getattr(self, n) is not None]
        if len(given) > 1:
            raise UserError(f"give one constraint, not {' and '.join(given)}")
        if given and not self.stop_at_eos:
            raise UserError(f"{given[0]} needs stop_at_eos: a constrained output ends with its end token")
        if self.block_verbatim < 0:
            raise UserError(f"block_verbatim must be >= 0 characters (0: off), got {self.block_verbatim}")
        if self.watermark:
            from genloom.generation.watermark import check_settings

            check_settings(self.watermark_gamma, self.watermark_delta)
        samples = (0 < self.temperature != 1.0) or any(x is not None for x in (self.top_k, self.top_p, self.min_p))
        if self.num_beams > 1 and samples:
            raise UserError("num_beams > 1 is beam search, which does not sample: drop temperature/top_k/top_p/min_p")

    @property
    def greedy(self) -> bool:
        """Temperature 0 (or below) means argmax decoding."""
        return self.temperature <= 0
