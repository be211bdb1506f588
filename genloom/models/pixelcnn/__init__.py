"""The PixelCNN family: gated PixelCNN with exact likelihood and autoregressive sampling."""

from genloom.models.pixelcnn.model import PixelCNN, PixelCNNConfig
from genloom.models.pixelcnn.presets import PRESETS

__all__ = ["PRESETS", "PixelCNN", "PixelCNNConfig"]
