"""An invisible watermark for the image families' samples: spread-transform dither modulation (Chen &
Wornell 2001, "Quantization Index Modulation") in the image's lowest 2-D DCT frequencies.

Embedding, for each image (its luminance, the mean of its channels):
1. the orthonormal 2-D DCT's coefficients (u, v) with u, v < BAND, the DC term left out (48 numbers):
   frequencies counted in cycles per image, so they are the same numbers after a resize;
2. `bits` projections of them on key-seeded orthonormal directions (spread transform);
3. each projection moved to the nearest point of its bit's lattice, dither_i + bit_i·Δ/2 + kΔ (QIM);
4. back to pixels by the smallest change that keeps every pixel in [0, 255] (an active-set least-squares
   solve: a black background cannot go darker, so the change moves to the pixels that can take it), added
   to every channel and rounded to integer levels, repeated until the rounding no longer moves a bit.

The key (the run's, genloom/api/responsible.py) seeds the directions, the dithers and the 32 message
bits, so the detector needs nothing but the key. It reads the same coefficients from an image of any size
(scaled by the size ratio, as an orthonormal DCT needs); for an image of another size it first divides
each frequency by the response of a bicubic resize to that size (measured once on the DCT basis images),
because a text-book QIM reading is not robust to such gains. Each bit is then its projection's nearest
lattice; the p-value is the binomial tail of the matching bits.

`bench/watermark.py` measures bit accuracy after JPEG quality 50, a resize to half and Gaussian noise
σ = 0.02, and the PSNR, beside the `invisible-watermark` package's dwtDctSvd on the same images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from genloom.errors import UserError

BAND = 7  # DCT frequencies u, v < BAND (cycles per image) ...
DIAGONAL = 12  # ... with u + v <= DIAGONAL carry the mark (the lowest survive JPEG and resizing best)
BITS = 32  # message bits
STEP = 48.0  # Δ for 28×28 images, in 0-255 levels (scaled with the side, which keeps the PSNR about 35.5 dB)
ITERATIONS = 12  # embedding rounds (clip and round to levels, then correct again)
OVERSHOOT = 1.6  # after the first round, corrections are scaled up: clipping takes part of each back
MIN_SIZE = 14  # images smaller than this have too few such frequencies
P_THRESHOLD = 1e-3  # a p-value below this calls an image watermarked


def _dct2(x: np.ndarray) -> np.ndarray:
    from scipy.fft import dctn

    return dctn(x, norm="ortho")


def _idct2(x: np.ndarray) -> np.ndarray:
    from scipy.fft import idctn

    return idctn(x, norm="ortho")


def _bounded_least_norm(A: np.ndarray, residual: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The smallest δ (least squares) with A δ = residual and low <= δ <= high, by an active set: entries that
    would cross a bound are fixed there and the rest is solved again over the free entries."""
    delta = np.zeros(A.shape[1])
    free = np.ones(A.shape[1], dtype=bool)
    need = residual.copy()
    for _ in range(20):
        Af = A[:, free]
        step = Af.T @ np.linalg.lstsq(Af @ Af.T, need, rcond=None)[0]
        trial = delta[free] + step
        over = (trial < low[free]) | (trial > high[free])
        if not over.any():
            delta[free] = trial
            return delta
        idx = np.flatnonzero(free)[over]
        bound = np.where(trial[over] < low[idx], low[idx], high[idx])
        need = need - A[:, idx] @ (bound - delta[idx])  # what the pinned entries now contribute
        delta[idx] = bound
        free[idx] = False
    return delta


def binomial_tail(matches: int, bits: int) -> float:
    """P(X >= matches) for X ~ Binomial(bits, 1/2): the chance of so many matching bits by luck."""
    return sum(math.comb(bits, k) for k in range(matches, bits + 1)) / 2**bits


@dataclass(frozen=True)
class ImageDetection:
    bits: int
    matches: int
    p_value: float
    reading: tuple[int, ...] = ()  # the bits read, for telling identical images apart from independent ones

    @property
    def bit_accuracy(self) -> float:
        return self.matches / self.bits

    @property
    def watermarked(self) -> bool:
        return self.p_value < P_THRESHOLD

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "watermarked": self.watermarked,
            "bit_accuracy": self.bit_accuracy,
            "matches": self.matches,
            "bits": self.bits,
            "p_value": self.p_value,
        }


class ImageWatermark:
    """The mark of one key for images of `size` × `size` pixels (the run's sample size)."""

    def __init__(self, seed: int, size: int, bits: int = BITS, step: float | None = None) -> None:
        if size < MIN_SIZE:
            raise UserError(
                f"image watermark: {size}x{size} images are too small to hold it (at least {MIN_SIZE}x{MIN_SIZE})"
            )
        rng = np.random.default_rng(seed)
        self.coords = [(u, v) for u in range(BAND) for v in range(BAND) if 0 < u + v <= DIAGONAL]  # (K,) frequencies
        assert bits <= len(self.coords)
        q, _ = np.linalg.qr(rng.standard_normal((len(self.coords), bits)))
        self.directions = q.T  # (bits, K) orthonormal rows
        self.dither = rng.uniform(0.0, 1.0, bits)  # (bits,) in steps
        self.message = rng.integers(0, 2, bits)  # (bits,) what every marked image carries
        self.size = size
        self.step = step if step is not None else STEP * size / 28  # the same distortion per pixel at any size
        self.dither = self.dither * self.step
        self.rows = np.array([u for u, _ in self.coords])
        self.cols = np.array([v for _, v in self.coords])
        self._A: np.ndarray | None = None
        self._gains: dict[tuple[int, int], np.ndarray] = {}

    def _coefficients(self, luma: np.ndarray) -> np.ndarray:
        """(K,) the band's DCT coefficients of an (h, w) luminance, scaled to this mark's image size."""
        h, w = luma.shape
        return _dct2(luma)[self.rows, self.cols] * math.sqrt(self.size * self.size / (h * w))

    def embed(self, image: np.ndarray) -> np.ndarray:
        """The marked copy of one (C, S, S) image of levels in [0, 255] (integer levels out, float64).

        The pixel change is the smallest (least squares) one that puts every projection on its target while
        keeping each pixel in [0, 255]: pixels that would leave the range are held at the bound and the rest
        of the change is solved again over the free pixels (an active set), so a black background costs
        little; a few rounds then absorb the rounding to integer levels."""
        x = np.asarray(image, dtype=np.float64)
        if x.ndim != 3 or x.shape[1:] != (self.size, self.size):
            raise UserError(f"image watermark: expected (C, {self.size}, {self.size}) images, got {x.shape}")
        A = self._pixel_projections()  # (bits, S·S): pixel → projection
        low, high = -x.min(axis=0).ravel(), 255.0 - x.max(axis=0).ravel()  # the change each pixel allows
        luma = x.mean(axis=0).ravel()
        s = A @ luma
        half = self.step / 2
        offset = self.dither + half * self.message
        target = offset + self.step * np.round((s - offset) / self.step)  # nearest point of each bit's lattice
        change = np.zeros_like(luma)
        for _ in range(ITERATIONS):
            residual = target - A @ (luma + change)
            if np.abs(residual).max() < 0.02 * self.step:
                break
            change = change + _bounded_least_norm(A, residual, low - change, high - change)
            change = np.round(change)  # whole levels, as the PNG stores them
        return np.clip(x + change.reshape(self.size, self.size)[None], 0, 255)

    def _pixel_projections(self) -> np.ndarray:
        if self._A is None:
            basis = np.zeros((len(self.coords), self.size * self.size))
            for k, (u, v) in enumerate(self.coords):
                impulse = np.zeros((self.size, self.size))
                impulse[u, v] = 1.0
                basis[k] = _idct2(impulse).ravel()  # the DCT basis image of frequency (u, v)
            self._A = self.directions @ basis
        return self._A

    def detect(self, image: np.ndarray) -> ImageDetection:
        """Read the message from one image: (H, W) or (C, H, W) levels in [0, 255], any size. An image of
        another size than the mark's is read through the response of a bicubic resize to its size (each
        frequency's gain, measured on the DCT basis images), which undoes most of the resize's low-pass."""
        x = np.asarray(image, dtype=np.float64)
        luma = x.mean(axis=0) if x.ndim == 3 else x
        if min(luma.shape) < BAND:
            raise UserError(f"image watermark: a {luma.shape[1]}x{luma.shape[0]} image is too small to carry one")
        c = self._coefficients(luma) / self._resize_gains(luma.shape)
        half = self.step / 2
        bits = np.mod(np.round((self.directions @ c - self.dither) / half), 2).astype(int)
        matches = int((bits == self.message).sum())
        return ImageDetection(len(bits), matches, binomial_tail(matches, len(bits)), tuple(bits.tolist()))

    def _resize_gains(self, shape: tuple[int, ...]) -> np.ndarray:
        """(K,) how much of each band frequency survives a bicubic resize of a size × size image to `shape`
        (ones at the mark's own size)."""
        h, w = int(shape[0]), int(shape[1])
        if (h, w) == (self.size, self.size):
            return np.ones(len(self.coords))
        hit = self._gains.get((h, w))
        if hit is not None:
            return hit
        from PIL import Image

        gains = np.ones(len(self.coords))
        for k, (u, v) in enumerate(self.coords):
            impulse = np.zeros((self.size, self.size))
            impulse[u, v] = 1.0
            basis = Image.fromarray(_idct2(impulse).astype(np.float32), mode="F")  # one frequency, no clipping
            small = np.asarray(basis.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
            gains[k] = _dct2(small)[u, v] * math.sqrt(self.size * self.size / (h * w))
        gains = np.where(np.abs(gains) > 0.05, gains, 1.0)  # a frequency the resize removed: read it as is
        self._gains[(h, w)] = gains
        return gains


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images of levels in [0, 255]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
