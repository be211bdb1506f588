"""TabDDPM (Kotelnikov et al. 2023, "TabDDPM: Modelling Tabular Data with Diffusion Models"): one denoising
network over a row's continuous and discrete columns at once, Gaussian diffusion for the first (Ho et al.
2020) and multinomial diffusion for the second (Hoogeboom et al. 2021).

Continuous columns arrive as normal scores through their quantile functions (the paper's quantile
transform; genloom/data/tables.py), discrete ones as codes. Forward process at step t (1..T, cosine
schedule):
- numbers: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, ε ~ N(0, I);
- each discrete column with K categories: q(x_t | x_0) = Cat(ᾱ_t x_0 + (1 − ᾱ_t)/K), noise that moves
  toward the uniform distribution.
The network (an MLP over [x_t numbers, one-hot x_t], plus a sinusoidal embedding of t) predicts ε and the
logits of x_0. The loss is ‖ε − ε̂‖² plus, per discrete column, KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t))
with p the same posterior at the predicted x_0 (Hoogeboom et al. 2021, eq. 13), averaged over columns, as
the paper does. At t = 1 the posterior is x_0 itself, so the KL is the decoder's negative log-likelihood.
Sampling runs the T ancestral steps from N(0, I) and uniform categories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genloom.data.tables import TableSchema
from genloom.models.diffusion.sampler import beta_schedule
from genloom.nn.unet import timestep_embedding


@dataclass
class TabDDPMConfig:
    hidden: int = 256  # width of the denoising MLP
    layers: int = 3  # hidden layers of the MLP
    num_timesteps: int = 1000  # T, diffusion steps (training and sampling)
    schedule: Literal["cosine", "linear"] = "cosine"  # the paper's choice is cosine (Nichol & Dhariwal 2021)
    dropout: float = 0.0  # in the MLP
    clip_x0: float = 5.0  # sampling: clip the predicted x_0 of the numbers to ±this (normal scores; 0: no clip)

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "num_timesteps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.clip_x0 < 0:
            raise ValueError(f"clip_x0 must be >= 0 (0: no clipping), got {self.clip_x0}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Denoiser(nn.Module):
    """[x_t numbers (B, c), one-hot x_t (B, S·K)], t (B,) or (1,) for all rows -> (ε̂ (B, c), x_0 logits (B, S·K))."""

    def __init__(self, d_in: int, d_out: int, config: TabDDPMConfig) -> None:
        super().__init__()
        h = config.hidden
        self.proj = nn.Linear(d_in, h)
        self.time1 = nn.Linear(h, h)
        self.time2 = nn.Linear(h, h)
        self.blocks = nn.ModuleList(nn.Linear(h, h) for _ in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, d_out)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time2(F.silu(self.time1(timestep_embedding(t, self.proj.out_features))))
        h = self.proj(x) + emb
        for block in self.blocks:
            h = self.dropout(F.silu(block(h)))
        return self.out(h)


class TabDDPM(nn.Module):
    encoding = "quantile"  # batches are (normal scores (B, c), codes (B, d))
    betas: torch.Tensor
    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor
    mask: torch.Tensor
    k: torch.Tensor

    def __init__(self, config: TabDDPMConfig, schema: TableSchema) -> None:
        super().__init__()
        self.config = config
        self.schema = schema
        self.c = schema.n_continuous
        cards = schema.cardinalities
        self.S, self.K = len(cards), max(cards, default=1)
        betas = beta_schedule(config.schedule, config.num_timesteps).double()
        alpha_bar = torch.cumprod(1 - betas, 0)
        self.register_buffer("betas", betas.float(), persistent=False)  # (T,)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)  # ᾱ_t (T,)
        self.register_buffer("alpha_bar_prev", torch.cat([torch.ones(1), alpha_bar[:-1].float()]), persistent=False)
        mask = torch.zeros(self.S, self.K, dtype=torch.bool)
        for s, k in enumerate(cards):
            mask[s, :k] = True
        self.register_buffer("mask", mask, persistent=False)  # real categories (S, K)
        self.register_buffer(
            "k", torch.tensor(cards or [1], dtype=torch.float32)[: max(self.S, 1), None], persistent=False
        )
        self.net = Denoiser(self.c + self.S * self.K, self.c + self.S * self.K, config)

    # ---- multinomial diffusion, in probabilities over padded blocks (B, S, K) ----
    def _uniform(self) -> torch.Tensor:
        return self.mask / self.k  # 1/K on real categories, 0 on padding

    def _posterior(self, x_t: torch.Tensor, x0: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """q(x_{t−1} | x_t, x_0) ∝ (α_t x_t + (1 − α_t)/K) ⊙ (ᾱ_{t−1} x_0 + (1 − ᾱ_{t−1})/K); x0 may be probabilities."""
        alpha = (1 - self.betas[i])[:, None, None]
        prev = self.alpha_bar_prev[i][:, None, None]
        p = (alpha * x_t + (1 - alpha) * self._uniform()) * (prev * x0 + (1 - prev) * self._uniform())
        return p / p.sum(-1, keepdim=True)

    def _draw(self, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One-hot draws (B, S, K) from probabilities over each block (Gumbel-max)."""
        u = torch.rand(probs.shape, generator=generator).clamp(1e-12, 1 - 1e-7)
        logits = probs.clamp_min(1e-30).log().masked_fill(~self.mask, -math.inf) - torch.log(-torch.log(u))
        return F.one_hot(logits.argmax(-1), self.K).float() * self.mask

    def _predict(self, x_num: torch.Tensor, x_cat: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([x_num, x_cat.flatten(1)], 1), i)
        eps, logits = out[:, : self.c], out[:, self.c :].view(-1, self.S, self.K)  # (B, S, K)
        return eps, logits.masked_fill(~self.mask, -math.inf).softmax(-1).nan_to_num(0.0)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x0_num, codes = batch
        B = len(x0_num)
        i = torch.randint(0, self.config.num_timesteps, (B,))  # t − 1
        ab = self.alpha_bar[i][:, None]
        noise = torch.randn_like(x0_num)
        x_num = ab.sqrt() * x0_num + (1 - ab).sqrt() * noise  # q(x_t | x_0), numbers
        x0_cat = F.one_hot(codes, self.K).float() if self.S else torch.zeros(B, 0, 1)  # (B, S, K)
        q_t = ab[:, :, None] * x0_cat + (1 - ab[:, :, None]) * self._uniform()  # q(x_t | x_0), categories
        x_cat = self._draw(q_t, None) if self.S else x0_cat
        eps, p0 = self._predict(x_num, x_cat, i)
        mse = F.mse_loss(eps, noise) if self.c else torch.zeros(())
        kl = torch.zeros(())
        if self.S:
            q = self._posterior(x_cat, x0_cat, i)
            p = self._posterior(x_cat, p0, i)
            terms = q * (q.clamp_min(1e-30).log() - p.clamp_min(1e-30).log())  # (B, S, K)
            kl = terms.sum(-1).mean()  # mean over rows and columns
        return mse + kl, {"gaussian_mse": mse.detach(), "multinomial_kl": kl.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n rows by T ancestral steps: (continuous values (n, c), discrete codes (n, d))."""
        x_num = torch.randn(n, self.c, generator=generator)
        x_cat = self._draw(self._uniform().expand(n, self.S, self.K), generator) if self.S else torch.zeros(n, 0, 1)
        for t in reversed(range(self.config.num_timesteps)):
            i = torch.full((1,), t, dtype=torch.long)  # one t for every row: the time embedding is computed once
            eps, p0 = self._predict(x_num, x_cat, i)
            beta, ab, ab_prev = self.betas[t], self.alpha_bar[t], self.alpha_bar_prev[t]
            # x̂_0 from ε̂ (clipped to the range normal scores take), then the posterior mean of
            # q(x_{t−1} | x_t, x̂_0), eq. (7) of Ho et al. 2020; variance β̃_t
            x0 = (x_num - (1 - ab).sqrt() * eps) / ab.sqrt()
            if self.config.clip_x0 > 0:
                x0 = x0.clamp(-self.config.clip_x0, self.config.clip_x0)
            x_num = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_num) / (1 - ab)
            if t > 0:
                var = beta * (1 - ab_prev) / (1 - ab)
                x_num = x_num + var.sqrt() * torch.randn(x_num.shape, generator=generator)
            if self.S:
                x_cat = self._draw(self._posterior(x_cat, p0, i), generator)
        codes = x_cat.argmax(-1).numpy() if self.S else np.zeros((n, 0), dtype=np.int64)
        return self.schema.from_normal_scores(x_num.double().numpy()), codes
