"""The tvae family: a variational autoencoder over mode-normalized table rows (Xu et al. 2019)."""

from genloom.models.tvae.model import TVAE, TVAEConfig
from genloom.models.tvae.presets import PRESETS

__all__ = ["PRESETS", "TVAE", "TVAEConfig"]
