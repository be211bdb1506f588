"""The ctgan family: a conditional Wasserstein GAN for tables with training-by-sampling and PacGAN (Xu et al. 2019)."""

from genloom.models.ctgan.model import CTGAN, CTGANConfig
from genloom.models.ctgan.presets import PRESETS

__all__ = ["CTGAN", "PRESETS", "CTGANConfig"]
