"""Named copula configs; a copula is fitted in one pass, so the train section only seeds it."""

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "debug": {"model": {}, "data": {"source": "wine", "quantiles": 32}, "train": {"max_iters": 1, "progress": False}},
    "default": {"model": {}, "train": {"max_iters": 1}},
}
