"""The registry of model families: one explicit table, checked by a test against the folders.

A new family is a folder (model.py, presets.py) plus one row here; the CLI, the API and `genloom
families` pick it up from this table, with no change elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genloom.data.masking import MaskedTextDataConfig
from genloom.data.text import TextDataConfig
from genloom.errors import UserError
from genloom.models import bert, gpt


@dataclass(frozen=True)
class Family:
    name: str
    modality: str  # what it generates: "text", "image", ...
    use_for: str  # one line for `genloom families`: which model for which app
    config: type  # the model's Config dataclass
    model: type  # the nn.Module built from that config
    data_config: type  # the data section's dataclass
    presets: dict[str, dict[str, dict[str, Any]]]
    objective: str = "next-token"  # text only: "next-token" (windows of targets) or "masked" (BERT masking)


FAMILIES: dict[str, Family] = {
    "gpt": Family(
        name="gpt",
        modality="text",
        use_for="decoder-only transformer LM: text generation, completion, chat after tuning",
        config=gpt.GPTConfig,
        model=gpt.GPT,
        data_config=TextDataConfig,
        presets=gpt.PRESETS,
    ),
    "bert": Family(
        name="bert",
        modality="text",
        use_for="bidirectional masked LM (encoder): fill-mask, sentence embeddings, a base to fine-tune",
        config=bert.BertConfig,
        model=bert.Bert,
        data_config=MaskedTextDataConfig,
        presets=bert.PRESETS,
        objective="masked",
    ),
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown family {name!r}; valid families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def get_preset(family: Family, name: str) -> dict[str, dict[str, Any]]:
    if name not in family.presets:
        raise UserError(f"unknown preset {name!r} for family {family.name}; valid presets: {', '.join(family.presets)}")
    return family.presets[name]
