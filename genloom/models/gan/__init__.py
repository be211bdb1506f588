"""The GAN family: conditional DCGAN with non-saturating or WGAN-GP losses."""

from genloom.models.gan.model import GAN, GANConfig
from genloom.models.gan.presets import PRESETS

__all__ = ["GAN", "PRESETS", "GANConfig"]
