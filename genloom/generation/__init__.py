"""Turning a language model's logits into text: decoding strategies, KV-cached batched decoding,
streaming and beam search (see docs/generation.md)."""

from genloom.generation.config import GenerationConfig
from genloom.generation.engine import Completion, TokenLogprob, complete, stream

__all__ = ["Completion", "GenerationConfig", "TokenLogprob", "complete", "stream"]
