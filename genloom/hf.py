"""Hugging Face checkpoints in and out: GPT-2 and Llama directories ↔ genloom's GPT family.

A Hugging Face model directory holds `config.json`, the weights as `model.safetensors` (or shards
listed in `model.safetensors.index.json`) and `tokenizer.json`. We read them with `safetensors` and
`tokenizers` only — `transformers` is never imported — and map every tensor by an explicit table:

| genloom (`GPT`)            | GPT-2 (`GPT2LMHeadModel`)               | Llama (`LlamaForCausalLM`)                   |
|----------------------------|-----------------------------------------|----------------------------------------------|
| wte                        | transformer.wte                         | model.embed_tokens                           |
| wpe (learned positions)    | transformer.wpe                         | — (RoPE, rope_theta)                         |
| blocks.i.norm_1            | h.i.ln_1 (LayerNorm + bias)             | layers.i.input_layernorm (RMSNorm)           |
| blocks.i.attn.qkv          | h.i.attn.c_attn (Conv1D: transposed)    | self_attn.q_proj ‖ k_proj ‖ v_proj (GQA)     |
| blocks.i.attn.proj         | h.i.attn.c_proj (Conv1D)                | self_attn.o_proj                             |
| blocks.i.norm_2            | h.i.ln_2                                | layers.i.post_attention_layernorm            |
| blocks.i.mlp (GELU/SwiGLU) | h.i.mlp.c_fc, c_proj (Conv1D, tanh GELU)| mlp.gate_proj, up_proj, down_proj (SiLU)     |
| norm_f, lm_head            | transformer.ln_f, lm_head (tied)        | model.norm, lm_head (tied or not)            |

GPT-2's `Conv1D` stores weights as (in, out), the transpose of `nn.Linear`. Our RoPE uses the same
half-split layout as Hugging Face Llama, so q/k weights need no permutation. Mistral and Qwen2
checkpoints are Llama-shaped (Qwen2 adds q/k/v biases); RoPE rescaling (`rope_scaling`, or
transformers 5's `rope_parameters`) of kinds linear, dynamic, llama3 and yarn maps to `GPTConfig`'s
`rope_*` fields. The tokenizer encodes as the checkpoint's own (`genloom.tokenizers.load_pretrained_tokenizer`):
no start token is added unless its post-processor or `tokenizer_config.json` says so. `save_hf` writes the
same tables backwards, so `transformers` loads a genloom run (GPT-2 layout for learned positions +
LayerNorm + GELU; Llama layout for RoPE + RMSNorm + SwiGLU).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from genloom.chat import ChatTemplate, JinjaChatTemplate
from genloom.config import check_int_fields, read_json_object
from genloom.errors import UserError
from genloom.models.gpt import GPT, GPTConfig
from genloom.tokenizers import Tokenizer, load_pretrained_tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer as HFTokenizer

SUPPORTED = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2")  # the last three are Llama-shaped
ROPE_KINDS = ("default", "linear", "dynamic", "llama3", "yarn")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILE = "tokenizer.json"
GPT2_ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}
NEOX_PREFIX = "gpt_neox."  # GPT-NeoX tensor names start with it, except the head (embed_out / lm_head)

# (genloom name, Hugging Face names concatenated along dim 0, stored transposed)
Pair = tuple[str, list[str], bool]


def _gpt2_pairs(n_layer: int, tied: bool) -> list[Pair]:
    pairs: list[Pair] = [("wte.weight", ["wte.weight"], False), ("wpe.weight", ["wpe.weight"], False)]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"h.{i}."
        for kind in ("weight", "bias"):
            pairs += [
                (f"{ours}norm_1.{kind}", [f"{theirs}ln_1.{kind}"], False),
                (f"{ours}attn.qkv.{kind}", [f"{theirs}attn.c_attn.{kind}"], kind == "weight"),
                (f"{ours}attn.proj.{kind}", [f"{theirs}attn.c_proj.{kind}"], kind == "weight"),
                (f"{ours}norm_2.{kind}", [f"{theirs}ln_2.{kind}"], False),
                (f"{ours}mlp.up.{kind}", [f"{theirs}mlp.c_fc.{kind}"], kind == "weight"),
                (f"{ours}mlp.down.{kind}", [f"{theirs}mlp.c_proj.{kind}"], kind == "weight"),
            ]
    pairs += [("norm_f.weight", ["ln_f.weight"], False), ("norm_f.bias", ["ln_f.bias"], False)]
    if not tied:
        pairs.append(("lm_head.weight", ["lm_head.weight"], False))
    return pairs


def _llama_pairs(n_layer: int, tied: bool, qkv_bias: bool = False) -> list[Pair]:
    pairs: list[Pair] = [("wte.weight", ["model.embed_tokens.weight"], False)]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        attn = [f"{theirs}self_attn.{p}_proj.weight" for p in "qkv"]
        if qkv_bias:  # Qwen2
            pairs.append((f"{ours}attn.qkv.bias", [f"{theirs}self_attn.{p}_proj.bias" for p in "qkv"], False))
        pairs += [
            (f"{ours}norm_1.weight", [f"{theirs}input_layernorm.weight"], False),
            (f"{ours}attn.qkv.weight", attn, False),
            (f"{ours}attn.proj.weight", [f"{theirs}self_attn.o_proj.weight"], False),
            (f"{ours}norm_2.weight", [f"{theirs}post_attention_layernorm.weight"], False),
            (f"{ours}mlp.gate.weight", [f"{theirs}mlp.gate_proj.weight"], False),
            (f"{ours}mlp.up.weight", [f"{theirs}mlp.up_proj.weight"], False),
            (f"{ours}mlp.down.weight", [f"{theirs}mlp.down_proj.weight"], False),
        ]
    pairs.append(("norm_f.weight", ["model.norm.weight"], False))
    if not tied:
        pairs.append(("lm_head.weight", ["lm_head.weight"], False))
    return pairs


def _neox_pairs(n_layer: int, tied: bool) -> list[Pair]:
    """GPT-NeoX names with the `gpt_neox.` prefix removed and the head called `lm_head` (`_read_tensors`)."""
    pairs: list[Pair] = [("wte.weight", ["embed_in.weight"], False)]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"layers.{i}."
        for kind in ("weight", "bias"):
            pairs += [
                (f"{ours}norm_1.{kind}", [f"{theirs}input_layernorm.{kind}"], False),
                (f"{ours}attn.qkv.{kind}", [f"{theirs}attention.query_key_value.{kind}"], False),
                (f"{ours}attn.proj.{kind}", [f"{theirs}attention.dense.{kind}"], False),
                (f"{ours}norm_2.{kind}", [f"{theirs}post_attention_layernorm.{kind}"], False),
                (f"{ours}mlp.up.{kind}", [f"{theirs}mlp.dense_h_to_4h.{kind}"], False),
                (f"{ours}mlp.down.{kind}", [f"{theirs}mlp.dense_4h_to_h.{kind}"], False),
            ]
    pairs += [("norm_f.weight", ["final_layer_norm.weight"], False), ("norm_f.bias", ["final_layer_norm.bias"], False)]
    if not tied:
        pairs.append(("lm_head.weight", ["lm_head.weight"], False))
    return pairs


def neox_qkv(t: torch.Tensor, n_head: int, to_neox: bool) -> torch.Tensor:
    """GPT-NeoX's fused query_key_value rows are grouped by head, (head, q|k|v, head_size); ours are
    (q|k|v, head, head_size). Works on weights (3C, C), biases (3C,) and LoRA B matrices (3C, r)."""
    rest = t.shape[1:]
    hs = t.shape[0] // (3 * n_head)
    if to_neox:
        return t.reshape(3, n_head, hs, *rest).transpose(0, 1).reshape(t.shape)
    return t.reshape(n_head, 3, hs, *rest).transpose(0, 1).reshape(t.shape)


def pairs_for(model_type: str, cfg: GPTConfig) -> list[Pair]:
    """The name table of an architecture (Mistral and Qwen2 use Llama's)."""
    if model_type == "gpt2":
        return _gpt2_pairs(cfg.n_layer, cfg.tie_weights)
    if model_type == "gpt_neox":
        return _neox_pairs(cfg.n_layer, cfg.tie_weights)
    return _llama_pairs(cfg.n_layer, cfg.tie_weights, cfg.qkv_bias)


def stored_name(model_type: str, name: str) -> str:
    """A name of the pair tables as the checkpoint file spells it."""
    if model_type == "gpt2" and name != "lm_head.weight":
        return f"transformer.{name}"
    if model_type == "gpt_neox":
        return "embed_out.weight" if name == "lm_head.weight" else NEOX_PREFIX + name
    return name


# ---- config.json ↔ GPTConfig -------------------------------------------------------------------


def _gpt2_config(c: dict[str, Any], where: str) -> GPTConfig:
    act = c.get("activation_function", "gelu_new")
    if act not in GPT2_ACTIVATIONS:
        raise UserError(
            f"{where}: activation_function {act!r} is not supported; supported: {', '.join(GPT2_ACTIVATIONS)}"
        )
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if c.get(flag):
            raise UserError(f"{where}: {flag}=true is not supported")
    return GPTConfig(
        vocab_size=c["vocab_size"],
        block_size=c.get("n_positions", 1024),
        n_layer=c["n_layer"],
        n_head=c["n_head"],
        n_embd=c["n_embd"],
        mlp="gelu",
        mlp_hidden=c.get("n_inner") or 4 * c["n_embd"],
        gelu_approximate=GPT2_ACTIVATIONS[act],  # type: ignore[arg-type]
        norm="layernorm",
        norm_eps=c.get("layer_norm_epsilon", 1e-5),
        pos_encoding="learned",
        bias=True,
        tie_weights=c.get("tie_word_embeddings", True),
    )


def _neox_config(c: dict[str, Any], where: str) -> GPTConfig:
    """GPT-NeoX with sequential residuals and full-width rotary embeddings: the shape of genloom's RoPE +
    LayerNorm + GELU presets. Pythia and GPT-NeoX-20B (parallel residual, 25% rotary) are refused."""
    if c.get("use_parallel_residual", True):
        raise UserError(f"{where}: use_parallel_residual=true (Pythia, GPT-NeoX-20B) is not supported")
    rope = dict(c.get("rope_parameters") or {})
    partial = rope.get("partial_rotary_factor", c.get("rotary_pct", 0.25))
    if partial != 1.0:
        raise UserError(f"{where}: rotary embeddings on {partial} of each head are not supported (needs 1.0)")
    if not c.get("attention_bias", True):
        raise UserError(f"{where}: attention_bias=false is not supported")
    act = c.get("hidden_act", "gelu")
    if act not in GPT2_ACTIVATIONS:
        raise UserError(f"{where}: hidden_act {act!r} is not supported; supported: {', '.join(GPT2_ACTIVATIONS)}")
    rope.setdefault("rope_theta", c.get("rotary_emb_base", c.get("rope_theta", 10000.0)))
    fields = _rope_fields({**c, "rope_parameters": rope}, where)
    return GPTConfig(
        vocab_size=c["vocab_size"],
        block_size=c.get("max_position_embeddings", 2048),
        n_layer=c["num_hidden_layers"],
        n_head=c["num_attention_heads"],
        n_embd=c["hidden_size"],
        mlp="gelu",
        mlp_hidden=c["intermediate_size"],
        gelu_approximate=GPT2_ACTIVATIONS[act],  # type: ignore[arg-type]
        norm="layernorm",
        norm_eps=c.get("layer_norm_eps", 1e-5),
        pos_encoding="rope",
        bias=True,
        tie_weights=c.get("tie_word_embeddings", False),
        **fields,
    )


def _rope_fields(c: dict[str, Any], where: str) -> dict[str, Any]:
    """GPTConfig's rope_* fields from `rope_parameters` (transformers 5) or `rope_scaling` + `rope_theta`."""
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ROPE_KINDS:
        raise UserError(f"{where}: RoPE scaling {kind!r} is not supported; supported: {', '.join(ROPE_KINDS)}")
    fields: dict[str, Any] = {"rope_theta": float(rope.get("rope_theta", c.get("rope_theta", 10000.0)))}
    if kind == "default":
        return fields
    context = c.get("max_position_embeddings", 2048)
    fields |= {"rope_scaling": kind, "rope_factor": float(rope.get("factor", 1.0))}
    if kind == "dynamic":  # transformers grows the base beyond max_position_embeddings itself
        fields["rope_original_context"] = context
    if kind in ("llama3", "yarn"):
        fields["rope_original_context"] = int(rope.get("original_max_position_embeddings") or context)
    if kind == "llama3":
        fields |= {"rope_low_freq_factor": rope["low_freq_factor"], "rope_high_freq_factor": rope["high_freq_factor"]}
    if kind == "yarn":
        factor = rope.get("factor") or context / fields["rope_original_context"]

        def mscale(scale: float, m: float = 1.0) -> float:
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        attention = rope.get("attention_factor")
        if attention is None:
            m, m_all = rope.get("mscale"), rope.get("mscale_all_dim")
            attention = mscale(factor, m) / mscale(factor, m_all) if m and m_all else mscale(factor)
        fields |= {
            "rope_factor": float(factor),
            "rope_beta_fast": float(rope.get("beta_fast") or 32),
            "rope_beta_slow": float(rope.get("beta_slow") or 1),
            "rope_attention_factor": float(attention),
            "rope_truncate": bool(rope.get("truncate", True)),
        }
    return fields


def _sliding_window(c: dict[str, Any], model_type: str, context: int, where: str) -> int:
    """The context genloom can serve exactly: a sliding window (Mistral, Qwen2) is not implemented, so a
    window shorter than the context caps it there (attention within the window is full attention)."""
    window = c.get("sliding_window")
    used = model_type == "mistral" or (model_type == "qwen2" and c.get("use_sliding_window"))
    if window is None or not used or int(window) >= context:
        return context
    warnings.warn(
        f"{where}: sliding_window={window} attention is not implemented; the context is limited to {window} "
        f"tokens (max_position_embeddings is {context}), where it equals full attention",
        stacklevel=3,
    )
    return int(window)


def _llama_config(c: dict[str, Any], where: str, model_type: str = "llama") -> GPTConfig:
    if c.get("hidden_act", "silu") != "silu":
        raise UserError(f"{where}: hidden_act {c['hidden_act']!r} is not supported; Llama uses 'silu'")
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise UserError(f"{where}: attention_bias/mlp_bias are not supported")
    heads, width = c["num_attention_heads"], c["hidden_size"]
    if c.get("head_dim") not in (None, width // heads):
        raise UserError(f"{where}: head_dim {c['head_dim']} ≠ hidden_size / num_attention_heads is not supported")
    context = c.get("max_position_embeddings", 2048)
    rope = _rope_fields(c, where)
    if rope.get("rope_scaling") == "dynamic":  # it exists to run past max_position_embeddings: allow factor × that
        context = int(context * rope["rope_factor"])
    return GPTConfig(
        vocab_size=c["vocab_size"],
        block_size=_sliding_window(c, model_type, context, where),
        n_layer=c["num_hidden_layers"],
        n_head=heads,
        n_kv_head=c.get("num_key_value_heads") or heads,
        n_embd=width,
        mlp="swiglu",
        mlp_hidden=c["intermediate_size"],
        norm="rmsnorm",
        norm_eps=c.get("rms_norm_eps", 1e-6),
        pos_encoding="rope",
        bias=False,
        qkv_bias=model_type == "qwen2",  # Qwen2 always has q/k/v biases
        tie_weights=c.get("tie_word_embeddings", False),
        **rope,
    )


SIZE_FIELDS = (
    "vocab_size",
    "n_positions",
    "n_layer",
    "n_head",
    "n_embd",
    "n_inner",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "max_position_embeddings",
    "head_dim",
)


def read_hf_config(path: Path) -> tuple[str, GPTConfig, dict[str, Any]]:
    """(model_type, GPTConfig, raw config.json) of a Hugging Face directory."""
    where = str(path / CONFIG_FILE)
    if not (path / CONFIG_FILE).exists():
        raise UserError(f"{where}: not found (a Hugging Face model directory needs config.json)")
    raw = read_json_object(path / CONFIG_FILE)
    check_int_fields(raw, SIZE_FIELDS, where)
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED:
        raise UserError(
            f"{where}: unsupported model_type {model_type!r}; supported: {', '.join(SUPPORTED)} (and bert, as a masked LM)"
        )
    try:
        if model_type == "gpt2":
            cfg = _gpt2_config(raw, where)
        elif model_type == "gpt_neox":
            cfg = _neox_config(raw, where)
        else:
            cfg = _llama_config(raw, where, model_type)
    except KeyError as e:
        raise UserError(f"{where}: missing field {e.args[0]!r}") from None
    except UserError:  # already names the file (a UserError is a ValueError too)
        raise
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None
    return model_type, cfg, raw


# ---- weights -------------------------------------------------------------------------------------


def _weight_files(path: Path) -> dict[str, Path]:
    """HF tensor name → the safetensors file holding it (one file, or the shards of the index)."""
    from safetensors import safe_open

    index = path / INDEX_FILE
    if index.exists():
        try:
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise UserError(f"{index}: not a valid safetensors index ({e})") from None
        files = {name: path / shard for name, shard in weight_map.items()}
        for shard in sorted(set(files.values())):
            if not shard.exists():
                raise UserError(f"{index}: lists shard {shard.name}, which is missing")
    else:
        single = path / WEIGHTS_FILE
        if not single.exists():
            raise UserError(f"{path}: no {WEIGHTS_FILE} or {INDEX_FILE} (only safetensors weights are read)")
        files = {}
        with safe_open(str(single), framework="pt") as f:
            files = dict.fromkeys(f.keys(), single)
    return files


def _read_tensors(path: Path, model_type: str) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint as float32, keyed by its name without the GPT-2 `transformer.` prefix."""
    from safetensors import SafetensorError, safe_open

    by_file: dict[Path, list[str]] = {}
    for name, file in _weight_files(path).items():
        by_file.setdefault(file, []).append(name)
    tensors: dict[str, torch.Tensor] = {}
    for file, names in by_file.items():
        try:
            with safe_open(str(file), framework="pt") as f:
                present = set(f.keys())
                for name in names:
                    if name not in present:
                        raise UserError(f"{file}: tensor {name} is listed in the index but not in this shard")
                    tensors[_table_name(model_type, name)] = f.get_tensor(name).float()
        except (SafetensorError, OSError) as e:
            raise UserError(f"{file}: truncated or corrupt safetensors file ({e})") from None
    return tensors


def _table_name(model_type: str, name: str) -> str:
    """A checkpoint's tensor name as the pair tables spell it (`stored_name` backwards)."""
    if model_type == "gpt2":
        return name.removeprefix("transformer.")
    if model_type == "gpt_neox":
        return "lm_head.weight" if name in ("embed_out.weight", "lm_head.weight") else name.removeprefix(NEOX_PREFIX)
    return name


def _untie_if_stored(cfg: GPTConfig, tensors: dict[str, torch.Tensor], where: str) -> GPTConfig:
    """A stored `lm_head.weight` that differs from the embedding is the model's head whatever
    `tie_word_embeddings` says (transformers uses it too, with a warning)."""
    head = tensors.get("lm_head.weight")
    embedding = next(
        (tensors[k] for k in ("model.embed_tokens.weight", "wte.weight", "embed_in.weight") if k in tensors), None
    )
    if cfg.tie_weights and head is not None and embedding is not None and not torch.equal(head, embedding):
        warnings.warn(
            f"{where}: tie_word_embeddings is true but the checkpoint stores a different lm_head.weight; "
            "using the stored head (untied), as transformers does",
            stacklevel=3,
        )
        return dataclasses.replace(cfg, tie_weights=False)
    return cfg


def check_vocab(tokenizer: Tokenizer, cfg: GPTConfig, where: Path) -> None:
    """A tokenizer may have fewer ids than the embedding has rows (padded vocabularies), never more."""
    if tokenizer.vocab_size > cfg.vocab_size:
        raise UserError(
            f"{where}: the tokenizer has {tokenizer.vocab_size} tokens but the model's embedding has "
            f"{cfg.vocab_size} rows (expected at most {cfg.vocab_size}); tokenizer and weights do not belong together"
        )


def load_weights(model: GPT, tensors: dict[str, torch.Tensor], pairs: list[Pair], where: Path) -> None:
    """Copy `tensors` into `model` by the name table `pairs`, checking every shape."""
    params = dict(model.named_parameters())  # tied lm_head appears once, as wte
    with torch.no_grad():
        for ours, theirs, transposed in pairs:
            missing = [t for t in theirs if t not in tensors]
            if missing:
                raise UserError(f"{where}: weights are missing tensor {missing[0]} (incomplete or mismatched shards?)")
            value = torch.cat([tensors[t].t() if transposed else tensors[t] for t in theirs], dim=0)
            if value.shape != params[ours].shape:
                raise UserError(
                    f"{where}: tensor {theirs[0]} has shape {tuple(value.shape)}, the config implies {tuple(params[ours].shape)}"
                )
            params[ours].copy_(value)
    model.eval()


def load_hf(path: str | Path) -> tuple[GPT, Tokenizer, GPTConfig, int | None]:
    """Build a genloom GPT from a Hugging Face GPT-2, Llama, Mistral or Qwen2 directory (weights in fp32).
    Also returns config.json's beginning-of-text id, which only an empty prompt starts from: a prompt's
    ids are the tokenizer's own, start token included only if the tokenizer adds one."""
    path = Path(path)
    model_type, cfg, raw = read_hf_config(path)
    tokenizer = load_pretrained_tokenizer(path)
    check_vocab(tokenizer, cfg, path)
    eos = raw.get("eos_token_id")
    tokenizer.eos_id = eos[0] if isinstance(eos, list) else eos if eos is not None else tokenizer.eos_id
    tensors = _read_tensors(path, model_type)
    if model_type != "gpt2":
        cfg = _untie_if_stored(cfg, tensors, str(path))
    if model_type == "gpt_neox":
        for name in [n for n in tensors if n.endswith(("query_key_value.weight", "query_key_value.bias"))]:
            tensors[name] = neox_qkv(tensors[name], cfg.n_head, to_neox=False)
    model = GPT(cfg)
    load_weights(model, tensors, pairs_for(model_type, cfg), path)
    bos = raw.get("bos_token_id")
    return model, tokenizer, cfg, bos[0] if isinstance(bos, list) else bos


# ---- export ------------------------------------------------------------------------------------


def hf_config(model: GPT, eos_id: int | None) -> tuple[str, dict[str, Any]]:
    """The model_type and config.json for a genloom GPT, or an error naming what has no HF twin."""
    cfg = model.config
    common = {"vocab_size": cfg.vocab_size, "tie_word_embeddings": cfg.tie_weights, "torch_dtype": "float32"}
    # null when the tokenizer has no end-of-text token: left out, transformers would assume GPT-2's 50256
    common |= {"bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": None}
    kv = cfg.n_kv_head or cfg.n_head
    if cfg.pos_encoding == "learned" and cfg.norm == "layernorm" and cfg.mlp == "gelu" and kv == cfg.n_head:
        return "gpt2", {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_positions": cfg.block_size,
            "n_embd": cfg.n_embd,
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "n_inner": cfg.mlp_hidden or 4 * cfg.n_embd,
            "activation_function": "gelu_new" if cfg.gelu_approximate == "tanh" else "gelu",
            "layer_norm_epsilon": cfg.norm_eps,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            **common,
        }
    plain_rope = cfg.rope_scaling == "none" and not cfg.qkv_bias  # what genloom trains; imports may differ
    if cfg.pos_encoding == "rope" and cfg.norm == "rmsnorm" and cfg.mlp == "swiglu" and not cfg.bias and plain_rope:
        return "llama", {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": cfg.n_embd,
            "intermediate_size": model.blocks[0].mlp.up.out_features,  # type: ignore[union-attr]
            "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head,
            "num_key_value_heads": kv,
            "head_dim": cfg.n_embd // cfg.n_head,
            "hidden_act": "silu",
            "max_position_embeddings": cfg.block_size,
            "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "attention_bias": False,
            "mlp_bias": False,
            **common,
        }
    if cfg.pos_encoding == "rope" and cfg.norm == "layernorm" and cfg.mlp == "gelu" and kv == cfg.n_head and plain_rope:
        # genloom's recommended presets (nanogpt-cpu, demo): GPT-NeoX with sequential residuals, full rotary
        return "gpt_neox", {
            "architectures": ["GPTNeoXForCausalLM"],
            "model_type": "gpt_neox",
            "hidden_size": cfg.n_embd,
            "intermediate_size": model.blocks[0].mlp.up.out_features,  # type: ignore[union-attr]
            "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head,
            "hidden_act": "gelu_new" if cfg.gelu_approximate == "tanh" else "gelu",
            "max_position_embeddings": cfg.block_size,
            "layer_norm_eps": cfg.norm_eps,
            "use_parallel_residual": False,
            "attention_bias": True,
            "rotary_pct": 1.0,  # transformers 4's names, then 5's
            "rotary_emb_base": cfg.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta, "partial_rotary_factor": 1.0},
            "attention_dropout": 0.0,
            "hidden_dropout": 0.0,
            **common,
        }
    raise UserError(
        "export --format hf: this model has no Hugging Face twin; exportable are GPT-2 (pos_encoding=learned, "
        "norm=layernorm, mlp=gelu, no GQA), GPT-NeoX (pos_encoding=rope, norm=layernorm, mlp=gelu, no GQA) and "
        "Llama (pos_encoding=rope, norm=rmsnorm, mlp=swiglu, bias=false); "
        f"this one is {cfg.pos_encoding}/{cfg.norm}/{cfg.mlp}"
    )


def hf_tensors(model: GPT, model_type: str) -> dict[str, torch.Tensor]:
    """The model's state dict under the checkpoint names of `model_type` (zero biases where genloom has none)."""
    cfg = model.config
    sd = model.state_dict()
    hs, nh, kv = cfg.n_embd // cfg.n_head, cfg.n_head, cfg.n_kv_head or cfg.n_head
    tensors: dict[str, torch.Tensor] = {}
    for ours, theirs, transposed in pairs_for(model_type, cfg):
        if ours in sd:
            value = sd[ours]
        else:  # a bias-free genloom model exported with biases: zero biases do what no bias does
            weight = sd[ours.removesuffix("bias") + "weight"]
            value = torch.zeros(weight.shape[0])  # (out_features,) or (C,) for a norm
        if model_type == "gpt_neox" and ".attn.qkv." in ours:
            value = neox_qkv(value, nh, to_neox=True)
        parts = value.split([nh * hs, kv * hs, kv * hs]) if len(theirs) == 3 else (value,)
        for name, part in zip(theirs, parts, strict=True):
            tensors[stored_name(model_type, name)] = (part.t() if transposed else part).contiguous().clone()
    if model_type == "gpt_neox" and "embed_out.weight" not in tensors:  # tied: stored too, for transformers 4
        tensors["embed_out.weight"] = sd["wte.weight"].clone()
    return tensors


def _jinja_of(template: ChatTemplate) -> str:
    """genloom's role-marker template as the Jinja source `apply_chat_template` runs (same text as
    `ChatTemplate.render`)."""
    markers = json.dumps({"system": template.system, "user": template.user, "assistant": template.assistant})
    end = json.dumps(template.end)
    return (
        f"{{%- set markers = {markers} -%}}"
        "{%- for message in messages -%}"
        f"{{{{ markers[message['role']] ~ message['content'] ~ {end} ~ '\\n' }}}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ markers['assistant'] }}{%- endif -%}"
    )


def tokenizer_config(
    hf: HFTokenizer, eos_id: int | None, block_size: int, chat_template: ChatTemplate | JinjaChatTemplate | None
) -> tuple[dict[str, Any], list[int]]:
    """`tokenizer_config.json` for `AutoTokenizer` (special tokens that exist in the vocabulary `hf`, the
    chat template), and the ids generation stops at (end of text; the chat template's end-of-turn marker)."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": block_size,
        "clean_up_tokenization_spaces": False,
    }
    stops: list[int] = []
    if eos_id is not None:
        eos = hf.id_to_token(eos_id)
        config |= {"bos_token": eos, "eos_token": eos}
        stops.append(eos_id)
    if isinstance(chat_template, ChatTemplate):
        config["chat_template"] = _jinja_of(chat_template)
        end = hf.token_to_id(chat_template.end)
        if end is not None and end not in stops:
            stops.append(end)
        config.setdefault("eos_token", chat_template.end)  # what a chat reply ends with
    elif chat_template is not None:  # a pretrained model's own template and tokens, passed on as they were
        config["chat_template"] = chat_template.template
        config |= {name: text for name, text in chat_template.tokens.items() if hf.token_to_id(text) is not None}
    return config, stops


def save_hf(
    model: GPT, tokenizer: Tokenizer, out: str | Path, chat_template: ChatTemplate | JinjaChatTemplate | None = None
) -> None:
    """Write config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
    generation_config.json that `transformers` loads."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer as HFTokenizer

    model_type, config = hf_config(model, tokenizer.eos_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(hf_tensors(model, model_type), str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    tokenizer.save(out / TOKENIZER_FILE)  # both of our tokenizers are stored in the HF format already
    hf = HFTokenizer.from_file(str(out / TOKENIZER_FILE))
    tokenizer_cfg, stops = tokenizer_config(hf, tokenizer.eos_id, model.config.block_size, chat_template)
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_cfg, indent=2) + "\n")
    generation = {"eos_token_id": stops[0] if len(stops) == 1 else stops} if stops else {}
    if tokenizer.eos_id is not None:
        generation["bos_token_id"] = tokenizer.eos_id
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
