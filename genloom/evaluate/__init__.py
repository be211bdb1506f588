"""Metrics and reports: exact perplexity for text, masked-token accuracy for masked LMs, loss curves, model cards.

Its names load on first use (genloom/lazy.py): `import genloom` imports this package without torch."""

from typing import TYPE_CHECKING

from genloom.lazy import exports

WHERE = {
    "language_model_loss": "genloom.evaluate.text",
    "masked_lm_metrics": "genloom.evaluate.masked",
    "plot_loss_curve": "genloom.evaluate.report",
    "write_card": "genloom.evaluate.report",
}
__all__ = ["language_model_loss", "masked_lm_metrics", "plot_loss_curve", "write_card"]
__getattr__ = exports(__name__, WHERE)

if TYPE_CHECKING:
    from genloom.evaluate.masked import masked_lm_metrics
    from genloom.evaluate.report import plot_loss_curve, write_card
    from genloom.evaluate.text import language_model_loss
