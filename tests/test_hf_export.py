"""Every text preset exports to a Hugging Face directory that `transformers` loads and decodes exactly as
genloom does, with a tokenizer whose special ids exist; GPT-NeoX directories load back into genloom."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import genloom as gl
from genloom.errors import UserError
from genloom.hf import load_hf, save_hf
from genloom.models.gpt import GPT, GPTConfig
from genloom.models.gpt.presets import PRESETS
from genloom.tokenizers import BPETokenizer
from tests.conftest import FAST, SHAKESPEARE

EXPECTED_ARCHITECTURE = {
    "debug": "gpt2",
    "nanogpt-cpu": "gpt_neox",
    "demo": "gpt_neox",
    "code-debug": "gpt2",
    "code-cpu": "gpt_neox",
}


def test_every_preset_has_an_expected_architecture():
    assert set(EXPECTED_ARCHITECTURE) == set(PRESETS)  # a new preset must be added to the test below


@pytest.mark.parametrize("preset", sorted(EXPECTED_ARCHITECTURE))
def test_preset_run_exports_to_transformers_with_the_same_greedy_tokens(tmp_path, small_text, preset):
    run = tmp_path / "run"
    if preset.startswith("code"):  # a source tree: a small package of this interpreter's standard library
        gl.train("gpt", out=run, preset=preset, sets=[*FAST, "data.glob=json/*.py", "model.block_size=128"])
    else:
        gl.train("gpt", out=run, data=str(small_text), preset=preset, sets=FAST)
    out = gl.export(run, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == EXPECTED_ARCHITECTURE[preset]
    lm = gl.load(run)
    vocab = lm.model.config.vocab_size
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):  # special ids exist, or are null
        assert key in config and (config[key] is None or 0 <= config[key] < vocab)

    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    prompt = "ROMEO:\nWhat light"
    ids = lm.tokenizer.encode(prompt)
    assert tokenizer(prompt, add_special_tokens=False)["input_ids"] == ids
    x = torch.tensor([ids])
    new = min(24, lm.model.config.block_size - len(ids))  # within the context: transformers does not slide
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, lm.model(x), atol=1e-4, rtol=1e-4)
        theirs = model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)[0, len(ids) :].tolist()
    (ours,) = lm.complete(prompt, max_new_tokens=new, temperature=0, stop_at_eos=False)
    assert len(theirs) == new
    assert ours.token_ids == theirs
    assert tokenizer.decode(theirs) == ours.text


def test_gpt_neox_round_trip_and_refusals(tmp_path):
    tokenizer = BPETokenizer.train([SHAKESPEARE.read_text()[:20_000]], vocab_size=300)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=32)
    model = GPT(GPTConfig(**{**cfg.__dict__, "pos_encoding": "rope", "bias": True, "tie_weights": False})).eval()
    save_hf(model, tokenizer, tmp_path / "neox")
    back, _, back_cfg, _ = load_hf(tmp_path / "neox")
    assert back_cfg.pos_encoding == "rope" and back_cfg.norm == "layernorm" and not back_cfg.tie_weights
    ids = torch.randint(0, cfg.vocab_size, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(back(ids), model(ids), atol=1e-5, rtol=1e-5)
    config = json.loads((tmp_path / "neox" / "config.json").read_text())
    for change, message in [
        ({"use_parallel_residual": True}, "use_parallel_residual"),
        ({"rotary_pct": 0.25, "rope_parameters": {"partial_rotary_factor": 0.25}}, "rotary"),
    ]:
        (tmp_path / "neox" / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(UserError, match=message):
            load_hf(tmp_path / "neox")
