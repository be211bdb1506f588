"""A normalizing flow for images: RealNVP (Dinh et al. 2017) multi-scale architecture with Glow's
(Kingma & Dhariwal 2018) invertible 1x1 convolutions and per-channel affine ("actnorm") layers.

Data to latent, in order:
1. Dequantization: x in {0..255} -> y = (x + u) / 256 with u in (0, 1)^D, so the density of y bounds the
   probability of the discrete image: log P(x) >= E_q[log p(y) - log q(u | x)] - D log 256. "uniform":
   u ~ U(0, 1)^D (Theis et al. 2016), log q = 0. "variational" (Flow++, Ho et al. 2019, sec. 3.1): a small
   network learns q(u | x): u = sigmoid(mu(x) + sigma(x) eps), eps ~ N(0, I), and the bound tightens by
   what the flow no longer has to spend on modelling flat noise inside each grey level: most MNIST
   pixels are exactly 0 or 255, so this is most of the image.
2. Logit transform z = logit(a + (1 - 2a) y), a = 0.05 (RealNVP sec. 4.1), with its log-determinant.
3. Levels: squeeze (C, H, W) -> (4C, H/2, W/2); `steps` x [actnorm, 1x1 conv, affine coupling]; then half
   of the channels leave as latents (multi-scale) and the rest go to the next level.
4. Prior (Glow sec. 3.3, "learned prior"): each latent z ~ N(mu, sigma^2), with (mu, log sigma) from a
   zero-initialised convolution of the channels that stay in the flow at that split, plus a learned map
   per position and, when conditional, per class. `LearnedPrior` standardizes z to eps = (z - mu) / sigma
   (log|det| = -sum log sigma), so the flow ends in eps ~ N(0, I). Sampling at temperature T draws
   eps ~ N(0, T^2 I) from the top down: the top latent first, then each factored-out latent given what the
   flow has already decoded.

log p(y) = log N(latents) + sum of log|det J| of every layer: the exact likelihood, in bits per dimension
as -(log p(y) - D log 256) / (D log 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.data.images import to_levels

LOGIT_ALPHA = 0.05  # keeps the logit transform away from 0 and 1


@dataclass
class FlowConfig:
    channels: int = 1  # image channels (set from the data)
    image_size: int = 28  # image side (set from the data; must divide by 2^levels)
    num_classes: int = 10  # classes in the data (set from the data)
    conditional: bool = False  # condition every coupling network on the class
    levels: int = 2  # squeeze-and-split levels
    steps: int = 4  # flow steps per level
    hidden: int = 64  # channels of each coupling network
    temperature: float = 0.8  # default sampling temperature (std of the prior draw)
    dequantization: Literal["uniform", "variational"] = "uniform"  # how u in y = (x + u) / 256 is drawn
    dequant_hidden: int = 32  # channels of the variational dequantizer's network

    def __post_init__(self) -> None:
        if self.levels < 1 or self.steps < 1 or self.hidden < 1:
            raise ValueError("levels, steps and hidden must be positive")
        if self.image_size % 2**self.levels != 0:
            raise ValueError(f"image_size {self.image_size} must divide by 2^levels = {2**self.levels}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.conditional and self.num_classes <= 0:
            raise ValueError("conditional needs labelled data (num_classes > 0); set model.conditional=false")
        if self.dequantization not in ("uniform", "variational"):
            raise ValueError(f"dequantization must be 'uniform' or 'variational', got {self.dequantization!r}")
        if self.dequant_hidden < 1:
            raise ValueError(f"dequant_hidden must be positive, got {self.dequant_hidden}")


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 patch becomes 4 channels."""
    B, C, H, W = x.shape
    x = x.view(B, C, H // 2, 2, W // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(B, 4 * C, H // 2, W // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `squeeze`: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    B, C4, H, W = x.shape
    x = x.view(B, C4 // 4, 2, 2, H, W)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(B, C4 // 4, 2 * H, 2 * W)


class ActNorm(nn.Module):
    """y = x * exp(s) + b per channel (Glow sec. 3.1, initialised to identity rather than from data)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H, W = x.shape[2:]
        return x * self.log_scale.exp() + self.bias, self.log_scale.sum() * H * W

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.bias) * (-self.log_scale).exp()


class InvConv1x1(nn.Module):
    """y = W x at every pixel with W a learned invertible matrix (Glow sec. 3.2); log|det| = H W log|det W|."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))  # a random rotation: log|det| = 0 at init
        self.weight = nn.Parameter(q)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H, W = x.shape[2:]
        y = F.conv2d(x, self.weight[:, :, None, None])
        return y, torch.linalg.slogdet(self.weight)[1] * H * W

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight)[:, :, None, None])


class AffineCoupling(nn.Module):
    """Split channels (a, b); b -> b * exp(s(a)) + t(a) (RealNVP eq. 7), s bounded by tanh for stability."""

    def __init__(self, channels: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.n_keep = channels // 2
        self.conv1 = nn.Conv2d(self.n_keep, hidden, 3, padding=1)
        self.class_emb = nn.Embedding(num_classes, hidden) if num_classes > 0 else None
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.conv3 = nn.Conv2d(hidden, 2 * (channels - self.n_keep), 3, padding=1)
        nn.init.zeros_(self.conv3.weight)  # start as the identity map
        nn.init.zeros_(self.conv3.bias)  # type: ignore[arg-type]
        self.scale = nn.Parameter(torch.ones(1))

    def _shift_scale(self, a: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv1(a)
        if self.class_emb is not None:
            h = h + self.class_emb(labels)[:, :, None, None]
        h = F.relu(self.conv2(F.relu(h)))
        shift, raw = self.conv3(h).chunk(2, dim=1)
        return shift, self.scale * torch.tanh(raw)  # log-scale in (-scale, scale)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[:, : self.n_keep], x[:, self.n_keep :]
        shift, log_s = self._shift_scale(a, labels)
        return torch.cat([a, b * log_s.exp() + shift], dim=1), log_s.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        a, b = y[:, : self.n_keep], y[:, self.n_keep :]
        shift, log_s = self._shift_scale(a, labels)
        return torch.cat([a, (b - shift) * (-log_s).exp()], dim=1)


class LearnedPrior(nn.Module):
    """z ~ N(mu, sigma^2) with (mu, log sigma) = per-position bias [+ per-class map] [+ conv3x3(kept)].

    Without it, the factored-out latents are pure noise at sampling time and the class reaches the image only
    through the coupling networks (29.8% conditional accuracy in a 15-minute MNIST run); every term starts at
    zero, so training starts from the standard normal prior.
    """

    def __init__(self, channels: int, size: int, kept_channels: int, num_classes: int) -> None:
        super().__init__()
        self.shape = (2 * channels, size, size)
        self.bias = nn.Parameter(torch.zeros(1, *self.shape))
        self.class_map = nn.Embedding(num_classes, math.prod(self.shape)) if num_classes > 0 else None
        self.conv = nn.Conv2d(kept_channels, 2 * channels, 3, padding=1) if kept_channels > 0 else None
        for m in (self.class_map, self.conv):
            if m is not None:
                nn.init.zeros_(m.weight)
        if self.conv is not None:
            nn.init.zeros_(self.conv.bias)  # type: ignore[arg-type]

    def _mean_log_sigma(
        self, kept: torch.Tensor | None, labels: torch.Tensor | None, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.bias.expand(n, *self.shape)
        if self.class_map is not None:
            assert labels is not None
            out = out + self.class_map(labels).view(n, *self.shape)
        if self.conv is not None:
            assert kept is not None
            out = out + self.conv(kept)
        mean, log_sigma = out.chunk(2, dim=1)
        return mean, log_sigma

    def standardize(
        self, z: torch.Tensor, kept: torch.Tensor | None, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z -> eps = (z - mu) / sigma, and its log|det| = -sum log sigma (B,)."""
        mean, log_sigma = self._mean_log_sigma(kept, labels, len(z))
        return (z - mean) * (-log_sigma).exp(), -log_sigma.flatten(1).sum(1)

    def unstandardize(self, eps: torch.Tensor, kept: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
        mean, log_sigma = self._mean_log_sigma(kept, labels, len(eps))
        return mean + log_sigma.exp() * eps


class VariationalDequantizer(nn.Module):
    """q(u | x) for u in (0, 1)^D: u = sigmoid(mu + sigma * eps), (mu, log sigma) from convolutions of the
    image, run on 2x2-squeezed pixels (a quarter of the positions, 4x the channels) to stay cheap.
    Zero-initialised output: training starts from u = sigmoid(eps), a smooth bump over each grey level."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        c = 4 * channels
        out = nn.Conv2d(hidden, 2 * c, 3, padding=1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)  # type: ignore[arg-type]
        self.net = nn.Sequential(
            nn.Conv2d(c, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), out
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [-1, 1] (B, C, H, W) -> (u (B, C, H, W), log q(u | x) (B,))."""
        mean, log_sigma = self.net(squeeze(x)).chunk(2, dim=1)
        eps = torch.randn_like(mean)
        h = mean + log_sigma.exp() * eps
        # log q(u) = log N(eps) - log sigma - log sigmoid'(h), with log sigmoid'(h) = logsigmoid(h) + logsigmoid(-h)
        log_q = -0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - log_sigma - F.logsigmoid(h) - F.logsigmoid(-h)
        return unsqueeze(torch.sigmoid(h)), log_q.flatten(1).sum(1)


class FlowStep(nn.Module):
    """actnorm -> invertible 1x1 conv -> affine coupling (one step of Glow, Fig. 2a)."""

    def __init__(self, channels: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.mix = InvConv1x1(channels)
        self.coupling = AffineCoupling(channels, hidden, num_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, ld1 = self.actnorm(x)
        x, ld2 = self.mix(x)
        x, ld3 = self.coupling(x, labels)
        return x, ld1 + ld2 + ld3

    def inverse(self, y: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.actnorm.inverse(self.mix.inverse(self.coupling.inverse(y, labels)))


class Flow(nn.Module):
    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.config = cfg
        n_cls = cfg.num_classes if cfg.conditional else 0
        self.levels: list[list[FlowStep]] = nn.ModuleList()  # type: ignore[assignment]
        self.priors: list[LearnedPrior] = nn.ModuleList()  # type: ignore[assignment]  # one per latent
        c, s = cfg.channels, cfg.image_size
        for level in range(cfg.levels):
            c, s = 4 * c, s // 2  # after the squeeze
            self.levels.append(nn.ModuleList(FlowStep(c, cfg.hidden, n_cls) for _ in range(cfg.steps)))  # type: ignore[arg-type]
            if level < cfg.levels - 1:  # half of the channels are factored out, given the other half
                self.priors.append(LearnedPrior(c // 2, s, c - c // 2, n_cls))
                c = c - c // 2
        self.priors.append(LearnedPrior(c, s, 0, n_cls))  # the top latent: no channels are kept
        self.dequantizer = (
            VariationalDequantizer(cfg.channels, cfg.dequant_hidden) if cfg.dequantization == "variational" else None
        )

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return labels if self.config.conditional else None

    def to_latents(self, z: torch.Tensor, labels: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The flow proper, on logit-space z (B, C, S, S): (standardized latents per level, each N(0, I) under
        the prior; log|det J| (B,), the priors' standardization included)."""
        labels = self._labels(labels)
        logdet = z.new_zeros(len(z))
        latents = []
        h = z
        for i, steps in enumerate(self.levels):
            h = squeeze(h)
            for step in steps:
                h, ld = step(h, labels)
                logdet = logdet + ld
            if i < len(self.levels) - 1:
                out, h = h[:, : h.shape[1] // 2], h[:, h.shape[1] // 2 :]  # factor out half (multi-scale)
                eps, ld = self.priors[i].standardize(out, h, labels)
                latents.append(eps)
                logdet = logdet + ld
        eps, ld = self.priors[-1].standardize(h, None, labels)
        latents.append(eps)
        return latents, logdet + ld

    def from_latents(self, latents: list[torch.Tensor], labels: torch.Tensor | None) -> torch.Tensor:
        """Inverse of `to_latents`."""
        labels = self._labels(labels)
        h = self.priors[-1].unstandardize(latents[-1], None, labels)
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                h = torch.cat([self.priors[i].unstandardize(latents[i], h, labels), h], dim=1)
            for step in reversed(self.levels[i]):
                h = step.inverse(h, labels)
            h = unsqueeze(h)
        return h

    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Bits per dimension (B,): a one-sample estimate of the dequantization bound on -log2 P(x) / D, exact
        for the continuous model of y. x in [-1, 1] holding uint8 levels."""
        D = x[0].numel()
        if self.dequantizer is None:
            u, log_q = torch.rand_like(x), x.new_zeros(len(x))  # uniform dequantization
        else:
            u, log_q = self.dequantizer(x)
        y = (to_levels(x).float() + u) / 256  # in (0, 1)
        p = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * y
        z = torch.log(p) - torch.log1p(-p)  # logit
        # log|dz/dy| = log(1 - 2a) - log p - log(1 - p), per dimension
        logdet_pre = (math.log(1 - 2 * LOGIT_ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        latents, logdet = self.to_latents(z, labels)
        log_prior = sum((-0.5 * (u.float() ** 2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1) for u in latents)
        log_p_y = log_prior + logdet + logdet_pre  # density of y in [0, 1]^D
        return -(log_p_y - log_q - D * math.log(256)) / (D * math.log(2))

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, labels = batch
        bits = self.bits_per_dim(x, labels).mean()
        return bits, {"bits_per_dim": bits.detach()}

    def _latent_shapes(self) -> list[tuple[int, int, int]]:
        c, s = self.config.channels, self.config.image_size
        shapes = []
        for i in range(self.config.levels):
            c, s = 4 * c, s // 2
            if i < self.config.levels - 1:
                shapes.append((c // 2, s, s))
                c = c - c // 2
        shapes.append((c, s, s))
        return shapes

    def _decode(self, latents: list[torch.Tensor], labels: torch.Tensor | None) -> torch.Tensor:
        z = self.from_latents(latents, labels)
        y = (torch.sigmoid(z) - LOGIT_ALPHA) / (1 - 2 * LOGIT_ALPHA)  # undo the logit transform
        return (y.clamp(0, 1) * 2 - 1).float()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """n images (n, C, S, S) in [-1, 1] from standardized latents eps ~ N(0, temperature^2 I)."""
        T = self.config.temperature if temperature is None else temperature
        latents = [T * torch.randn(n, *shape, generator=generator) for shape in self._latent_shapes()]
        return self._decode(latents, labels)

    @torch.no_grad()
    def interpolate(
        self, steps: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decode a straight line between two latent draws at the default temperature: (steps, C, S, S)."""
        T = self.config.temperature
        ends = [T * torch.randn(2, *shape, generator=generator) for shape in self._latent_shapes()]
        w = torch.linspace(0, 1, steps)[:, None, None, None]
        return self._decode([(1 - w) * e[0] + w * e[1] for e in ends], labels)
