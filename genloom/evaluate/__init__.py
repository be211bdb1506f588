"""Metrics and reports: exact perplexity for text, loss curves, model cards."""

from genloom.evaluate.report import plot_loss_curve, write_card
from genloom.evaluate.text import language_model_loss

__all__ = ["language_model_loss", "plot_loss_curve", "write_card"]
