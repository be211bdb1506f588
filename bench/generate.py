"""Benchmark: genloom's generation engine against `transformers` `generate`, same weights, side by side.

Setup (the bars of issue 3): fp32, 2 threads, greedy decoding, 256 new tokens, KV cache on in both
(transformers' default dynamic cache; genloom's preallocated cache), no end-of-text stop. The weights
are a random `GPT2LMHeadModel` built by `transformers`, saved with `save_pretrained` and loaded by
`gl.load` — the very same numbers in both engines (the test suite checks their logits agree).

  - tiny : n_layer=4, n_head=4, n_embd=128, vocab 65 (the nanogpt-cpu size), batch 1;
  - gpt2 : GPT-2 small (12 × 768, vocab 50257, 124M parameters), batch 1 and batch 8.

Each case runs the contenders alternately, `--rounds` times after one warm-up each, so machine drift
hits both alike; reported are median tokens/s, ms per step (one new token for every row), the ratio
genloom / transformers, and the KV-cache memory genloom allocates. Results go to bench/RESULTS.md.

    python bench/generate.py --rounds 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402

NEW_TOKENS = 256
PROMPT_TOKENS = 16
CASES = {  # name: (GPT2Config overrides, batch sizes)
    "tiny": ({"n_layer": 4, "n_head": 4, "n_embd": 128, "vocab_size": 65, "n_positions": 512}, [1]),
    "gpt2-124M": ({"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257, "n_positions": 1024}, [1, 8]),
}


def build(overrides: dict[str, int], where: Path) -> tuple[Any, Any]:  # (transformers model, genloom LanguageModel)
    import transformers

    import genloom as gl
    from genloom.tokenizers import CharTokenizer

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(**overrides, eos_token_id=None, bos_token_id=None)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(where)
    CharTokenizer([chr(0x100 + i) for i in range(min(overrides["vocab_size"], 60))]).save(where / "tokenizer.json")
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    return hf, gl.load(where)


def run_hf(model: Any, ids: torch.Tensor, n: int = NEW_TOKENS) -> torch.Tensor:
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[:, ids.shape[1] :]


def run_genloom(lm: Any, ids: torch.Tensor, n: int = NEW_TOKENS) -> torch.Tensor:
    from genloom.generation import GenerationConfig, complete

    cfg = GenerationConfig(max_new_tokens=n, temperature=0, stop_at_eos=False)
    out = complete(lm.model, ids.tolist(), cfg, lambda t: "")
    return torch.tensor([c.token_ids for c in out])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(2)
    import transformers

    rows = []
    for name in args.cases:
        overrides, batches = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            hf, lm = build(overrides, Path(tmp))
        for batch in batches:
            ids = torch.randint(
                0, overrides["vocab_size"], (batch, PROMPT_TOKENS), generator=torch.Generator().manual_seed(1)
            )
            same = torch.equal(run_hf(hf, ids, 32), run_genloom(lm, ids, 32))  # warm-up; the outputs agree
            times: dict[str, list[float]] = {"transformers": [], "genloom": []}
            for _ in range(args.rounds):
                for contender, fn, model in (("transformers", run_hf, hf), ("genloom", run_genloom, lm)):
                    t0 = time.perf_counter()
                    fn(model, ids)
                    times[contender].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in times.items()}
            cache = lm.model.new_cache(batch, PROMPT_TOKENS + NEW_TOKENS)
            row = {
                "case": name,
                "batch": batch,
                "hf_tok_s": batch * NEW_TOKENS / med["transformers"],
                "gl_tok_s": batch * NEW_TOKENS / med["genloom"],
                "hf_ms": 1000 * med["transformers"] / NEW_TOKENS,
                "gl_ms": 1000 * med["genloom"] / NEW_TOKENS,
                "kv_mb": cache.nbytes() / 2**20,
                "same": same,
            }
            row["ratio"] = row["gl_tok_s"] / row["hf_tok_s"]
            rows.append(row)
            print(row, flush=True)
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    table = [
        "| model | batch | transformers tok/s | genloom tok/s | ratio | ms/step (tf → gl) | ms/token (tf → gl) | KV cache (genloom) | same tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['case']} | {r['batch']} | {r['hf_tok_s']:.0f} | {r['gl_tok_s']:.0f} | **{r['ratio']:.2f}×** | "
            f"{r['hf_ms']:.2f} → {r['gl_ms']:.2f} | {r['hf_ms'] / r['batch']:.2f} → {r['gl_ms'] / r['batch']:.2f} | "
            f"{r['kv_mb']:.1f} MiB | {'yes' if r['same'] else 'no'} |"
        )
    body = f"""Command: `python bench/generate.py --rounds {args.rounds}`. Greedy, fp32, 2 threads, {PROMPT_TOKENS}-token prompt,
{NEW_TOKENS} new tokens, KV cache on in both, same random GPT-2-architecture weights in both engines.
Median of {args.rounds} alternating rounds after a 32-token warm-up (whose greedy tokens are compared:
"same tokens"). transformers {transformers.__version__}, torch {torch.__version__},
{cpu}. **The machine was shared** (another helper's tests may have been running): figures are noisy,
the ratios (measured side by side) are the meaningful part.

{chr(10).join(table)}

What genloom does per step: one preallocated KV cache (no concatenation or re-slicing copies), GQA
without repeating key/value heads, the vocabulary projection for the last position only and, for a
large vocabulary, from a contiguous (C, V) copy of the tied weight (the skinny matmul is faster in
that layout here), `nn.Linear` weights kept in their (out, in) layout (faster than GPT-2's Conv1D
(in, out) at batch 1), the whole loop under `torch.inference_mode`, no mask rebuilt for unpadded
batches, and no CPU sync besides reading the chosen token ids. No `torch.compile`."""
    update_results("generate", "Text generation: genloom vs transformers generate", body)


if __name__ == "__main__":
    main()
