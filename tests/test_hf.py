"""Hugging Face checkpoints: random GPT-2 and Llama models saved by `transformers` load into genloom
with the same logits and the same greedy / beam-search tokens; our exported runs load in `transformers`
with the same logits; every bad directory gives one clear line."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers

import genloom as gl
from genloom.errors import UserError
from genloom.hf import save_hf
from genloom.models.gpt import GPT, GPTConfig
from genloom.tokenizers import BPETokenizer

from .conftest import SHAKESPEARE

N_NEW = 64


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train([SHAKESPEARE.read_text()[:20_000]], vocab_size=300)


def save_hf_model(model: transformers.PreTrainedModel, tok: BPETokenizer, path: Path, **kw) -> Path:
    model.save_pretrained(path, **kw)
    tok.save(path / "tokenizer.json")
    return path


def gpt2(tok: BPETokenizer) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=tok.vocab_size, n_positions=128, n_embd=64, n_layer=2, n_head=4, eos_token_id=None, bos_token_id=None
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


def llama(
    tok: BPETokenizer, n_kv: int = 2, tied: bool = False, bos: int | None = None, init: float = 0.02
) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=n_kv,
        max_position_embeddings=128,
        rope_parameters={"rope_type": "default", "rope_theta": 50_000.0},
        tie_word_embeddings=tied,
        eos_token_id=None,
        bos_token_id=bos,
        initializer_range=init,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norms, so a wrong norm mapping would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def hf_greedy(model: transformers.PreTrainedModel, ids: torch.Tensor, n: int, **kw) -> list[int]:
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, **kw)
    return out[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize(
    "build", [gpt2, llama, lambda t: llama(t, n_kv=4, tied=True)], ids=["gpt2", "llama-gqa-untied", "llama-tied"]
)
def test_load_hf_logits_and_greedy_match_transformers(tmp_path, tokenizer, build):
    ref = build(tokenizer)
    lm = gl.load(save_hf_model(ref, tokenizer, tmp_path / "hf"))
    ids = torch.randint(0, tokenizer.vocab_size, (2, 20))
    with torch.no_grad():
        assert torch.allclose(lm.model(ids), ref(ids).logits, atol=1e-4)
    prompt = tokenizer.encode("ROMEO: what")
    (ours,) = lm.complete(tokenizer.decode(prompt), max_new_tokens=N_NEW, temperature=0, stop_at_eos=False)
    assert ours.token_ids == hf_greedy(ref, torch.tensor([prompt]), N_NEW)


@pytest.mark.parametrize(("length_penalty", "early_stopping"), [(1.0, False), (0.5, True), (2.0, False)])
def test_beam_search_matches_transformers(tmp_path, tokenizer, length_penalty, early_stopping):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=64, n_layer=2, n_head=4, initializer_range=0.2
    )  # larger random weights: peaked, varied next-token distributions
    ref = transformers.GPT2LMHeadModel(cfg).eval()
    lm = gl.load(save_hf_model(ref, tokenizer, tmp_path / "hf"))
    prompt = tokenizer.encode("KING")
    ids = torch.tensor([prompt])
    (ours,) = lm.complete("KING", max_new_tokens=12, num_beams=4, stop_at_eos=False)
    plain = hf_greedy(ref, ids, 12, num_beams=4)
    assert ours.token_ids == plain
    eos = plain[5]  # an end-of-text token the beams meet: hypotheses finish at different lengths
    ref.generation_config.pad_token_id = eos
    theirs = ref.generate(
        ids,
        max_new_tokens=12,
        num_beams=4,
        do_sample=False,
        eos_token_id=eos,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
    )[0, len(prompt) :].tolist()
    lm.tokenizer.eos_id = eos
    (ours,) = lm.complete(
        "KING", max_new_tokens=12, num_beams=4, length_penalty=length_penalty, early_stopping=early_stopping
    )
    assert ours.token_ids == (theirs[: theirs.index(eos)] if eos in theirs else theirs)
    assert ours.finish_reason == ("eos" if eos in theirs else "length")


@pytest.mark.parametrize("add_bos", [None, True, False], ids=["config-only", "tokenizer-adds-bos", "tokenizer-says-no"])
def test_llama_prompt_ids_are_the_tokenizers_own(tmp_path, tokenizer, add_bos):
    """config.json's bos_token_id alone adds nothing (SmolLM2's case, as transformers' AutoTokenizer);
    tokenizer_config.json's add_bos_token frames every prompt (transformers 5 ignores the flag for a
    generic tokenizer.json without a post-processor, so there the expected ids are written out); an
    empty prompt starts from BOS."""
    bos_text = tokenizer.hf.id_to_token(7)
    ref = llama(tokenizer, bos=7)
    path = save_hf_model(ref, tokenizer, tmp_path / "hf")
    if add_bos is not None:
        config = {"add_bos_token": add_bos, "bos_token": bos_text, "tokenizer_class": "PreTrainedTokenizerFast"}
        (path / "tokenizer_config.json").write_text(json.dumps(config))
    lm = gl.load(path)
    prompt = [7, *tokenizer.encode("ROMEO")] if add_bos else tokenizer.encode("ROMEO")
    assert lm.prompt_ids("ROMEO") == prompt
    if not add_bos:
        assert transformers.AutoTokenizer.from_pretrained(path)("ROMEO")["input_ids"] == prompt
    (ours,) = lm.complete("ROMEO", max_new_tokens=16, temperature=0, stop_at_eos=False)
    assert ours.token_ids == hf_greedy(ref, torch.tensor([prompt]), 16)
    (empty,) = lm.complete("", max_new_tokens=4, temperature=0, stop_at_eos=False)  # BOS alone: unconditional
    assert empty.prompt_tokens == 1 and len(empty.token_ids) == 4


def test_sharded_checkpoint_and_its_errors(tmp_path, tokenizer):
    ref = llama(tokenizer)
    path = save_hf_model(ref, tokenizer, tmp_path / "hf", max_shard_size="100KB")
    index = json.loads((path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    ids = torch.randint(0, tokenizer.vocab_size, (1, 10))
    with torch.no_grad():
        assert torch.allclose(gl.load(path).model(ids), ref(ids).logits, atol=1e-4)
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / shards[-1]).unlink()
    with pytest.raises(UserError, match=f"lists shard {shards[-1]}, which is missing"):
        gl.load(broken)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(path, mismatched)
    cfg = json.loads((path / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps(cfg | {"intermediate_size": 96}))
    with pytest.raises(UserError, match="has shape"):
        gl.load(mismatched)


def test_bad_hf_directories(tmp_path, tokenizer):
    path = save_hf_model(gpt2(tokenizer), tokenizer, tmp_path / "hf")
    bert = tmp_path / "t5"
    shutil.copytree(path, bert)
    (bert / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(
        UserError, match=r"unsupported model_type 't5'; supported: gpt2, gpt_neox, llama, mistral, qwen2 \(and bert"
    ):
        gl.load(bert)
    (path / "tokenizer.json").unlink()
    with pytest.raises(UserError, match=r"no tokenizer\.json, vocab\.txt or tokenizer\.model"):
        gl.load(path)
    empty = tmp_path / "noweights"
    empty.mkdir()
    (empty / "config.json").write_text((bert.parent / "hf" / "config.json").read_text())
    with pytest.raises(UserError, match=r"no model\.safetensors"):
        from genloom.hf import _read_tensors

        _read_tensors(empty, "gpt2")


def test_exported_run_loads_in_transformers(tmp_path, trained_run):
    out = gl.export(trained_run, tmp_path / "export")
    lm = gl.load(trained_run)
    ref = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(0, lm.model.config.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(ref(ids).logits, lm.model(ids), atol=1e-4)
    assert gl.load(out).generate("ROMEO:", max_new_tokens=10, temperature=0) == lm.generate(
        "ROMEO:", max_new_tokens=10, temperature=0
    )
    with pytest.raises(UserError, match="already exists"):
        gl.export(trained_run, out)


def test_exported_llama_style_model_loads_in_transformers(tmp_path, tokenizer):
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=64,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        n_embd=32,
        pos_encoding="rope",
        norm="rmsnorm",
        mlp="swiglu",
        rope_theta=20_000.0,
        tie_weights=False,
    )
    model = GPT(cfg).eval()
    save_hf(model, tokenizer, tmp_path / "out")
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.allclose(ref(ids).logits, model(ids), atol=1e-4)
    with pytest.raises(UserError, match="no Hugging Face twin"):
        save_hf(GPT(GPTConfig(pos_encoding="alibi")), tokenizer, tmp_path / "alibi")


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_left_padded_batch_matches_transformers(tmp_path, tokenizer, arch):
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=64, n_layer=2, n_head=4, initializer_range=0.2
        )
        ref = transformers.GPT2LMHeadModel(cfg).eval()
    else:
        ref = llama(tokenizer, init=0.2)
    lm = gl.load(save_hf_model(ref, tokenizer, tmp_path / "hf"))
    prompts = ["ROMEO: what say you", "KING", "O"]
    ids = [tokenizer.encode(p) for p in prompts]
    P = max(map(len, ids))
    batch = torch.tensor([[0] * (P - len(p)) + p for p in ids])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in ids])
    ref.generation_config.eos_token_id = None
    ref.generation_config.pad_token_id = 0
    theirs = ref.generate(batch, attention_mask=mask, max_new_tokens=20, do_sample=False)[:, P:].tolist()
    ours = lm.complete(prompts, max_new_tokens=20, temperature=0, stop_at_eos=False)
    assert [c.token_ids for c in ours] == theirs
