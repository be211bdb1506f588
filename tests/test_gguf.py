"""GGUF in: random Llama and GPT-2 models written as GGUF files (llama.cpp's tensor names, metadata and
q/k permutation, tensors in several quantisation types) load in genloom with the logits transformers
gets from the same file (`gguf_file=`); the tokenizer built from the metadata encodes as transformers'
GGUF tokenizer; the K-quant dequantiser agrees with transformers' own; bad files give one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
import transformers
from gguf import GGMLQuantizationType as Q

import genloom as gl
from genloom.errors import UserError
from genloom.gguf import GGUFFile, unpermute
from genloom.tokenizers import BPETokenizer

from .conftest import SHAKESPEARE
from .test_hf_variants import llama_kwargs, random_norms

TEXTS = ["ROMEO: what light", "  two  spaces\nand 123 digits", "JULIET, ère ünïcode!", ""]


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train([SHAKESPEARE.read_text()[:20_000]], vocab_size=320)


def finish(w: gguf.GGUFWriter) -> None:
    """Write the header, metadata and tensors, in the order the format needs."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py `permute` (half-split RoPE rows → interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path: Path, arch: str, model: transformers.PreTrainedModel, tok: BPETokenizer, qtype: Q = Q.F32) -> Path:
    """A GGUF file of `model` as llama.cpp's converter writes it; 2-D weights in `qtype` (norms stay F32)."""
    cfg = model.config
    w = gguf.GGUFWriter(str(path), arch)
    if arch == "llama":
        w.add_block_count(cfg.num_hidden_layers)
        w.add_context_length(cfg.max_position_embeddings)
        w.add_embedding_length(cfg.hidden_size)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_head_count(cfg.num_attention_heads)
        w.add_head_count_kv(cfg.num_key_value_heads)
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
        w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
        w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    else:
        w.add_block_count(cfg.n_layer)
        w.add_context_length(cfg.n_positions)
        w.add_embedding_length(cfg.n_embd)
        w.add_feed_forward_length(4 * cfg.n_embd)
        w.add_head_count(cfg.n_head)
        w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    spec = tok.hf.get_vocab()
    tokens = [t for t, _ in sorted(spec.items(), key=lambda kv: kv[1])]
    import json

    merges = [m if isinstance(m, str) else " ".join(m) for m in json.loads(tok.hf.to_str())["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if t == "<|endoftext|>" else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_eos_token_id(tok.hf.token_to_id("<|endoftext|>"))
    w.add_bos_token_id(tok.hf.token_to_id("<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}

    def put(name: str, value: np.ndarray) -> None:
        if value.ndim == 2 and qtype != Q.F32:
            data = gguf.quants.quantize(value, qtype)
            w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        else:
            w.add_tensor(name, np.ascontiguousarray(value))

    if arch == "llama":
        put("token_embd.weight", sd["model.embed_tokens.weight"])
        for i in range(cfg.num_hidden_layers):
            p, b = f"model.layers.{i}.", f"blk.{i}."
            put(f"{b}attn_norm.weight", sd[f"{p}input_layernorm.weight"])
            put(f"{b}attn_q.weight", permute(sd[f"{p}self_attn.q_proj.weight"], cfg.num_attention_heads))
            put(f"{b}attn_k.weight", permute(sd[f"{p}self_attn.k_proj.weight"], cfg.num_key_value_heads))
            put(f"{b}attn_v.weight", sd[f"{p}self_attn.v_proj.weight"])
            put(f"{b}attn_output.weight", sd[f"{p}self_attn.o_proj.weight"])
            put(f"{b}ffn_norm.weight", sd[f"{p}post_attention_layernorm.weight"])
            for ours, theirs in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                put(f"{b}ffn_{ours}.weight", sd[f"{p}mlp.{theirs}.weight"])
        put("output_norm.weight", sd["model.norm.weight"])
        if not cfg.tie_word_embeddings:
            put("output.weight", sd["lm_head.weight"])
    else:
        put("token_embd.weight", sd["transformer.wte.weight"])
        put("position_embd.weight", sd["transformer.wpe.weight"])
        for i in range(cfg.n_layer):
            p, b = f"transformer.h.{i}.", f"blk.{i}."
            for kind in ("weight", "bias"):
                put(f"{b}attn_norm.{kind}", sd[f"{p}ln_1.{kind}"])
                put(f"{b}ffn_norm.{kind}", sd[f"{p}ln_2.{kind}"])
                for ours, theirs in (
                    ("attn_qkv", "attn.c_attn"),
                    ("attn_output", "attn.c_proj"),
                    ("ffn_up", "mlp.c_fc"),
                    ("ffn_down", "mlp.c_proj"),
                ):
                    value = sd[f"{p}{theirs}.{kind}"]
                    put(f"{b}{ours}.{kind}", value.T.copy() if kind == "weight" else value)  # Conv1D → Linear
        put("output_norm.weight", sd["transformer.ln_f.weight"])
        put("output_norm.bias", sd["transformer.ln_f.bias"])
        put("output.weight", sd["transformer.wte.weight"])  # llama.cpp writes GPT-2's tied head out again
    finish(w)
    return path


def llama(vocab: int, tied: bool = False) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    params = {"rope_type": "default", "rope_theta": 10_000.0}
    cfg = transformers.LlamaConfig(**llama_kwargs(vocab, rope_parameters=params, tie_word_embeddings=tied))
    return random_norms(transformers.LlamaForCausalLM(cfg))


def gpt2(vocab: int) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    # n_positions 1024: transformers reads no context length from a gpt2 GGUF and keeps its default
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=64, n_layer=2, n_head=4)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.mark.parametrize(
    ("arch", "qtype", "tied"),
    [
        ("llama", Q.F32, False),
        ("llama", Q.F16, True),
        ("llama", Q.BF16, False),
        ("llama", Q.Q8_0, False),
        ("llama", Q.Q4_0, True),
        ("llama", Q.Q4_1, False),
        ("llama", Q.Q5_0, False),
        ("llama", Q.Q5_1, False),
        ("gpt2", Q.F32, True),
        ("gpt2", Q.Q8_0, True),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_gguf_logits_equal_transformers_from_the_same_file(tmp_path, tokenizer, arch, qtype, tied):
    ref = llama(tokenizer.vocab_size, tied) if arch == "llama" else gpt2(tokenizer.vocab_size)
    path = write_gguf(tmp_path / "model.gguf", arch, ref, tokenizer, qtype)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    lm = gl.load(path)
    assert isinstance(lm, gl.LanguageModel) and lm.model.config.tie_weights == tied
    ids = torch.randint(0, tokenizer.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs.eval()(ids).logits
        got = lm.model(ids)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_gguf_tokenizer_and_template_from_metadata(tmp_path, tokenizer):
    path = write_gguf(tmp_path / "model.gguf", "llama", llama(tokenizer.vocab_size), tokenizer)
    lm = gl.load(path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    for text in TEXTS:
        assert lm.prompt_ids(text or "x") == theirs(text or "x")["input_ids"] == tokenizer.encode(text or "x")
    assert lm.tokenizer.encode("<|endoftext|>") == [tokenizer.eos_id]  # the control token stays whole
    messages = [{"role": "user", "content": "hi"}]
    assert lm.chat_prompt(messages) == "<user>hi" == theirs.apply_chat_template(messages, tokenize=False)


def test_unpermute_inverts_llama_cpp_permute():
    w = torch.randn(3 * 8, 5)
    assert torch.equal(unpermute(torch.from_numpy(permute(w.numpy(), 3)), 3), w)


@pytest.mark.parametrize("qtype", [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K])
def test_k_quants_dequantise_as_transformers_does(tmp_path, qtype):
    """K-quants have no quantiser in the gguf package: random blocks (f16 scales made finite) go into a
    file; genloom's reading equals transformers' independent dequantiser."""
    from transformers.integrations.gguf.dequant import dequantize as hf_dequantize

    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = 4, 2 * block_elems
    raw = np.random.default_rng(0).integers(0, 256, size=(rows, cols // block_elems * block_bytes), dtype=np.uint8)
    raw[raw >= 0x78] = 0x38  # no byte can start an f16 inf/NaN or a huge scale (their high byte is ≥ 0x78)
    w = gguf.GGUFWriter(str(tmp_path / "k.gguf"), "llama")
    w.add_tensor("t.weight", raw, raw_shape=raw.shape, raw_dtype=qtype)
    finish(w)
    ours = GGUFFile(tmp_path / "k.gguf").tensor("t.weight")
    theirs = hf_dequantize(torch.from_numpy(raw.reshape(-1).copy()), int(qtype)).reshape(rows, cols)
    assert ours.shape == (rows, cols) and torch.isfinite(ours).all()
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-6)


# ---- bad files ------------------------------------------------------------------------------------


def test_bad_gguf_files_give_one_clear_line(tmp_path, tokenizer):
    good = write_gguf(tmp_path / "good.gguf", "llama", llama(tokenizer.vocab_size), tokenizer, Q.Q8_0)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match=r"truncated\.gguf: (not a readable GGUF file|tensor .* truncated)"):
        gl.load(truncated)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(UserError, match=r"junk\.gguf: not a readable GGUF file"):
        gl.load(tmp_path / "junk.gguf")
    with pytest.raises(UserError, match=r"missing\.gguf: GGUF file not found"):
        gl.load(tmp_path / "missing.gguf")

    w = gguf.GGUFWriter(str(tmp_path / "bert.gguf"), "bert")
    w.add_block_count(1)
    finish(w)
    with pytest.raises(
        UserError, match=r"bert\.gguf: GGUF architecture 'bert' is not supported; expected one of llama, gpt2"
    ):
        gl.load(tmp_path / "bert.gguf")

    iq = tmp_path / "iq.gguf"
    raw = np.zeros((64, 64 // 32 * 18), dtype=np.uint8)  # IQ4_NL blocks: 32 values in 18 bytes
    w = gguf.GGUFWriter(str(iq), "llama")
    w.add_tensor("t.weight", raw, raw_shape=raw.shape, raw_dtype=Q.IQ4_NL)
    finish(w)
    with pytest.raises(
        UserError, match=r"iq\.gguf: tensor t\.weight is stored as IQ4_NL, .*expected one of F32, F16, BF16, Q8_0"
    ):
        GGUFFile(iq).tensor("t.weight")

    small = BPETokenizer.train([SHAKESPEARE.read_text()[:20_000]], vocab_size=400)  # more ids than rows
    mismatch = write_gguf(tmp_path / "mismatch.gguf", "llama", llama(tokenizer.vocab_size), small)
    with pytest.raises(UserError, match=r"mismatch\.gguf: the tokenizer has \d+ tokens but the model's embedding has"):
        gl.load(mismatch)


def test_cli_names_the_bad_gguf_and_exits_2(tmp_path):
    (tmp_path / "junk.gguf").write_bytes(b"GGUF" + b"\x00" * 40)
    proc = subprocess.run(
        [sys.executable, "-m", "genloom", "sample", str(tmp_path / "junk.gguf"), "--prompt", "hi"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "junk.gguf: not a readable GGUF file" in lines[0]
