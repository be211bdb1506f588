"""The masked language model family (BERT): model, presets and Hugging Face interop."""

from genloom.models.bert.hf import (
    config_from_hf,
    config_to_hf,
    read_hf_dir,
    read_sentence_pipeline,
    state_dict_from_hf,
    state_dict_to_hf,
    write_hf_dir,
)
from genloom.models.bert.model import Bert, BertConfig
from genloom.models.bert.presets import PRESETS

__all__ = [
    "PRESETS",
    "Bert",
    "BertConfig",
    "config_from_hf",
    "config_to_hf",
    "read_hf_dir",
    "read_sentence_pipeline",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "write_hf_dir",
]
