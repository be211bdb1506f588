"""CTGAN (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN"): a conditional Wasserstein GAN with
gradient penalty (Gulrajani et al. 2017) over rows in mode-specific normalization.

- **Mode-specific normalization** (§4.2): continuous columns as (α, one-hot mode), discrete ones one-hot
  (genloom/data/tables.py).
- **Conditional vector and training-by-sampling** (§4.3): each training row comes with a condition, one
  category of one discrete column (column uniformly, category ∝ log frequency), and the real row drawn
  for it has that category (`TableData` does the drawing). The generator sees the condition and is
  penalized by the cross-entropy between its output for that column and the asked category, so rare
  categories are learned as well as common ones. At sampling, conditions follow the real frequencies.
- **Generator**: z ⊕ condition → two residual layers (Linear, BatchNorm, ReLU, concatenated with their
  input) → a linear map; α through tanh, each one-hot through Gumbel-softmax (τ = 0.2).
- **Critic with PacGAN** (Lin et al. 2018): `pac` rows (with their conditions) are scored together, so
  the critic can see a lack of diversity; two LeakyReLU(0.2) layers with dropout 0.5.

The update is two updates, so the family owns `train_step` (as the image GAN does): the shared Trainer
draws batches, sets the learning rate, logs, checkpoints and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genloom.data.tables import TableSchema


@dataclass
class CTGANConfig:
    latent_dim: int = 128  # size of z
    hidden: int = 256  # width of the generator's residual layers and of the critic's layers
    pac: int = 10  # rows the critic scores together (PacGAN); the batch size must be a multiple
    gp_weight: float = 10.0  # gradient-penalty weight λ
    tau: float = 0.2  # Gumbel-softmax temperature of the generator's one-hot outputs

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden", "pac"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.tau <= 0 or self.gp_weight < 0:
            raise ValueError("tau must be positive and gp_weight not negative")


class Residual(nn.Module):
    """(B, d) -> (B, d + width): a ReLU(BN(Linear)) layer concatenated with its input."""

    def __init__(self, d_in: int, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, width)
        self.bn = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    """z ⊕ condition (B, latent + C) -> raw row (B, D): α slots before tanh, one-hot logits."""

    def __init__(self, d_in: int, width: int, d_out: int) -> None:
        super().__init__()
        self.res1 = Residual(d_in, width)
        self.res2 = Residual(d_in + width, width)
        self.out = nn.Linear(d_in + 2 * width, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.res2(self.res1(x)))


class Critic(nn.Module):
    """pac rows with their conditions (B, D + C) -> one score per group of pac rows (B / pac,)."""

    def __init__(self, d_in: int, width: int, pac: int) -> None:
        super().__init__()
        self.pac = pac
        self.fc1 = nn.Linear(d_in * pac, width)
        self.fc2 = nn.Linear(width, width)
        self.out = nn.Linear(width, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, self.pac * x.shape[1])  # (B / pac, pac · (D + C))
        h = self.dropout(F.leaky_relu(self.fc1(h), 0.2))
        h = self.dropout(F.leaky_relu(self.fc2(h), 0.2))
        return self.out(h)[:, 0]


class CTGAN(nn.Module):
    encoding = "modes"  # rows in mode-specific normalization
    conditional_batches = True  # batches are (rows (B, D), conditions (B, C)) by training-by-sampling
    alpha_at: torch.Tensor
    block_index: torch.Tensor
    block_mask: torch.Tensor
    is_mode: torch.Tensor
    cond_index: torch.Tensor

    def __init__(self, config: CTGANConfig, schema: TableSchema) -> None:
        super().__init__()
        self.config = config
        self.schema = schema
        self.width = sum(size for _, size in schema.spans())
        self.cards = schema.cardinalities
        self.cond_dim = sum(self.cards)
        self.generator = Generator(config.latent_dim + self.cond_dim, config.hidden, self.width)
        self.critic = Critic(self.width + self.cond_dim, config.hidden, config.pac)
        alpha_at, index, mask, is_mode = schema.span_index()
        self.register_buffer("alpha_at", alpha_at, persistent=False)  # α positions (c,)
        self.register_buffer("block_index", index, persistent=False)  # one-hot positions (S, K)
        self.register_buffer("block_mask", mask, persistent=False)  # (S, K)
        self.register_buffer("is_mode", is_mode, persistent=False)  # (S,)
        # where each discrete feature's categories sit in the condition vector, padded to K: (Sd, K)
        k = index.shape[1]
        offsets = np.cumsum([0, *self.cards])
        cond_index = [list(range(offsets[i], offsets[i] + c)) + [0] * (k - c) for i, c in enumerate(self.cards)]
        self.register_buffer(
            "cond_index", torch.tensor(cond_index, dtype=torch.long).reshape(len(self.cards), k), persistent=False
        )
        shares = [torch.tensor(p, dtype=torch.float32) for p in schema.feature_shares()]
        self.shares = [p / p.sum() for p in shares]

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw generator output (B, D) as a row: tanh for α, Gumbel-softmax for each one-hot block."""
        out = raw.clone()
        out[:, self.alpha_at] = torch.tanh(raw[:, self.alpha_at])
        logits = raw[:, self.block_index].masked_fill(~self.block_mask, -1e9)  # (B, S, K)
        soft = F.gumbel_softmax(logits, tau=self.config.tau, dim=-1)
        out[:, self.block_index[self.block_mask]] = soft[:, self.block_mask]  # real categories only, no padding
        return out

    def condition_loss(self, raw: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the generator's logits for each asked column and the asked category."""
        if not self.cards:
            return raw.new_zeros(())
        logits = raw[:, self.block_index][:, ~self.is_mode].masked_fill(~self.block_mask[~self.is_mode], -1e9)
        wanted = cond[:, self.cond_index] * self.block_mask[~self.is_mode]  # (B, Sd, K)
        asked = wanted.sum(-1)  # (B, Sd): 1 for the asked column
        ce = F.cross_entropy(logits.transpose(1, 2), wanted.argmax(-1), reduction="none")  # (B, Sd)
        return (ce * asked).sum() / len(raw)

    def _fake(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(len(cond), self.config.latent_dim, generator=generator)
        raw = self.generator(torch.cat([z, cond], dim=1))
        return raw, self.activate(raw)

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        pac = self.config.pac
        eps = torch.rand(len(real) // pac, 1, 1).expand(-1, pac, real.shape[1]).reshape(real.shape)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
        return (grad.reshape(-1, pac * real.shape[1]).norm(dim=1) - 1).pow(2).mean()

    def _check(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        if len(batch[0]) % self.config.pac:
            raise ValueError(f"train.batch_size ({len(batch[0])}) must be a multiple of model.pac ({self.config.pac})")

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The critic's Wasserstein estimate E[D(real)] − E[D(fake)] (the loop's validation figure)."""
        self._check(batch)
        real, cond = batch
        _, fake = self._fake(cond)
        gap = self.critic(torch.cat([real, cond], 1)).mean() - self.critic(torch.cat([fake, cond], 1)).mean()
        return gap, {"wasserstein": gap.detach()}

    def train_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], optimizer: torch.optim.Optimizer
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One critic update (WGAN-GP), then one generator update (adversarial + condition loss)."""
        self._check(batch)
        real, cond = batch
        critic_params = list(self.critic.parameters())
        generator_params = list(self.generator.parameters())
        _, fake = self._fake(cond)
        real_in, fake_in = torch.cat([real, cond], 1), torch.cat([fake.detach(), cond], 1)
        gp = self._gradient_penalty(real_in, fake_in)
        d_loss = self.critic(fake_in).mean() - self.critic(real_in).mean() + self.config.gp_weight * gp
        optimizer.zero_grad(set_to_none=True)
        d_loss.backward(inputs=critic_params)
        optimizer.step()  # generator grads are None: only the critic moves
        raw, fake = self._fake(cond)
        cond_loss = self.condition_loss(raw, cond)
        g_loss = -self.critic(torch.cat([fake, cond], 1)).mean() + cond_loss
        optimizer.zero_grad(set_to_none=True)
        g_loss.backward(inputs=generator_params)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return g_loss.detach(), {"d_loss": d_loss.detach(), "condition_loss": cond_loss.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n rows as (continuous values (n, c), discrete codes (n, d)); each row's condition is a category of
        a uniformly chosen discrete column, drawn with its real frequency."""
        cond = torch.zeros(n, self.cond_dim)
        if self.cards:
            feature = torch.randint(0, len(self.cards), (n,), generator=generator)
            offsets = torch.tensor(np.cumsum([0, *self.cards])[:-1])
            category = torch.zeros(n, dtype=torch.long)
            for i in feature.unique().tolist():
                rows = feature == i
                category[rows] = torch.multinomial(self.shares[i], int(rows.sum()), True, generator=generator)
            cond[torch.arange(n), offsets[feature] + category] = 1.0
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        raw = self.generator(torch.cat([z, cond], dim=1))
        return self.schema.split_modes(raw, generator)
