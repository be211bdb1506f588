"""The shared training loop, its config, optimizer and learning-rate schedule."""

from genloom.train.config import TrainConfig
from genloom.train.loop import Trainer, TrainResult
from genloom.train.optim import lr_at, make_optimizer

__all__ = ["TrainConfig", "TrainResult", "Trainer", "lr_at", "make_optimizer"]
