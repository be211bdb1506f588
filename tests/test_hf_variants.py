"""Llama variants from Hugging Face directories, each against transformers on random weights: every RoPE
scaling kind (linear, dynamic, llama3, yarn; transformers 5's `rope_parameters` and the older
`rope_scaling` form), Qwen2 (q/k/v biases), Mistral (sliding window capped with a warning), and a stored
head that contradicts `tie_word_embeddings`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import genloom as gl
from genloom.tokenizers import BPETokenizer

from .conftest import SHAKESPEARE

ROPE_KINDS = {
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32,
    },
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
    "yarn-mscale": {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32,
        "mscale": 1.0,
        "mscale_all_dim": 0.5,
        "beta_fast": 16.0,
    },
}
MAX_POSITIONS = 64  # dynamic acts beyond it; llama3/yarn's original context is 32
T = 100  # tokens per forward pass: past both


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train([SHAKESPEARE.read_text()[:20_000]], vocab_size=300)


def save(model: transformers.PreTrainedModel, tok: BPETokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tok.save(path / "tokenizer.json")
    return path


def random_norms(model: transformers.PreTrainedModel) -> transformers.PreTrainedModel:
    with torch.no_grad():  # so a wrong norm mapping would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


def llama_kwargs(vocab: int, **kw) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        eos_token_id=None,
        bos_token_id=None,
        **kw,
    )


def logits_close(lm: gl.LanguageModel, ref: transformers.PreTrainedModel, n: int, vocab: int) -> None:
    ids = torch.randint(0, vocab, (2, n), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = ref(ids).logits
        ours = lm.model(ids)
    assert (ours - theirs).abs().max() < 1e-4


@pytest.mark.parametrize("kind", list(ROPE_KINDS))
@pytest.mark.parametrize("form", ["rope_parameters", "rope_scaling"])
def test_rope_scaling_logits_match_transformers(tmp_path, tokenizer, kind, form):
    torch.manual_seed(0)
    params = {**ROPE_KINDS[kind], "rope_theta": 10_000.0}
    cfg = transformers.LlamaConfig(**llama_kwargs(tokenizer.vocab_size, rope_parameters=params))
    if kind != "dynamic":
        cfg.max_position_embeddings = 128  # the stretched context
    ref = random_norms(transformers.LlamaForCausalLM(cfg))
    path = save(ref, tokenizer, tmp_path / "hf")
    if form == "rope_scaling":  # the pre-5 spelling: rope_scaling with "type", rope_theta beside it
        raw = json.loads((path / "config.json").read_text())
        raw.pop("rope_parameters", None)
        raw["rope_theta"] = 10_000.0
        raw["rope_scaling"] = {("type" if k == "rope_type" else k): v for k, v in ROPE_KINDS[kind].items()}
        (path / "config.json").write_text(json.dumps(raw))
    lm = gl.load(path)
    assert lm.model.config.rope_scaling == params["rope_type"]
    logits_close(lm, ref, T, tokenizer.vocab_size)
    logits_close(lm, ref, 20, tokenizer.vocab_size)  # below every threshold too


def test_dynamic_rope_greedy_decoding_crosses_the_context_as_transformers(tmp_path, tokenizer):
    """transformers re-bases dynamic RoPE at every step past max_position_embeddings; so do we."""
    torch.manual_seed(0)
    params = {**ROPE_KINDS["dynamic"], "rope_theta": 10_000.0}
    ref = random_norms(
        transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                **llama_kwargs(tokenizer.vocab_size, rope_parameters=params, initializer_range=0.2)
            )
        )
    )
    lm = gl.load(save(ref, tokenizer, tmp_path / "hf"))
    ids = torch.randint(0, tokenizer.vocab_size, (1, MAX_POSITIONS - 8), generator=torch.Generator().manual_seed(1))
    ref.generation_config.pad_token_id = 0
    theirs = ref.generate(ids, max_new_tokens=24, min_new_tokens=24, do_sample=False)[0, ids.shape[1] :].tolist()
    from genloom.generation import GenerationConfig, complete

    (ours,) = complete(
        lm.model, ids.tolist(), GenerationConfig(max_new_tokens=24, temperature=0, stop_at_eos=False), str
    )
    assert ours.token_ids == theirs


def test_qwen2_biases_match_transformers(tmp_path, tokenizer):
    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(**llama_kwargs(tokenizer.vocab_size), use_sliding_window=False)
    ref = random_norms(transformers.Qwen2ForCausalLM(cfg))
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("proj.bias"):
                p.uniform_(-0.5, 0.5)  # non-zero q/k/v biases
    lm = gl.load(save(ref, tokenizer, tmp_path / "hf"))
    assert lm.model.config.qkv_bias and lm.model.blocks[0].attn.proj.bias is None
    logits_close(lm, ref, 40, tokenizer.vocab_size)


def test_mistral_sliding_window_caps_the_context_with_a_warning(tmp_path, tokenizer):
    torch.manual_seed(0)
    ref = random_norms(
        transformers.MistralForCausalLM(
            transformers.MistralConfig(**llama_kwargs(tokenizer.vocab_size), sliding_window=16)
        )
    )
    path = save(ref, tokenizer, tmp_path / "hf")
    with pytest.warns(
        UserWarning, match=r"sliding_window=16 attention is not implemented; the context is limited to 16"
    ):
        lm = gl.load(path)
    assert lm.model.config.block_size == 16
    logits_close(lm, ref, 16, tokenizer.vocab_size)  # within the window: full attention, exact
    with pytest.raises(gl.UserError, match=r"longer than the model's context|block_size|context"):
        lm.generate("x" * 40, max_new_tokens=2, temperature=0)
    raw = json.loads((path / "config.json").read_text())
    raw["sliding_window"] = None
    (path / "config.json").write_text(json.dumps(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gl.load(path).model.config.block_size == MAX_POSITIONS


def test_stored_head_wins_over_tie_word_embeddings_with_a_warning(tmp_path, tokenizer):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**llama_kwargs(tokenizer.vocab_size), tie_word_embeddings=False)
    ref = random_norms(transformers.LlamaForCausalLM(cfg))
    path = save(ref, tokenizer, tmp_path / "hf")
    raw = json.loads((path / "config.json").read_text())
    raw["tie_word_embeddings"] = True  # contradicts the stored, different lm_head.weight
    (path / "config.json").write_text(json.dumps(raw))
    assert "lm_head.weight" in load_file(str(path / "model.safetensors"))
    with pytest.warns(
        UserWarning, match=r"tie_word_embeddings is true but the checkpoint stores a different lm_head\.weight"
    ):
        lm = gl.load(path)
    assert not lm.model.config.tie_weights
    logits_close(lm, ref, 20, tokenizer.vocab_size)  # the untied reference: the stored head is used
    tensors = load_file(str(path / "model.safetensors"))
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()  # agreeing: tied, no warning
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gl.load(path).model.config.tie_weights


def test_unknown_rope_kind_is_refused_once_named(tmp_path, tokenizer):
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**llama_kwargs(tokenizer.vocab_size)))
    path = save(ref, tokenizer, tmp_path / "hf")
    raw = json.loads((path / "config.json").read_text())
    raw["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10_000.0}
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(gl.UserError) as err:
        gl.load(path)
    message = str(err.value)
    assert "RoPE scaling 'longrope' is not supported; supported: default, linear, dynamic, llama3, yarn" in message
    assert message.count("config.json") == 1
