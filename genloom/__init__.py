"""genloom: build, train, sample, evaluate and serve generative models from one API and one CLI.

import genloom as gl
gl.train("gpt", data="tinyshakespeare", preset="nanogpt-cpu", out="runs/shakespeare")
lm = gl.load("runs/shakespeare")
print(lm.generate("ROMEO:", max_new_tokens=200, temperature=0.8, top_k=40))

The public API (`genloom.api`) is imported on first use of any of its names, not with the package, so
`genloom --help` and `import genloom` answer without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# where each public name lives; all of them are bound on the first access of any (see __getattr__)
_PUBLIC = {
    "genloom.api": [
        "MODALITIES",
        "Budget",
        "ImageModel",
        "LanguageModel",
        "Metrics",
        "Modality",
        "RunConfig",
        "Sampled",
        "Scrubber",
        "Translator",
        "compare",
        "demo",
        "detect",
        "evaluate",
        "evaluate_images",
        "export",
        "export_hf",
        "families",
        "load",
        "load_for",
        "load_hf_bert",
        "open_run",
        "resolve_config",
        "sample",
        "scrub",
        "train",
        "tune",
    ],
    "genloom.documents": ["Index", "IndexConfig"],
    "genloom.agents": ["Agent", "AgentConfig", "AgentResult"],
    "genloom.errors": ["UserError"],
    "genloom.generation": ["Completion", "GenerationConfig"],
    "genloom.masked_lm": ["MaskedLanguageModel"],
}

__all__ = sorted([*(name for names in _PUBLIC.values() for name in names), "__version__"])

if TYPE_CHECKING:
    from genloom.agents import Agent, AgentConfig, AgentResult
    from genloom.api import (
        MODALITIES,
        Budget,
        ImageModel,
        LanguageModel,
        Metrics,
        Modality,
        RunConfig,
        Sampled,
        Scrubber,
        Translator,
        compare,
        demo,
        detect,
        evaluate,
        evaluate_images,
        export,
        export_hf,
        families,
        load,
        load_for,
        load_hf_bert,
        open_run,
        resolve_config,
        sample,
        scrub,
        train,
        tune,
    )
    from genloom.documents import Index, IndexConfig
    from genloom.errors import UserError
    from genloom.generation import Completion, GenerationConfig
    from genloom.masked_lm import MaskedLanguageModel


# The subpackages genloom.train, genloom.evaluate and genloom.tune share their names with public
# functions. Python binds a subpackage to its parent's attribute when it is first imported, whenever
# that is; importing them here (they load nothing until used) and removing the bindings makes the first
# access of `genloom.train` etc. go to __getattr__ below, which binds the functions for good.
import genloom.evaluate  # noqa: E402
import genloom.train  # noqa: E402
import genloom.tune  # noqa: E402

for _shadowed in ("evaluate", "train", "tune"):
    del globals()[_shadowed]


def __getattr__(name: str) -> Any:
    """Import the public API on first use and bind every public name at once."""
    if not any(name in names for names in _PUBLIC.values()):
        raise AttributeError(f"module 'genloom' has no attribute {name!r}")
    for module, names in _PUBLIC.items():
        loaded = importlib.import_module(module)
        globals().update({n: getattr(loaded, n) for n in names})
    return globals()[name]
