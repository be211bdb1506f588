"""Variational autoencoder (Kingma & Welling 2014) with a convolutional encoder and decoder, and β (Higgins
et al. 2017) on the KL term; class-conditional as in Sohn et al. 2015 (CVAE) when `conditional`.

    q(z | x, y) = N(mu(x, y), diag sigma(x, y)^2)     encoder
    p(x | z, y) = Bernoulli(decoder(z, y))            grey levels in [0, 1] as probabilities (as usual on MNIST)
    ELBO = E_q[log p(x | z, y)] - KL(q(z | x, y) || N(0, I))

Training minimises -(E_q log p) + β KL per image; β = 1 gives the ELBO, the bound on log p(x) reported
by `genloom eval` in nats per image. Reparameterisation: z = mu + sigma * eps, eps ~ N(0, I).
Compare the PyTorch examples' `vae/main.py` (fully connected, same objective).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VAEConfig:
    channels: int = 1  # image channels (set from the data)
    image_size: int = 28  # image side in pixels (set from the data; must divide by 4)
    num_classes: int = 10  # classes in the data (set from the data)
    conditional: bool = False  # condition encoder and decoder on the class label (CVAE)
    latent_dim: int = 16  # size of z
    width: int = 32  # channels of the first conv; the second has twice as many
    hidden: int = 256  # the fully connected layer between the convs and z
    beta: float = 1.0  # weight of the KL term (1: the ELBO)

    def __post_init__(self) -> None:
        if self.image_size % 4 != 0:
            raise ValueError(
                f"image_size must be a multiple of 4 for the VAE's two stride-2 convs, got {self.image_size}"
            )
        for name in ("latent_dim", "width", "hidden", "channels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.conditional and self.num_classes <= 0:
            raise ValueError("conditional needs labelled data (num_classes > 0); set model.conditional=false")


class VAEEncoder(nn.Module):
    """x (B, C, S, S) [, y] -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        w, s = cfg.width, cfg.image_size // 4
        self.conv1 = nn.Conv2d(cfg.channels, w, 4, stride=2, padding=1)  # (B, w, S/2, S/2)
        self.conv2 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)  # (B, 2w, S/4, S/4)
        n_cond = cfg.num_classes if cfg.conditional else 0
        self.fc = nn.Linear(2 * w * s * s + n_cond, cfg.hidden)
        self.mu = nn.Linear(cfg.hidden, cfg.latent_dim)
        self.logvar = nn.Linear(cfg.hidden, cfg.latent_dim)

    def forward(self, x: torch.Tensor, y_onehot: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.silu(self.conv2(F.silu(self.conv1(x))))
        h = h.flatten(1)  # (B, 2w * S/4 * S/4)
        if y_onehot is not None:
            h = torch.cat([h, y_onehot], dim=1)
        h = F.silu(self.fc(h))
        return self.mu(h), self.logvar(h)


class VAEDecoder(nn.Module):
    """z (B, latent_dim) [, y] -> Bernoulli logits (B, C, S, S)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        w, self.s = cfg.width, cfg.image_size // 4
        n_cond = cfg.num_classes if cfg.conditional else 0
        self.fc1 = nn.Linear(cfg.latent_dim + n_cond, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, 2 * w * self.s * self.s)
        self.deconv1 = nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1)  # (B, w, S/2, S/2)
        self.deconv2 = nn.ConvTranspose2d(w, cfg.channels, 4, stride=2, padding=1)  # (B, C, S, S)

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor | None) -> torch.Tensor:
        if y_onehot is not None:
            z = torch.cat([z, y_onehot], dim=1)
        h = F.silu(self.fc2(F.silu(self.fc1(z))))
        h = h.view(len(z), -1, self.s, self.s)  # (B, 2w, S/4, S/4)
        return self.deconv2(F.silu(self.deconv1(h)))


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = VAEEncoder(cfg)
        self.decoder = VAEDecoder(cfg)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _onehot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.config.conditional:
            return None
        assert labels is not None, "a conditional VAE needs labels"
        return F.one_hot(labels, self.config.num_classes).float()

    def elbo_terms(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction log-likelihood and KL, in nats: ((B,), (B,)). x in [-1, 1]."""
        y = self._onehot(labels)
        mu, logvar = self.encoder(x, y)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterisation trick
        logits = self.decoder(z, y)
        target = (x + 1) / 2  # grey levels as Bernoulli probabilities in [0, 1]
        rec = -F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.float().pow(2) + logvar.float().exp() - 1 - logvar.float()).sum(1)  # KL(N(mu, s^2) || N(0, 1))
        return rec, kl

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, labels = batch
        rec, kl = self.elbo_terms(x, labels)
        loss = (-rec + self.config.beta * kl).mean()  # nats per image
        return loss, {"reconstruction": -rec.mean().detach(), "kl": kl.mean().detach()}

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (B, latent_dim) -> images in [-1, 1] (the decoder's mean)."""
        return torch.sigmoid(self.decoder(z, self._onehot(labels))) * 2 - 1

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Encode to the posterior mean and decode: (B, C, S, S) -> (B, C, S, S)."""
        mu, _ = self.encoder(x, self._onehot(labels))
        return self.decode(mu, labels)

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images from the prior z ~ N(0, I): (n, C, S, S) in [-1, 1]."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return self.decode(z, labels)

    @torch.no_grad()
    def interpolate(
        self, steps: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decode a straight line between two prior draws: (steps, C, S, S)."""
        z0, z1 = torch.randn(2, self.config.latent_dim, generator=generator)
        w = torch.linspace(0, 1, steps)[:, None]
        return self.decode((1 - w) * z0 + w * z1, labels)
