"""TVAE (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN", §5 and appendix): a variational
autoencoder (Kingma & Welling 2014) over rows in mode-specific normalization.

Each continuous column is (α, one-hot mode) and each discrete column a one-hot (genloom/data/tables.py).
Encoder: two ReLU layers → μ, log σ² of a Gaussian latent z. Decoder: two ReLU layers → one slot per α
(through tanh, with a learned noise scale σ_j per continuous column) and logits per one-hot. The loss is
the negative ELBO: Gaussian NLL of each α, cross-entropy of each one-hot, weighted by `loss_factor`, plus
KL(q(z|x) || N(0, I)). Sampling decodes z ~ N(0, I), adds N(0, σ_j) to each α and draws each one-hot from
its softmax.

With `dp_noise_multiplier` > 0 the model trains by DP-SGD (Abadi et al. 2016): it then owns its update
(`train_step`, the seam the shared Trainer offers GANs) and clips and noises per-row gradients; the table
modality reports the (ε, δ) that Opacus' RDP accountant gives for the steps taken. The guarantee covers
the network's weights only: the fitted schema (bounds, categories, Gaussian modes) is computed from the
rows without noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
    # DP-SGD (Abadi et al. 2016): > 0 turns it on; Gaussian noise of this many times dp_max_grad_norm is added
    # to the sum of per-row gradients, each clipped to dp_max_grad_norm. The run's ε is in its summary.
    dp_noise_multiplier: float = 0.0
    dp_max_grad_norm: float = 1.0  # per-row gradient clipping bound C
    dp_delta: float = 1e-5  # δ of the (ε, δ) guarantee reported

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.loss_factor <= 0:
            raise ValueError(f"loss_factor must be positive, got {self.loss_factor}")
        if self.dp_noise_multiplier < 0 or self.dp_max_grad_norm <= 0 or not 0 < self.dp_delta < 1:
            raise ValueError("need dp_noise_multiplier >= 0, dp_max_grad_norm > 0 and 0 < dp_delta < 1")


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

    @property
    def private(self) -> bool:
        return self.config.dp_noise_multiplier > 0

    def __getattr__(self, name: str) -> Any:
        # `train_step` exists only under DP-SGD, so the shared Trainer keeps its own update otherwise
        if name == "train_step" and self.__dict__.get("config") is not None and self.config.dp_noise_multiplier > 0:
            return self.dp_train_step
        return super().__getattr__(name)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The loss of a batch (what DP-SGD differentiates row by row)."""
        return self.loss(batch)[0]

    def dp_train_step(
        self, batch: torch.Tensor, optimizer: torch.optim.Optimizer
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One DP-SGD step: per-row gradients (torch.func.vmap of grad), each clipped to norm C, summed,
        plus N(0, σ²C²) noise, divided by the batch size (Abadi et al. 2016, Algorithm 1)."""
        from torch.func import functional_call, grad, vmap

        params = {k: v.detach() for k, v in self.named_parameters()}
        buffers = {k: v for k, v in self.named_buffers()}

        def row_loss(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self, (p, buffers), (x[None],))

        grads = vmap(grad(row_loss), in_dims=(None, 0), randomness="different")(params, batch)  # each (B, *shape)
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))  # (B,)
        scale = (self.config.dp_max_grad_norm / (norms + 1e-6)).clamp(max=1.0)  # per-row clipping factor
        sigma = self.config.dp_noise_multiplier * self.config.dp_max_grad_norm
        for name, p in self.named_parameters():
            summed = torch.einsum("b,b...->...", scale, grads[name])
            p.grad = (summed + sigma * torch.randn_like(summed)) / len(batch)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            loss, terms = self.loss(batch)
        return loss, {**terms, "clipped_share": (norms > self.config.dp_max_grad_norm).float().mean()}

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
