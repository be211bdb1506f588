"""Hugging Face BERT interop: a local `BertForMaskedLM` directory ↔ the genloom `Bert` family.

A Hugging Face BERT directory holds `config.json` (hyper-parameters), `model.safetensors` (weights
named `bert.encoder.layer.{i}.attention.self.query.weight`, ...) and `tokenizer.json`. This module
maps the config fields and the weight names both ways, reading and writing safetensors only: no
`transformers` import, no pickle. The tokenizer file is handled by `genloom.api`.

Name map (Hugging Face → genloom), per layer i:
  attention.self.{query,key,value}   → blocks.i.attn.qkv (stacked q; k; v along the output axis)
  attention.output.dense             → blocks.i.attn.proj
  attention.output.LayerNorm         → blocks.i.norm_1
  intermediate.dense / output.dense  → blocks.i.mlp.up / blocks.i.mlp.down
  output.LayerNorm                   → blocks.i.norm_2

A bare `BertModel` checkpoint (what sentence-transformers directories hold) names the same tensors
without the `bert.` prefix and has no `cls.predictions.*` head: it loads as an encoder whose masked-LM
head is absent (`read_hf_dir` says so). `read_sentence_pipeline` reads such a directory's `modules.json`,
`1_Pooling/config.json` and `sentence_bert_config.json` into the pooling `embed()` follows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from genloom.config import check_int_fields, read_json_object
from genloom.errors import UserError
from genloom.models.bert.model import Bert, BertConfig

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
UNUSED = ("pooler.", "cls.seq_relationship.", "embeddings.position_ids")  # parts of BERT the MLM does not use
HEAD = "cls.predictions."  # the masked-LM head; absent from a bare BertModel
ST_MODULES = "modules.json"  # sentence-transformers: the module pipeline


def config_from_hf(hf: dict[str, Any], where: str = HF_CONFIG) -> BertConfig:
    """`BertConfig` from a Hugging Face BERT `config.json` dict; refuses what the family cannot express."""
    if hf.get("model_type") != "bert":
        raise UserError(f"{where}: model_type is {hf.get('model_type')!r}; only 'bert' checkpoints can be loaded")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise UserError(f"{where}: hidden_act {hf['hidden_act']!r} is not supported (genloom's BERT uses 'gelu')")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise UserError(
            f"{where}: position_embedding_type {hf['position_embedding_type']!r}; only 'absolute' is supported"
        )
    try:
        return BertConfig(
            vocab_size=int(hf["vocab_size"]),
            block_size=int(hf["max_position_embeddings"]),
            type_vocab_size=int(hf.get("type_vocab_size", 2)),
            n_layer=int(hf["num_hidden_layers"]),
            n_head=int(hf["num_attention_heads"]),
            n_embd=int(hf["hidden_size"]),
            mlp_hidden=int(hf["intermediate_size"]),
            norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
            norm_position="post",
            dropout=float(hf.get("hidden_dropout_prob", 0.1)),
            pad_id=int(hf.get("pad_token_id") or 0),
        )
    except KeyError as e:
        raise UserError(f"{where}: missing field {e.args[0]!r}") from None
    except (ValueError, TypeError) as e:  # TypeError: a list or object where a number goes
        raise UserError(f"{where}: {e}") from None


def config_to_hf(cfg: BertConfig) -> dict[str, Any]:
    """The Hugging Face `config.json` dict of a post-norm genloom BERT."""
    if cfg.norm_position != "post":
        raise UserError("model.norm_position: only post-norm BERT exists in Hugging Face; this model is pre-norm")
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.n_embd,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "intermediate_size": cfg.mlp_hidden or 4 * cfg.n_embd,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.dropout,
        "max_position_embeddings": cfg.block_size,
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": cfg.norm_eps,
        "pad_token_id": cfg.pad_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


def _name_pairs(n_layer: int) -> list[tuple[str, str]]:
    """(Hugging Face name, genloom name) for every tensor that maps one to one."""
    pairs = [
        ("bert.embeddings.word_embeddings.weight", "embeddings.tokens.weight"),
        ("bert.embeddings.position_embeddings.weight", "embeddings.positions.weight"),
        ("bert.embeddings.token_type_embeddings.weight", "embeddings.segments.weight"),
        ("cls.predictions.bias", "head.decoder.bias"),
    ]
    for kind in ("weight", "bias"):
        pairs += [
            (f"bert.embeddings.LayerNorm.{kind}", f"embeddings.norm.{kind}"),
            (f"cls.predictions.transform.dense.{kind}", f"head.dense.{kind}"),
            (f"cls.predictions.transform.LayerNorm.{kind}", f"head.norm.{kind}"),
        ]
        for i in range(n_layer):
            hf, ours = f"bert.encoder.layer.{i}", f"blocks.{i}"
            pairs += [
                (f"{hf}.attention.output.dense.{kind}", f"{ours}.attn.proj.{kind}"),
                (f"{hf}.attention.output.LayerNorm.{kind}", f"{ours}.norm_1.{kind}"),
                (f"{hf}.intermediate.dense.{kind}", f"{ours}.mlp.up.{kind}"),
                (f"{hf}.output.dense.{kind}", f"{ours}.mlp.down.{kind}"),
                (f"{hf}.output.LayerNorm.{kind}", f"{ours}.norm_2.{kind}"),
            ]
    return pairs


def _legacy_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old TF-converted checkpoints call LayerNorm parameters gamma/beta; use today's names."""
    out = {}
    for name, t in tensors.items():
        if ".LayerNorm." in name:
            name = name.replace(".gamma", ".weight").replace(".beta", ".bias")
        out[name] = t
    return out


def state_dict_from_hf(
    tensors: dict[str, torch.Tensor], cfg: BertConfig, where: str = HF_WEIGHTS
) -> tuple[dict[str, Any], bool]:
    """A `Bert` state dict from Hugging Face `BertForMaskedLM` (or bare `BertModel`) tensors, and whether
    the masked-LM head was there (without it the head's entries are left out); a missing tensor is a
    `UserError`."""
    tensors = _legacy_names(tensors)
    if not any(name.startswith("bert.") for name in tensors):  # a bare BertModel: same names, no prefix
        tensors = {(n if n.startswith("cls.") else f"bert.{n}"): t for n, t in tensors.items()}
    has_head = any(name.startswith(HEAD) for name in tensors)
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        if name not in tensors:
            raise UserError(f"{where}: missing weight {name!r} (a BertModel or BertForMaskedLM checkpoint is needed)")
        used.add(name)
        return tensors[name]

    pairs = [(hf, ours) for hf, ours in _name_pairs(cfg.n_layer) if has_head or not hf.startswith(HEAD)]
    state: dict[str, Any] = {ours: take(hf) for hf, ours in pairs}
    for i in range(cfg.n_layer):
        attn = f"bert.encoder.layer.{i}.attention.self"
        for kind in ("weight", "bias"):  # (3C, C) and (3C,): rows of q, then k, then v
            q, k, v = (take(f"{attn}.{part}.{kind}") for part in ("query", "key", "value"))
            state[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([q, k, v], dim=0)
    if has_head:
        state["head.decoder.weight"] = state["embeddings.tokens.weight"]  # tied
    # The decoder's weight and bias are stored again by some versions; they must equal the tied ones.
    for extra in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"):
        used.add(extra)
    unexpected = sorted(n for n in tensors if n not in used and not any(u in n for u in UNUSED))
    if unexpected:
        raise UserError(f"{where}: unexpected weights {unexpected[:3]} (not a BERT checkpoint?)")
    return state, has_head


def state_dict_to_hf(model: Bert) -> dict[str, torch.Tensor]:
    """Hugging Face `BertForMaskedLM` tensors (contiguous copies, ready for `safetensors.save_file`)."""
    cfg = model.config
    if cfg.norm_position != "post":
        raise UserError("model.norm_position: only post-norm BERT exists in Hugging Face; this model is pre-norm")
    ours = model.state_dict()
    out = {hf: ours[name] for hf, name in _name_pairs(cfg.n_layer)}
    C = cfg.n_embd
    for i in range(cfg.n_layer):
        attn = f"bert.encoder.layer.{i}.attention.self"
        for kind in ("weight", "bias"):
            qkv = ours[f"blocks.{i}.attn.qkv.{kind}"]  # (3C, C) or (3C,)
            for j, part in enumerate(("query", "key", "value")):
                out[f"{attn}.{part}.{kind}"] = qkv[j * C : (j + 1) * C]
    return {name: t.detach().clone().contiguous() for name, t in out.items()}


HF_SIZE_FIELDS = (
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "num_hidden_layers",
    "num_attention_heads",
    "hidden_size",
    "intermediate_size",
    "pad_token_id",
)


def read_hf_dir(directory: str | Path) -> tuple[BertConfig, dict[str, Any], bool]:
    """Config, state dict and has-MLM-head of a local Hugging Face BERT directory, each file checked."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / HF_CONFIG, directory / HF_WEIGHTS
    if not config_path.exists():
        raise UserError(f"{directory}: no {HF_CONFIG} (not a Hugging Face model directory)")
    hf = read_json_object(config_path)
    check_int_fields(
        hf,
        HF_SIZE_FIELDS,
        str(config_path),
    )
    cfg = config_from_hf(hf, str(config_path))
    if not weights_path.exists():
        raise UserError(f"{directory}: no {HF_WEIGHTS} (only safetensors weights are read; pickled .bin files never)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{weights_path}: truncated or corrupt safetensors file ({str(e).splitlines()[0]})") from None
    state, has_head = state_dict_from_hf(tensors, cfg, str(weights_path))
    return cfg, state, has_head


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


POOLING_MODES = {  # 1_Pooling/config.json flag → Pooling.mode
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}


def read_sentence_pipeline(directory: str | Path) -> tuple[str, bool, int | None] | None:
    """(pooling mode, normalize, max_seq_length) of a sentence-transformers directory, None for another.

    Follows `modules.json`: a Transformer, then a Pooling module (its config in the module's folder),
    then optionally Normalize; anything else (a Dense projection, two pooling modes at once) is refused."""
    directory = Path(directory)
    path = directory / ST_MODULES
    if not path.exists():
        return None
    modules = _read_json(path)
    if not isinstance(modules, list):
        raise UserError(f"{path}: expected a list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    known = {"Transformer", "Pooling", "Normalize"}
    if kinds[:2] != ["Transformer", "Pooling"] or not set(kinds) <= known:
        raise UserError(
            f"{path}: modules {kinds} are not supported; expected Transformer, Pooling and optionally Normalize"
        )
    pooling_dir = directory / str(modules[1].get("path") or "1_Pooling")
    pooling = _read_json(pooling_dir / "config.json") if (pooling_dir / "config.json").exists() else {}
    modes = [mode for flag, mode in POOLING_MODES.items() if pooling.get(flag)]
    other = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v and k not in POOLING_MODES]
    if len(modes) > 1 or other:
        raise UserError(
            f"{pooling_dir / 'config.json'}: pooling {modes + other} is not supported (one of mean, cls, max)"
        )
    max_len = None
    st_config = directory / "sentence_bert_config.json"
    if st_config.exists():
        max_len = _read_json(st_config).get("max_seq_length")
    return (modes[0] if modes else "mean"), "Normalize" in kinds, int(max_len) if max_len else None


def write_hf_dir(model: Bert, directory: str | Path) -> None:
    """Write `config.json` and `model.safetensors` that `BertForMaskedLM.from_pretrained` reads."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hf_config = config_to_hf(model.config)
    save_file(state_dict_to_hf(model), str(directory / HF_WEIGHTS), metadata={"format": "pt"})
    (directory / HF_CONFIG).write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
