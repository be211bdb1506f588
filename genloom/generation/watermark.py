"""Text watermark of Kirchenbauer et al. 2023 ("A Watermark for Large Language Models", ICML; Algorithm 2,
the soft watermark) and its detector.

At each step the previous token and a secret key seed a pseudorandom split of the vocabulary into a green
list (a fraction γ of it) and a red list; δ is added to the logits of the green tokens, so text from the
model holds more green tokens than chance, while a low-entropy step (one likely token) is barely changed.
Whoever holds the key counts the green tokens of a text: under the null hypothesis (the text was written
without the key) each token is green with probability γ, so

    z = (|s|_G - γ T) / sqrt(T γ (1 - γ))      (eq. 2 of the paper)

over the T tokens scored, and the one-sided p-value is the normal tail of z. As the authors recommend in
their follow-up ("On the Reliability of Watermarks for Large Language Models", 2023, §3), each (previous
token, token) pair is scored once, so repeated phrases in a human text cannot push z up.

The green list of a previous token: every token id gets a 64-bit score from a keyed mix (the key's
BLAKE2b digest with the previous id as the seed, then splitmix64 of seed + id), and the γ·|V| lowest
scores are green. Lists are cached per previous token. The key never leaves `WatermarkKey` (its repr
hides it); it lives in the run directory (genloom/api/responsible.py).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genloom.errors import UserError

LIST_CACHE = 4096  # green lists kept per key and vocabulary (one per previous token)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Steele et al.'s splitmix64 finalizer on uint64 arrays (a bijective, well-mixed hash)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class WatermarkKey:
    """A run's secret watermark key (32 bytes); `run_id` names the run it belongs to."""

    def __init__(self, secret: bytes, run_id: str = "") -> None:
        if len(secret) < 16:
            raise UserError("a watermark key needs at least 16 bytes")
        self._secret = secret
        self.run_id = run_id
        self._lists: OrderedDict[tuple[int, int, float], torch.Tensor] = OrderedDict()

    def __repr__(self) -> str:
        return f"WatermarkKey(run {self.run_id or '?'}, secret hidden)"

    def seed(self, context: str, value: int) -> int:
        """A 64-bit seed from the key, a context name and a number (not reversible to the key)."""
        digest = hashlib.blake2b(
            value.to_bytes(8, "little", signed=True), key=self._secret[:64], person=context[:16].encode()
        )
        return int.from_bytes(digest.digest()[:8], "little")

    def green(self, previous: int, vocab_size: int, gamma: float) -> torch.Tensor:
        """(vocab_size,) bool: the green list after token `previous`."""
        key = (previous, vocab_size, gamma)
        hit = self._lists.get(key)
        if hit is not None:
            self._lists.move_to_end(key)
            return hit
        with np.errstate(over="ignore"):
            scores = _splitmix64(np.uint64(self.seed("green", previous)) + np.arange(vocab_size, dtype=np.uint64))
        size = max(1, round(gamma * vocab_size))
        mask = np.zeros(vocab_size, dtype=bool)
        mask[np.argpartition(scores, size - 1)[:size]] = True
        out = torch.from_numpy(mask)
        self._lists[key] = out
        if len(self._lists) > LIST_CACHE:
            self._lists.popitem(last=False)
        return out

    def image_seed(self) -> int:
        """The seed of the image watermark's patterns and bits (genloom/image_watermark.py)."""
        return self.seed("image", 0)


def check_settings(gamma: float, delta: float) -> None:
    if not 0.0 < gamma < 1.0:
        raise UserError(f"watermark_gamma must be in (0, 1), the green share of the vocabulary, got {gamma}")
    if not (math.isfinite(delta) and delta > 0):
        raise UserError(f"watermark_delta must be a positive number (the bias on green logits), got {delta}")


class Watermark:
    """The logits processor: + δ on the green list of each row's previous token."""

    def __init__(self, key: WatermarkKey, gamma: float, delta: float) -> None:
        check_settings(gamma, delta)
        self.key = key
        self.gamma = gamma
        self.delta = delta

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        V = logits.shape[-1]
        previous = tokens[:, -1].tolist()  # (B,) the last real token of each row (padding sits on the left)
        green = torch.stack([self.key.green(int(p), V, self.gamma) for p in previous])  # (B, V)
        return logits + self.delta * green.to(device=logits.device, dtype=logits.dtype)


@dataclass(frozen=True)
class Detection:
    """What the detector found in a token sequence."""

    z: float
    p_value: float
    green: int  # green tokens among the scored ones
    scored: int  # distinct (previous, token) pairs scored
    tokens: int  # tokens in the text
    threshold: float  # the z above which the text is called watermarked

    @property
    def watermarked(self) -> bool:
        return self.scored > 0 and self.z >= self.threshold

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "watermarked": self.watermarked,
            "z": self.z,
            "p_value": self.p_value,
            "green": self.green,
            "scored": self.scored,
            "tokens": self.tokens,
            "threshold": self.threshold,
        }


def detect(
    ids: Sequence[int], key: WatermarkKey, vocab_size: int, gamma: float = 0.25, threshold: float = 4.0
) -> Detection:
    """The z-score and one-sided p-value of `ids` (a text's tokens) against the key's green lists."""
    check_settings(gamma, 1.0)
    seen: set[tuple[int, int]] = set()
    green = 0
    for previous, token in itertools.pairwise(ids):
        if (previous, token) in seen or not (0 <= token < vocab_size and 0 <= previous < vocab_size):
            continue  # a repeated pair, or one across a character the tokenizer lacks (-1)
        seen.add((previous, token))
        green += bool(key.green(previous, vocab_size, gamma)[token])
    T = len(seen)
    if T == 0:
        return Detection(0.0, 1.0, 0, 0, len(ids), threshold)
    z = (green - gamma * T) / math.sqrt(T * gamma * (1 - gamma))
    p = 0.5 * math.erfc(z / math.sqrt(2))  # P(Z >= z) for a standard normal Z
    return Detection(z, p, green, T, len(ids), threshold)
