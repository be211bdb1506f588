"""genloom: build, train, sample, evaluate and serve generative models from one API and one CLI.

import genloom as gl
gl.train("gpt", data="tinyshakespeare", preset="nanogpt-cpu", out="runs/shakespeare")
lm = gl.load("runs/shakespeare")
print(lm.generate("ROMEO:", max_new_tokens=200, temperature=0.8, top_k=40))
"""

from genloom.api import (
    MODALITIES,
    Budget,
    ImageModel,
    LanguageModel,
    Metrics,
    Modality,
    RunConfig,
    Sampled,
    Translator,
    compare,
    demo,
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
    train,
    tune,
)
from genloom.errors import UserError
from genloom.generation import Completion, GenerationConfig
from genloom.masked_lm import MaskedLanguageModel

__version__ = "0.1.0"

__all__ = [
    "MODALITIES",
    "Budget",
    "Completion",
    "GenerationConfig",
    "ImageModel",
    "LanguageModel",
    "MaskedLanguageModel",
    "Metrics",
    "Modality",
    "RunConfig",
    "Sampled",
    "Translator",
    "UserError",
    "__version__",
    "compare",
    "demo",
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
    "train",
    "tune",
]
