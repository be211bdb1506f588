"""Turning a language model's logits into text."""

from genloom.generation.sampling import generate

__all__ = ["generate"]
