"""The diffusion family: DDPM/DDIM with a class-conditional U-Net and classifier-free guidance."""

from genloom.models.diffusion.model import Diffusion, DiffusionConfig
from genloom.models.diffusion.presets import PRESETS
from genloom.models.diffusion.sampler import DDIMSampler, DDPMSampler

__all__ = ["PRESETS", "DDIMSampler", "DDPMSampler", "Diffusion", "DiffusionConfig"]
