"""The tabddpm family: Gaussian plus multinomial diffusion over table rows (Kotelnikov et al. 2023)."""

from genloom.models.tabddpm.model import TabDDPM, TabDDPMConfig
from genloom.models.tabddpm.presets import PRESETS

__all__ = ["PRESETS", "TabDDPM", "TabDDPMConfig"]
