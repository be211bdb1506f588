"""TVAE (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN", §5 and appendix): a variational
autoencoder (Kingma & Welling 2014) over rows in mode-specific normalization.

Each continuous column is (α, one-hot mode) and each discrete column a one-hot (genloom/data/tables.py).
Encoder: two ReLU layers → μ, log σ² of a Gaussian latent z. Decoder: two ReLU layers → one slot per α
(through tanh, with a learned noise scale σ_j per continuous column) and logits per one-hot. The loss is
the negative ELBO: Gaussian NLL of each α, cross-entropy of each one-hot, weighted by `loss_factor`, plus
KL(q(z|x) || N(0, I)). Sampling decodes z ~ N(0, I), adds N(0, σ_j) to each α and draws each one-hot from
its softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genloom.data.tables import TableSchema


@dataclass
class TVAEConfig:
    latent_dim: int = 128  # size of z
    hidden: int = 128  # width of the two hidden layers of the encoder and of the decoder
    loss_factor: float = 2.0  # weight of the reconstruction terms against the KL term (TVAE's default)

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.loss_factor <= 0:
            raise ValueError(f"loss_factor must be positive, got {self.loss_factor}")


class MLP(nn.Module):
    """Two ReLU layers: (B, d_in) -> (B, hidden)."""

    def __init__(self, d_in: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc2(F.relu(self.fc1(x))))


class TVAE(nn.Module):
    encoding = "modes"  # batches are rows in mode-specific normalization (B, D)
    alpha_at: torch.Tensor
    block_index: torch.Tensor
    block_mask: torch.Tensor

    def __init__(self, config: TVAEConfig, schema: TableSchema) -> None:
        super().__init__()
        self.config = config
        self.schema = schema
        self.spans = schema.spans()
        width = sum(size for _, size in self.spans)
        n_alpha = sum(kind == "tanh" for kind, _ in self.spans)
        self.encoder = MLP(width, config.hidden)
        self.to_mu = nn.Linear(config.hidden, config.latent_dim)
        self.to_logvar = nn.Linear(config.hidden, config.latent_dim)
        self.decoder = MLP(config.latent_dim, config.hidden)
        self.to_row = nn.Linear(config.hidden, width)
        self.log_sigma = nn.Parameter(torch.full((n_alpha,), math.log(0.1)))  # noise of each α
        alpha_at, index, mask, _ = schema.span_index()
        self.register_buffer("alpha_at", alpha_at, persistent=False)  # α positions (c,)
        self.register_buffer("block_index", index, persistent=False)  # one-hot positions (S, K)
        self.register_buffer("block_mask", mask, persistent=False)  # real categories (S, K)

    def reconstruction(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of rows `x` (B, D) under the decoder's output `out` (B, D), per row (B,)."""
        err = x[:, self.alpha_at] - torch.tanh(out[:, self.alpha_at])  # (B, c)
        gaussian = (err**2 / (2 * self.log_sigma.exp() ** 2) + self.log_sigma).sum(1)  # Gaussian NLL, constant dropped
        logits = out[:, self.block_index].masked_fill(~self.block_mask, -math.inf)  # (B, S, K)
        target = (x[:, self.block_index] * self.block_mask).argmax(-1)  # (B, S)
        categorical = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1)  # (B,)
        return gaussian + categorical

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.encoder(batch)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterization
        out = self.to_row(self.decoder(z))
        rec = self.reconstruction(batch, out).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
        return self.config.loss_factor * rec + kl, {"reconstruction": rec.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n rows as (continuous values (n, c), discrete codes (n, d))."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        out = self.to_row(self.decoder(z))
        return self.schema.split_modes(out, generator, sigma=self.log_sigma.exp())
