"""LoRA adapters in Hugging Face PEFT's format: a `tune lora` run exports an adapter that `peft` loads with
the logits of genloom's merged model, and adapters made by `peft` merge into genloom exactly."""

from __future__ import annotations

import json

import peft
import pytest
import torch
import transformers

import genloom as gl
from genloom.errors import UserError
from genloom.hf import save_hf
from genloom.models.gpt import GPT, GPTConfig
from genloom.tokenizers import BPETokenizer
from tests.conftest import SHAKESPEARE
from tests.tune.conftest import FAST


def _ids(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(3))


def test_lora_run_exports_as_a_peft_adapter_with_the_merged_models_logits(tmp_path, trained_run, tune_data):
    run = tmp_path / "lora"
    sets = [*FAST, "lora.r=4", "lora.alpha=8", "train.lr=3e-2"]
    gl.tune("lora", trained_run, data=tune_data["sft"], out=run, sets=sets)
    out = gl.export(run, tmp_path / "peft", format="peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 8.0)
    assert set(config["target_modules"]) == {"c_attn", "c_proj", "c_fc"}  # GPT-2's names for attn|mlp

    lm = gl.load(run)  # the merged model
    ids = _ids(lm.model.config.vocab_size)
    base = transformers.AutoModelForCausalLM.from_pretrained(out / "base").eval()
    model = peft.PeftModel.from_pretrained(base, out).eval()
    with torch.no_grad():
        merged = lm.model(ids)
        torch.testing.assert_close(model(ids).logits, merged, atol=1e-4, rtol=1e-4)
        with model.disable_adapter():
            assert (model(ids).logits - merged).abs().max() > 1e-3  # the adapter changes the output
    back = gl.load(out / "base").merge_peft_adapter(out)  # and genloom reads the adapter back
    with torch.no_grad():
        torch.testing.assert_close(back.model(ids), merged, atol=1e-4, rtol=1e-4)


SHAPES = {  # (genloom config fields, the transformers module names PEFT targets)
    "llama": (
        {"pos_encoding": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 2},
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    ),
    "gpt_neox": ({"pos_encoding": "rope"}, ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]),
    "gpt2": ({}, ["c_attn", "c_proj", "c_fc"]),
}


@pytest.mark.parametrize("arch", sorted(SHAPES))
def test_adapters_made_by_peft_merge_into_genloom_exactly(tmp_path, arch):
    fields, targets = SHAPES[arch]
    tokenizer = BPETokenizer.train([SHAKESPEARE.read_text()[:20_000]], vocab_size=300)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=32, **fields)
    save_hf(GPT(cfg).eval(), tokenizer, tmp_path / "base")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    lora = peft.LoraConfig(
        r=4,
        lora_alpha=12,
        target_modules=targets,
        init_lora_weights=False,  # random B: a nonzero update
        use_rslora=arch == "llama",
        rank_pattern={targets[0]: 2},
    )
    model = peft.get_peft_model(hf, lora).eval()
    model.save_pretrained(tmp_path / "adapter")
    lm = gl.load(tmp_path / "base")
    ids = _ids(cfg.vocab_size)
    with torch.no_grad():
        before = lm.model(ids)
        expected = model(ids).logits
        lm.merge_peft_adapter(tmp_path / "adapter")
        assert (expected - before).abs().max() > 1e-3
        torch.testing.assert_close(lm.model(ids), expected, atol=1e-4, rtol=1e-4)


def test_adapters_genloom_cannot_apply_exactly_are_refused(tmp_path, trained_run):
    lm = gl.load(trained_run)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    with pytest.raises(UserError, match=r"no adapter_config\.json"):
        lm.merge_peft_adapter(adapter)
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["c_attn"]}
    for change, message in [
        ({"use_dora": True}, "use_dora"),
        ({"peft_type": "IA3"}, "peft_type"),
        ({"r": 0}, "r must be a positive number"),
    ]:
        (adapter / "adapter_config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(UserError, match=message):
            lm.merge_peft_adapter(adapter)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    (adapter / "adapter_model.bin").write_bytes(b"a pickle")
    with pytest.raises(UserError, match="genloom reads only safetensors"):
        lm.merge_peft_adapter(adapter)
    from safetensors.torch import save_file

    key = "base_model.model.transformer.h.0.attn.c_attn"
    save_file(
        {f"{key}.lora_A.weight": torch.zeros(4, 7), f"{key}.lora_B.weight": torch.zeros(96, 4)},
        str(adapter / "adapter_model.safetensors"),
    )
    with pytest.raises(UserError, match=r"this model expects A \(r, 32\)"):
        lm.merge_peft_adapter(adapter)


def test_a_tuned_runs_export_carries_its_chat_template_and_stop_ids(tmp_path, sft_run):
    out = gl.export(sft_run, tmp_path / "hf")
    lm = gl.load(sft_run)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    messages = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "say love"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == lm.chat_prompt(messages)
    assert tokenizer.apply_chat_template(messages, tokenize=False) == lm.chat_template.render(messages, False)
    end = lm.tokenizer.encode(lm.chat_template.end)
    assert len(end) == 1 and tokenizer.convert_tokens_to_ids(tokenizer.eos_token) == end[0]
    generation = json.loads((out / "generation_config.json").read_text())
    assert end[0] in (
        [generation["eos_token_id"]] if isinstance(generation["eos_token_id"], int) else generation["eos_token_id"]
    )
