"""The GPT family: decoder-only transformer language models."""

from genloom.models.gpt.model import GPT, GPTConfig
from genloom.models.gpt.presets import PRESETS

__all__ = ["GPT", "PRESETS", "GPTConfig"]
