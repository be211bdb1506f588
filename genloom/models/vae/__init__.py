"""The VAE family: convolutional variational autoencoders, optionally class-conditional."""

from genloom.models.vae.model import VAE, VAEConfig
from genloom.models.vae.presets import PRESETS

__all__ = ["PRESETS", "VAE", "VAEConfig"]
