"""The flow family: RealNVP/Glow-style normalizing flows with exact likelihood."""

from genloom.models.flow.model import Flow, FlowConfig
from genloom.models.flow.presets import PRESETS

__all__ = ["PRESETS", "Flow", "FlowConfig"]
