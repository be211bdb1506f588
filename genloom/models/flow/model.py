"""A normalizing flow for images: RealNVP (Dinh et al. 2017) multi-scale architecture with Glow's
(Kingma & Dhariwal 2018) invertible 1x1 convolutions and per-channel affine ("actnorm") layers.

Data to latent, in order:
1. Dequantization: x in {0..255} -> y = (x + u) / 256, u ~ U(0, 1)^D (Theis et al. 2016), so the
   density of y bounds the probability of the discrete image: log P(x) >= E_u[log p(y)] - D log 256.
2. Logit transform z = logit(a + (1 - 2a) y), a = 0.05 (RealNVP sec. 4.1), with its log-determinant.
3. Levels: squeeze (C, H, W) -> (4C, H/2, W/2); `steps` x [actnorm, 1x1 conv, affine coupling]; then half
   of the channels leave as latents (multi-scale) and the rest go to the next level.
4. Prior: standard normal on every latent. Sampling at temperature T draws latents from N(0, T^2 I).

log p(y) = log N(latents) + sum of log|det J| of every layer: the exact likelihood, in bits per dimension
as -(log p(y) - D log 256) / (D log 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        if self.levels < 1 or self.steps < 1 or self.hidden < 1:
            raise ValueError("levels, steps and hidden must be positive")
        if self.image_size % 2**self.levels != 0:
            raise ValueError(f"image_size {self.image_size} must divide by 2^levels = {2**self.levels}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.conditional and self.num_classes <= 0:
            raise ValueError("conditional needs labelled data (num_classes > 0); set model.conditional=false")


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
        c = cfg.channels
        for level in range(cfg.levels):
            c = 4 * c  # after the squeeze
            self.levels.append(nn.ModuleList(FlowStep(c, cfg.hidden, n_cls) for _ in range(cfg.steps)))  # type: ignore[arg-type]
            if level < cfg.levels - 1:
                c = c - c // 2  # half of the channels are factored out

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        return labels if self.config.conditional else None

    def to_latents(self, z: torch.Tensor, labels: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The flow proper, on logit-space z (B, C, S, S): (latents per level, log|det J| (B,))."""
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
                latents.append(out)
        latents.append(h)
        return latents, logdet

    def from_latents(self, latents: list[torch.Tensor], labels: torch.Tensor | None) -> torch.Tensor:
        """Inverse of `to_latents`."""
        labels = self._labels(labels)
        h = latents[-1]
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                h = torch.cat([latents[i], h], dim=1)
            for step in reversed(self.levels[i]):
                h = step.inverse(h, labels)
            h = unsqueeze(h)
        return h

    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Bits per dimension of the dequantized images (B,): an upper bound on -log2 P(x) / D, exact for the
        continuous model. x in [-1, 1] holding uint8 levels."""
        D = x[0].numel()
        y = (to_levels(x).float() + torch.rand_like(x)) / 256  # uniform dequantization, in (0, 1)
        p = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * y
        z = torch.log(p) - torch.log1p(-p)  # logit
        # log|dz/dy| = log(1 - 2a) - log p - log(1 - p), per dimension
        logdet_pre = (math.log(1 - 2 * LOGIT_ALPHA) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        latents, logdet = self.to_latents(z, labels)
        log_prior = sum((-0.5 * (u.float() ** 2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1) for u in latents)
        log_p_y = log_prior + logdet + logdet_pre  # density of y in [0, 1]^D
        return -(log_p_y - D * math.log(256)) / (D * math.log(2))

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
        """n images (n, C, S, S) in [-1, 1] from latents ~ N(0, temperature^2 I)."""
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
