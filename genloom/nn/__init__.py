"""Layers shared by every family: attention, positional encodings, norms, feed-forward blocks.

Nothing here imports the rest of genloom; families compose these and keep their own wiring.
"""

from genloom.nn.attention import Attention, KVCache
from genloom.nn.linear import Linear
from genloom.nn.mlp import MLP, SwiGLU, make_mlp
from genloom.nn.norm import make_norm
from genloom.nn.positional import RopeScaling, SinusoidalPositions, alibi_bias, alibi_slopes, apply_rope, rope_cache

__all__ = [
    "MLP",
    "Attention",
    "KVCache",
    "Linear",
    "RopeScaling",
    "SinusoidalPositions",
    "SwiGLU",
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "make_mlp",
    "make_norm",
    "rope_cache",
]
