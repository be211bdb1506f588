"""Gaussian copula over fitted marginals (Nelsen 2006, ch. 2; for synthetic tables as in Patki et al. 2016,
"The Synthetic Data Vault").

The joint distribution of a table is split into one marginal per column and a dependence structure.
The marginals are the table's fitted quantile functions (genloom/data/tables.py: continuous columns
become normal scores z = Φ⁻¹(F(x))) and category shares (discrete columns). A discrete column enters the
copula as a uniform draw inside its category's interval of the cumulative shares, mapped through Φ⁻¹
(categories ordered by frequency, or by value for a numeric column with few values). The dependence is
the correlation matrix R of all normal scores. Sampling: ε ~ N(0, I), z = L ε with R = L Lᵀ; continuous
z go back through the quantile functions, discrete ones to the category whose interval holds Φ(z).

The fit is closed form (shares, a correlation), so the family has no `loss`: the table modality calls
`fit` once and saves the result like any run (genloom/api/tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtr, ndtri
from torch import nn

from genloom.data.tables import Z_CLIP, TableSchema


@dataclass
class CopulaConfig:
    shrinkage: float = 0.0  # weight of the identity blended into R: > 0 steadies a copula of few rows and many columns

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be between 0 and 1, got {self.shrinkage}")


class Copula(nn.Module):
    """The fitted copula: category shares and the correlation of normal scores, as buffers (saved in
    model.safetensors)."""

    encoding = "quantile"  # the batches it is fitted on: normal scores and category codes
    correlation: torch.Tensor
    shares: torch.Tensor

    def __init__(self, config: CopulaConfig, schema: TableSchema) -> None:
        super().__init__()
        self.config = config
        self.schema = schema
        self.n_continuous = schema.n_continuous
        self.cardinalities = schema.cardinalities
        d = self.n_continuous + len(self.cardinalities)
        self.register_buffer("correlation", torch.eye(d, dtype=torch.float64))  # R (d, d)
        self.register_buffer("shares", torch.zeros(sum(self.cardinalities), dtype=torch.float64))  # categories

    def _bounds(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper cumulative share of each category of discrete feature i."""
        start = sum(self.cardinalities[:i])
        p = self.shares[start : start + self.cardinalities[i]].numpy()
        upper = np.cumsum(p)
        return upper - p, upper

    def fit(self, scores: torch.Tensor, codes: torch.Tensor, generator: torch.Generator) -> None:
        """Fit on the train rows: `scores` (N, c) normal scores, `codes` (N, d) category codes."""
        shares = [
            torch.bincount(codes[:, i], minlength=k).double() / len(codes) for i, k in enumerate(self.cardinalities)
        ]
        self.shares.copy_(torch.cat(shares) if shares else self.shares)
        rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator)))
        columns = [scores.double().numpy()]
        for i in range(len(self.cardinalities)):
            low, high = self._bounds(i)
            k = codes[:, i].numpy()
            u = low[k] + rng.random(len(k)) * (high[k] - low[k])  # uniform inside the category's interval
            columns.append(ndtri(np.clip(u, ndtr(-Z_CLIP), ndtr(Z_CLIP)))[:, None])
        z = np.concatenate(columns, axis=1)  # (N, d)
        r = np.corrcoef(z, rowvar=False) if len(z) > 1 else np.eye(z.shape[1])
        r = np.nan_to_num(np.atleast_2d(r))  # a constant column has no correlation
        np.fill_diagonal(r, 1.0)
        r = (1 - self.config.shrinkage) * r + self.config.shrinkage * np.eye(len(r))
        values, vectors = np.linalg.eigh(r)  # nearest positive-definite correlation: clip eigenvalues
        r = vectors @ np.diag(np.clip(values, 1e-6, None)) @ vectors.T
        scale = np.sqrt(np.diag(r))
        self.correlation.copy_(torch.from_numpy(r / scale[:, None] / scale[None, :]))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """n rows as (continuous values (n, c) float64, category codes (n, d) int64)."""
        d = self.correlation.shape[0]
        eps = torch.randn(n, d, generator=generator, dtype=torch.float64)
        z = (eps @ torch.linalg.cholesky(self.correlation).T).numpy()  # (n, d), correlation R
        continuous = self.schema.from_normal_scores(z[:, : self.n_continuous])
        codes = np.zeros((n, len(self.cardinalities)), dtype=np.int64)
        for i in range(len(self.cardinalities)):
            _, high = self._bounds(i)
            codes[:, i] = np.minimum(np.searchsorted(high, ndtr(z[:, self.n_continuous + i])), len(high) - 1)
        return continuous, codes
