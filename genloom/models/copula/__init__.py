"""The copula family: a Gaussian copula over the table's fitted marginals (no gradient training)."""

from genloom.models.copula.model import Copula, CopulaConfig
from genloom.models.copula.presets import PRESETS

__all__ = ["PRESETS", "Copula", "CopulaConfig"]
