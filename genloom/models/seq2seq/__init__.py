"""The encoder-decoder family (the original Transformer): model and presets."""

from genloom.models.seq2seq.model import BoundDecoder, Seq2Seq, Seq2SeqCache, Seq2SeqConfig
from genloom.models.seq2seq.presets import PRESETS

__all__ = ["PRESETS", "BoundDecoder", "Seq2Seq", "Seq2SeqCache", "Seq2SeqConfig"]
