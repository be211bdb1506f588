"""The shared training loop, its config, optimizer and learning-rate schedule.

Its names load on first use (genloom/lazy.py): `import genloom` imports this package without torch."""

from typing import TYPE_CHECKING

from genloom.lazy import exports

WHERE = {
    "TrainConfig": "genloom.train.config",
    "TrainResult": "genloom.train.loop",
    "Trainer": "genloom.train.loop",
    "lr_at": "genloom.train.optim",
    "make_optimizer": "genloom.train.optim",
}
__all__ = ["TrainConfig", "TrainResult", "Trainer", "lr_at", "make_optimizer"]
__getattr__ = exports(__name__, WHERE)

if TYPE_CHECKING:
    from genloom.train.config import TrainConfig
    from genloom.train.loop import Trainer, TrainResult
    from genloom.train.optim import lr_at, make_optimizer
