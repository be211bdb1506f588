"""genloom: build, train, sample, evaluate and serve generative models from one API and one CLI.

import genloom as gl
gl.train("gpt", data="tinyshakespeare", preset="nanogpt-cpu", out="runs/shakespeare")
lm = gl.load("runs/shakespeare")
print(lm.generate("ROMEO:", max_new_tokens=200, temperature=0.8, top_k=40))
"""

from genloom.api import (
    ImageModel,
    LanguageModel,
    RunConfig,
    Translator,
    demo,
    evaluate,
    evaluate_images,
    export,
    export_hf,
    families,
    load,
    load_hf_bert,
    resolve_config,
    train,
    tune,
)
from genloom.errors import UserError
from genloom.generation import Completion, GenerationConfig
from genloom.masked_lm import MaskedLanguageModel

__version__ = "0.1.0"

__all__ = [
    "Completion",
    "GenerationConfig",
    "ImageModel",
    "LanguageModel",
    "MaskedLanguageModel",
    "RunConfig",
    "Translator",
    "UserError",
    "__version__",
    "demo",
    "evaluate",
    "evaluate_images",
    "export",
    "export_hf",
    "families",
    "load",
    "load_hf_bert",
    "resolve_config",
    "train",
    "tune",
]
