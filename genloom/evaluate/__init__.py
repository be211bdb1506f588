"""Metrics and reports: exact perplexity for text, masked-token accuracy for masked LMs, loss curves, model cards."""

from genloom.evaluate.masked import masked_lm_metrics
from genloom.evaluate.report import plot_loss_curve, write_card
from genloom.evaluate.text import language_model_loss

__all__ = ["language_model_loss", "masked_lm_metrics", "plot_loss_curve", "write_card"]
