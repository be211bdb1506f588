"""GGUF in: a llama.cpp model file (llama or gpt2 architecture) as a genloom GPT with its tokenizer and
chat template, read with the `gguf` package (its reader and its dequantizers; nothing is parsed by hand).

A GGUF file is one self-contained model: metadata (hyper-parameters under `<arch>.*`, the tokenizer
under `tokenizer.ggml.*`, the chat template under `tokenizer.chat_template`) and tensors, each stored
in its own quantisation type. What this module does with them:

| GGUF                                   | genloom                                                          |
|----------------------------------------|------------------------------------------------------------------|
| `<arch>.block_count`, `.embedding_length`, `.feed_forward_length`, `.attention.head_count(_kv)`, `.context_length`, `.rope.freq_base`, `.attention.layer_norm_(rms_)epsilon` | `GPTConfig` |
| token_embd, position_embd (gpt2)       | wte, wpe                                                         |
| blk.i.attn_norm / ffn_norm             | blocks.i.norm_1 / norm_2                                         |
| blk.i.attn_q ‖ attn_k ‖ attn_v (llama), attn_qkv (gpt2) | blocks.i.attn.qkv                               |
| blk.i.attn_output                      | blocks.i.attn.proj                                               |
| blk.i.ffn_gate / ffn_up / ffn_down     | blocks.i.mlp.gate / up / down                                    |
| output_norm, output (absent: tied)     | norm_f, lm_head                                                  |

- **Dequantisation.** F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants (Q2_K–Q6_K) go
  through `gguf.quants.dequantize` to float32, the compute dtype; other types are refused by name.
- **Q/K permutation.** llama.cpp's converter reorders the rows of a llama model's q and k projections
  from Hugging Face's half-split RoPE layout to interleaved pairs (`permute` in convert_hf_to_gguf.py);
  genloom's RoPE is half-split, so the permutation is undone here (as transformers does).
- **Tokenizer.** `tokenizer.ggml.model` "gpt2" is byte-level BPE (tokens and merges); "llama" is
  SentencePiece BPE whose merges are recovered from the token scores (as transformers'
  `generate_merges` does), with byte fallback. Control tokens become special tokens, user-defined
  ones added tokens. The split before BPE follows `tokenizer.ggml.pre` as llama.cpp does (SmolLM's
  "smollm" splits every digit); `add_bos_token`/`add_eos_token` frame each text.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from genloom.chat import JinjaChatTemplate
from genloom.errors import UserError
from genloom.hf import Pair, check_vocab, load_weights
from genloom.models.gpt import GPT, GPTConfig
from genloom.tokenizers import BPETokenizer, set_bos_eos

ARCHITECTURES = ("llama", "gpt2")
QUANT_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
CONTROL, USER_DEFINED = 3, 4  # tokenizer.ggml.token_type values (llama.cpp's llama_token_type)

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre → the splits before byte-level BPE, after llama.cpp's llama-vocab.cpp: (digits one
# by one first?, the split regex; None is GPT-2's own)
PRE_TOKENIZERS: dict[str, tuple[bool, str | None]] = {
    "default": (False, None),
    "gpt-2": (False, None),
    "gpt2": (False, None),
    "smollm": (True, None),
    "starcoder": (True, None),
    "refact": (True, None),
    "command-r": (True, None),
    "codeshell": (True, None),
    "llama3": (False, _LLAMA3_SPLIT),
    "llama-v3": (False, _LLAMA3_SPLIT),
    "llama-bpe": (False, _LLAMA3_SPLIT),
    "smaug-bpe": (False, _LLAMA3_SPLIT),
    "qwen2": (False, _QWEN2_SPLIT),
    "deepseek-r1-qwen": (False, _QWEN2_SPLIT),
}


# ---- reading ----------------------------------------------------------------------------------


class GGUFFile:
    """The metadata and tensors of one GGUF file, every failure a one-line `UserError` naming it."""

    def __init__(self, path: Path) -> None:
        import gguf

        self.path = path
        if not path.is_file():
            raise UserError(f"{path}: GGUF file not found")
        try:
            self.reader = gguf.GGUFReader(str(path), "r")
        except Exception as e:  # the reader's own message (bad magic, a truncated table, ...), on one line
            raise UserError(
                f"{path}: not a readable GGUF file (truncated or corrupt? {str(e).splitlines()[0]})"
            ) from None
        self.tensors = {t.name: t for t in self.reader.tensors}

    def get(self, key: str, default: Any = None) -> Any:
        field = self.reader.fields.get(key)
        if field is None:
            return default
        try:
            return field.contents()
        except Exception as e:
            raise UserError(f"{self.path}: metadata {key} is unreadable ({e})") from None

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise UserError(f"{self.path}: metadata {key} is missing (needed for the model's shape)")
        return value

    def tensor(self, name: str) -> torch.Tensor:
        """Tensor `name` dequantised to float32, in PyTorch's (out, in) orientation."""
        from gguf import quants

        t = self.tensors.get(name)
        if t is None:
            raise UserError(f"{self.path}: tensor {name} is missing")
        kind = t.tensor_type.name
        if kind not in QUANT_TYPES:
            raise UserError(
                f"{self.path}: tensor {name} is stored as {kind}, which genloom cannot dequantise; "
                f"expected one of {', '.join(QUANT_TYPES)}"
            )
        try:
            array = quants.dequantize(t.data, t.tensor_type)
        except Exception as e:
            raise UserError(f"{self.path}: tensor {name} ({kind}) is truncated or corrupt ({e})") from None
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists dimensions innermost first
        return torch.from_numpy(np.array(array, dtype=np.float32).reshape(shape))  # a writable copy


# ---- metadata → config --------------------------------------------------------------------------


def _config(f: GGUFFile, arch: str) -> GPTConfig:
    heads = int(f.require(f"{arch}.attention.head_count"))
    width = int(f.require(f"{arch}.embedding_length"))
    embedding = f.tensors.get("token_embd.weight")  # (C, V) innermost first: its rows are the vocabulary
    vocab = embedding.shape[-1] if embedding is not None else f.require(f"{arch}.vocab_size")
    common: dict[str, Any] = {
        "vocab_size": int(vocab),
        "block_size": int(f.require(f"{arch}.context_length")),
        "n_layer": int(f.require(f"{arch}.block_count")),
        "n_head": heads,
        "n_embd": width,
        "mlp_hidden": int(f.require(f"{arch}.feed_forward_length")),
        "tie_weights": "output.weight" not in f.tensors,
    }
    try:
        if arch == "gpt2":
            return GPTConfig(
                **common,
                mlp="gelu",
                gelu_approximate="tanh",
                norm="layernorm",
                norm_eps=float(f.get("gpt2.attention.layer_norm_epsilon", 1e-5)),
                pos_encoding="learned",
                bias=True,
            )
        rope_dims = f.get("llama.rope.dimension_count", width // heads)
        if rope_dims != width // heads:
            raise UserError(
                f"{f.path}: llama.rope.dimension_count {rope_dims} ≠ head size {width // heads} (partial RoPE)"
            )
        if "rope_freqs.weight" in f.tensors:
            raise UserError(
                f"{f.path}: per-dimension RoPE factors (rope_freqs, Llama 3.1-style scaling) are not supported"
            )
        scaling = f.get("llama.rope.scaling.type", "none")
        if scaling not in ("none", "linear", "yarn"):
            raise UserError(f"{f.path}: llama.rope.scaling.type {scaling!r} is not supported (none, linear, yarn)")
        rope: dict[str, Any] = {}
        if scaling != "none":
            rope = {"rope_scaling": scaling, "rope_factor": float(f.require("llama.rope.scaling.factor"))}
            if scaling == "yarn":
                rope["rope_original_context"] = int(f.require("llama.rope.scaling.original_context_length"))
        return GPTConfig(
            **common,
            n_kv_head=int(f.get("llama.attention.head_count_kv", heads)),
            mlp="swiglu",
            norm="rmsnorm",
            norm_eps=float(f.get("llama.attention.layer_norm_rms_epsilon", 1e-6)),
            pos_encoding="rope",
            rope_theta=float(f.get("llama.rope.freq_base", 10000.0)),
            bias=False,
            **rope,
        )
    except UserError:
        raise
    except ValueError as e:
        raise UserError(f"{f.path}: the metadata describes an impossible model ({e})") from None


# ---- tensors --------------------------------------------------------------------------------------


def unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row order (interleaved RoPE pairs) back to Hugging Face's half-split one.

    Args: w (n_head·hs, C) as stored. The converter did reshape(nh, 2, hs/2, C).swapaxes(1, 2)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _state(f: GGUFFile, cfg: GPTConfig, arch: str) -> tuple[dict[str, torch.Tensor], list[Pair]]:
    """The checkpoint's tensors under genloom-side names, and the table that copies them in."""
    tensors: dict[str, torch.Tensor] = {}
    pairs: list[Pair] = []

    def take(ours: str, *theirs: str) -> None:
        for name in theirs:
            tensors[name] = f.tensor(name)
        pairs.append((ours, list(theirs), False))

    take("wte.weight", "token_embd.weight")
    if arch == "gpt2":
        take("wpe.weight", "position_embd.weight")
    kinds = ("weight", "bias") if cfg.bias else ("weight",)
    for i in range(cfg.n_layer):
        ours, blk = f"blocks.{i}.", f"blk.{i}."
        for kind in kinds:
            take(f"{ours}norm_1.{kind}", f"{blk}attn_norm.{kind}")
            take(f"{ours}attn.proj.{kind}", f"{blk}attn_output.{kind}")
            take(f"{ours}norm_2.{kind}", f"{blk}ffn_norm.{kind}")
            take(f"{ours}mlp.up.{kind}", f"{blk}ffn_up.{kind}")
            take(f"{ours}mlp.down.{kind}", f"{blk}ffn_down.{kind}")
            if arch == "gpt2":
                take(f"{ours}attn.qkv.{kind}", f"{blk}attn_qkv.{kind}")
        if arch == "llama":
            take(f"{ours}mlp.gate.weight", f"{blk}ffn_gate.weight")
            take(f"{ours}attn.qkv.weight", f"{blk}attn_q.weight", f"{blk}attn_k.weight", f"{blk}attn_v.weight")
            tensors[f"{blk}attn_q.weight"] = unpermute(tensors[f"{blk}attn_q.weight"], cfg.n_head)
            tensors[f"{blk}attn_k.weight"] = unpermute(tensors[f"{blk}attn_k.weight"], cfg.n_kv_head or cfg.n_head)
    take("norm_f.weight", "output_norm.weight")
    if cfg.bias:
        take("norm_f.bias", "output_norm.bias")
    if not cfg.tie_weights:
        take("lm_head.weight", "output.weight")
    return tensors, pairs


# ---- tokenizer -------------------------------------------------------------------------------------


def _byte_level_pre_tokenizer(f: GGUFFile) -> pre_tokenizers.PreTokenizer:
    pre = f.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        warnings.warn(
            f"{f.path}: tokenizer.ggml.pre {pre!r} is not known to genloom; splitting text as GPT-2 does", stacklevel=4
        )
    digits, split = PRE_TOKENIZERS.get(pre, (False, None))
    if split is not None:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=bool(f.get("tokenizer.ggml.add_space_prefix", False)))
    if digits:  # llama.cpp splits "\p{N}" first, then GPT-2's regex: each digit is its own piece
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    return byte_level


def _merges_from_scores(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """A SentencePiece BPE vocabulary's merges, best first, recovered from its token scores (the order
    transformers' `generate_merges` gives: by score, then by the pieces' lengths and ids)."""
    vocab = {token: i for i, token in enumerate(tokens)}
    merges: list[tuple[str, str, float]] = []
    for token, score in zip(tokens, scores, strict=True):
        local = [
            (token[:k], token[k:], score) for k in range(1, len(token)) if token[:k] in vocab and token[k:] in vocab
        ]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in merges]


def _hf_tokenizer(f: GGUFFile) -> HFTokenizer:
    kind = f.get("tokenizer.ggml.model")
    tokens: list[str] | None = f.get("tokenizer.ggml.tokens")
    if not tokens:
        raise UserError(f"{f.path}: no tokenizer in the metadata (tokenizer.ggml.tokens)")
    types: list[int] = f.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if kind == "gpt2":
        byte_char = _bytes_to_unicode()
        alphabet = set(byte_char)
        # a token written in plain text (not the byte alphabet) is spelled in it, as transformers does
        spelled = [t if set(t) <= alphabet else "".join(byte_char[b] for b in t.encode("utf-8")) for t in tokens]
        merges = [tuple(m.split(" ", 1)) for m in f.get("tokenizer.ggml.merges") or []]
        hf = HFTokenizer(models.BPE(vocab={t: i for i, t in enumerate(spelled)}, merges=merges))  # type: ignore[arg-type]
        hf.pre_tokenizer = _byte_level_pre_tokenizer(f)
        hf.decoder = decoders.ByteLevel()
        control_ok = [set(t) <= alphabet for t in tokens]  # a control token outside the byte alphabet is a mislabel
    elif kind == "llama":
        scores = f.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
        unk = f.get("tokenizer.ggml.unknown_token_id")
        bpe = models.BPE(
            vocab={t: i for i, t in enumerate(tokens)},
            merges=_merges_from_scores(tokens, scores),
            unk_token=tokens[unk] if unk is not None else None,
            fuse_unk=True,
            byte_fallback=True,
        )
        hf = HFTokenizer(bpe)
        prefix = bool(f.get("tokenizer.ggml.add_space_prefix", True))
        hf.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="first" if prefix else "never", split=False
        )
        steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
        hf.decoder = decoders.Sequence([*steps, decoders.Strip(" ", 1, 0)] if prefix else steps)
        control_ok = [True] * len(tokens)
    else:
        raise UserError(
            f"{f.path}: tokenizer.ggml.model {kind!r} is not supported; expected 'gpt2' (byte-level BPE) or 'llama' (SentencePiece)"
        )
    hf.add_special_tokens([t for t, ty, ok in zip(tokens, types, control_ok, strict=True) if ty == CONTROL and ok])
    hf.add_tokens([t for t, ty in zip(tokens, types, strict=True) if ty == USER_DEFINED])
    return hf


def _bytes_to_unicode() -> list[str]:
    """GPT-2's printable spelling of each byte 0..255 (the byte-level alphabet, in byte order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _tokenizer(f: GGUFFile) -> tuple[BPETokenizer, dict[str, str]]:
    """The tokenizer and the special tokens' texts (for the chat template)."""
    hf = _hf_tokenizer(f)
    tokens: list[str] = f.get("tokenizer.ggml.tokens")
    ids = {name: f.get(f"tokenizer.ggml.{key}") for name, key in _SPECIAL_IDS.items()}
    texts = {name: tokens[i] for name, i in ids.items() if i is not None and 0 <= i < len(tokens)}
    default_bos = f.get("tokenizer.ggml.model") == "llama"  # llama.cpp adds BOS to SentencePiece vocabularies
    add_bos = bool(f.get("tokenizer.ggml.add_bos_token", default_bos))
    set_bos_eos(
        hf, add_bos, bool(f.get("tokenizer.ggml.add_eos_token", False)), texts.get("bos_token"), texts.get("eos_token")
    )
    tokenizer = BPETokenizer(hf)
    tokenizer.eos_id = ids["eos_token"]
    return tokenizer, texts


_SPECIAL_IDS = {
    "bos_token": "bos_token_id",
    "eos_token": "eos_token_id",
    "unk_token": "unknown_token_id",
    "pad_token": "padding_token_id",
}


# ---- the model -----------------------------------------------------------------------------------


def load_gguf(path: str | Path) -> tuple[GPT, BPETokenizer, GPTConfig, int | None, JinjaChatTemplate | None]:
    """A GGUF file as (model in float32, tokenizer, config, beginning-of-text id, its chat template or None)."""
    f = GGUFFile(Path(path))
    arch = f.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise UserError(
            f"{f.path}: GGUF architecture {arch!r} is not supported; expected one of {', '.join(ARCHITECTURES)}"
        )
    cfg = _config(f, arch)
    tokenizer, specials = _tokenizer(f)
    check_vocab(tokenizer, cfg, f.path)
    tensors, pairs = _state(f, cfg, arch)
    if arch == "gpt2" and not cfg.tie_weights and torch.equal(tensors["output.weight"], tensors["token_embd.weight"]):
        cfg.tie_weights = True  # llama.cpp writes GPT-2's tied head out again as output.weight
        pairs = [p for p in pairs if p[0] != "lm_head.weight"]
    model = GPT(cfg)
    load_weights(model, tensors, pairs, f.path)
    template = f.get("tokenizer.chat_template")
    chat = JinjaChatTemplate(template, f"{f.path} (tokenizer.chat_template)", specials) if template else None
    return model, tokenizer, cfg, f.get("tokenizer.ggml.bos_token_id"), chat
