"""The `genloom` command: argument parsing mapped one-to-one onto the public API, nothing else.

User mistakes (`UserError`) print one line and exit with status 2; Ctrl-C exits with 130. The API is
imported inside the handlers so that `genloom --help` answers without loading torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


def _cmd_train(args: argparse.Namespace) -> int:
    import genloom as gl

    sets = list(args.set)
    for flag, key in (("encoding_errors", "encoding_errors"), ("glob", "glob"), ("jsonl_field", "jsonl_field")):
        if getattr(args, flag) is not None:
            sets.append(f"data.{key}={getattr(args, flag)}")
    if args.no_progress:
        sets.append("train.progress=false")
    result = gl.train(
        args.family,
        out=args.out,
        data=args.data,
        preset=args.preset,
        config=args.config,
        sets=sets,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    status = "stopped (Ctrl-C)" if result.interrupted else "done"
    val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
    print(f"{status}: step {result.step}{val}; run directory {args.out}")
    return 130 if result.interrupted else 0


def _cmd_tune(args: argparse.Namespace) -> int:
    import genloom as gl

    sets = list(args.set)
    if args.no_progress:
        sets.append("train.progress=false")
    method = "lora" if args.lora and args.method == "sft" else args.method
    if args.lora and method != "lora":
        sets.append("use_lora=true")
    result = gl.tune(
        method,
        args.run,
        data=args.data,
        out=args.out,
        sets=sets,
        reward=args.reward,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.metrics.items())
    status = "stopped (Ctrl-C)" if result.training.interrupted else "done"
    print(f"{status}: {method}, step {result.training.step}; {figures}; run directory {args.out}")
    return 130 if result.training.interrupted else 0


def _unescape(text: str) -> str:
    """`\\n` and `\\t` typed on a command line mean newline and tab (for --stop and --prompt)."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _generation_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `GenerationConfig` fields given on the command line (absent flags keep their defaults)."""
    from genloom.errors import UserError

    bias: dict[int, float] = {}
    for item in args.logit_bias:
        token, _, value = item.partition("=")
        try:
            bias[int(token)] = float(value)
        except ValueError:
            raise UserError(f"--logit-bias {item!r}: expected TOKEN_ID=BIAS, e.g. 50256=-100") from None
    options = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature if args.temperature is not None else (1.0 if args.num_beams == 1 else 0.0),
        "top_k": args.top_k,
        "top_p": args.top_p,
        "min_p": args.min_p,
        "repetition_penalty": args.repetition_penalty,
        "frequency_penalty": args.frequency_penalty,
        "presence_penalty": args.presence_penalty,
        "logit_bias": bias,
        "banned_tokens": tuple(args.ban),
        "stop": tuple(_unescape(s) for s in args.stop),
        "seed": args.seed,
        "num_beams": args.num_beams,
        "length_penalty": args.length_penalty,
        "early_stopping": args.early_stopping,
        "context_overflow": "truncate" if args.truncate else "error",
        "compile": args.compile,
        "watermark": args.watermark,
        "block_verbatim": args.block_verbatim,
    }
    for flag in ("json_schema", "regex", "choice"):  # `sample`'s constraints (docs/tools.md)
        value = getattr(args, flag, None)
        if value:
            options[flag] = _json_schema_arg(value) if flag == "json_schema" else value
    if args.logprobs is not None:
        options |= {"logprobs": True, "top_logprobs": args.logprobs}
    return options


def _read_prompts(path: str) -> list[str]:
    """One prompt per non-blank line of a UTF-8 file (`\\n` in a line means a newline)."""
    from pathlib import Path

    from genloom.errors import UserError

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"--prompts-file {path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"--prompts-file {path}: not UTF-8 text (byte offset {e.start})") from None
    prompts = [_unescape(line) for line in lines if line.strip()]
    if not prompts:
        raise UserError(f"--prompts-file {path}: no prompts (one per line expected)")
    return prompts


def _json_schema_arg(value: str) -> Any:
    """--json-schema: inline JSON, or a file holding it."""
    import json

    from genloom.errors import UserError

    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text()
        except OSError as e:
            raise UserError(f"--json-schema {value}: cannot read it ({e.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise UserError(f"--json-schema {value}: not JSON ({e})") from None


def _cmd_agent(args: argparse.Namespace) -> int:
    import genloom as gl

    if not args.tool:
        print("genloom agent: give at least one --tool (calculator, datetime, files)", file=sys.stderr)
        return EXIT_USAGE
    agent = gl.Agent(
        args.run,
        tools=args.tool,
        folder=args.folder,
        remote_model=args.model,
        api_key=args.api_key,
        max_steps=args.max_steps,
        time_budget=args.time_budget,
        tool_timeout=args.tool_timeout,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
    )
    result = agent.run(args.task)
    if args.trace:
        for i, step in enumerate(result.steps, 1):
            print(f"[{i}] model ({step.seconds:.1f} s): {step.text}")
            for c in step.calls:
                outcome = c.get("result", c.get("error"))
                print(f"    {c['name']}({c['arguments']}) -> {outcome}")
    if result.answer is not None:
        print(result.answer)
    print(f"[stopped: {result.stop_reason}{': ' + result.error if result.error else ''}; {len(result.steps)} steps, "
          f"{result.seconds:.1f} s]", file=sys.stderr)  # fmt: skip
    return 0  # the run ended (its stop reason is printed); bad input exits 2 before it starts


def _cmd_sample(args: argparse.Namespace) -> int:
    import genloom as gl

    options = {
        "prompt": _unescape(args.prompt),
        "suffix": _unescape(args.suffix) if args.suffix is not None else None,
        "prompts": _read_prompts(args.prompts_file) if args.prompts_file is not None else None,
        "stream": args.stream,
        "generation": _generation_options(args),
        "n": args.n,
        "label": args.label,
        "seed": args.seed,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "temperature": args.temperature,
        "where": args.where,
        "watermark": args.watermark,
    }
    result = gl.sample(
        args.run,
        args.out,
        checkpoint=args.checkpoint,
        echo=lambda text: print(text, end="", flush=True),
        quantize=args.quantize,
        **options,
    )
    if result.message:
        print(result.message)
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    import genloom as gl

    lm = gl.load_for(args.run, "chat", checkpoint=args.checkpoint, quantize=args.quantize)
    options = _generation_options(args) | {"context_overflow": "truncate"}
    if lm.chat_template is None:
        print("genloom chat: a base run, so it continues 'User:/Assistant:' lines as text. Empty line or Ctrl-D quits.")
    else:
        print("genloom chat: an instruction-tuned run (its chat template). Empty line or Ctrl-D quits.")
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if not line.strip():
            break
        messages.append({"role": "user", "content": line})
        reply = ""
        for piece in lm.stream_chat(messages, **options):
            print(piece, end="", flush=True)
            reply += piece
        print()
        messages.append({"role": "assistant", "content": reply.strip()})
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import genloom as gl

    out = gl.export(args.run, args.out, format=args.format, checkpoint=args.checkpoint)
    print(f"exported {args.run} to {out} ({args.format} format)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import genloom as gl

    code = {  # code runs (docs/code.md): HumanEval by execution, held-out middle lines
        "humaneval": args.humaneval,
        "limit": args.limit,
        "every": args.every,
        "samples": args.samples,
        "temperature": args.temperature,
        "prefix_only": args.prefix_only or None,
        "middle_lines": args.middle_lines,
        "out": args.out,
    }
    options = {k: v for k, v in code.items() if v is not None}
    if args.run is None:  # genloom eval RUN
        print(gl.evaluate(args.first, checkpoint=args.checkpoint, n_samples=args.n_samples, **options).line)
        return 0
    probe, run = args.first, args.run  # genloom eval PROBE RUN
    settings = {
        "n_prompts": args.prompts,
        "prefix_chars": args.prefix_chars,
        "min_chars": args.min_chars,
        "max_new_tokens": args.new_tokens,
        "block_verbatim": args.block_verbatim,
        "seed": args.seed,
        "limit": args.limit,
    }
    print(gl.evaluate(run, checkpoint=args.checkpoint, probe=probe, **settings).line)
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    import json

    import genloom as gl

    found = gl.detect(args.run, args.file, gamma=args.gamma, threshold=args.threshold)
    print(json.dumps(found) if args.json else found["line"])
    return 0


def _cmd_fill_mask(args: argparse.Namespace) -> int:
    import genloom as gl

    lm = gl.load_for(args.run, "fill-mask", checkpoint=args.checkpoint)
    for n, fillers in enumerate(lm.fill_mask(args.text, args.top_k), start=1):
        print(f"[MASK] #{n}:")
        for token, prob in fillers:
            print(f"  {prob:7.4f}  {token}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import genloom as gl

    tr = gl.load_for(args.run, "translate", checkpoint=args.checkpoint)
    if (args.text is None) == (args.file is None):
        raise gl.UserError("translate: give exactly one of a text or --file (one sentence per line)")
    options = _generation_options(args)
    if args.temperature is None:  # translation is greedy (or beam search) unless asked to sample
        options["temperature"] = 0.0
    if args.max_new_tokens is None:  # the decoder's whole context
        del options["max_new_tokens"]
    if args.file is None:
        texts = [args.text]
    else:
        try:
            texts = [line for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as e:
            raise gl.UserError(f"--file {args.file}: cannot read it ({e.strerror})") from None
        except UnicodeDecodeError as e:
            raise gl.UserError(f"--file {args.file}: not UTF-8 text (byte offset {e.start})") from None
        if not texts:
            raise gl.UserError(f"--file {args.file}: no sentences (one per line expected)")
    for translation in tr.translate(texts, **options):
        print(translation)
    return 0


def _cmd_families(args: argparse.Namespace) -> int:
    import genloom as gl

    heading = None
    for row in gl.families():  # grouped by modality, each group headed by its guide
        if row["modality_title"] != heading:
            print(("" if heading is None else "\n") + f"{row['modality_title']} — {row['docs']}")
            heading = row["modality_title"]
        print(f"  {row['name']:<10} {row['use_for']}\n  {'':<10} presets: {row['presets']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import genloom as gl

    print("genloom demo: training a character-level GPT on Tiny Shakespeare (about two minutes)...", flush=True)
    out = gl.demo(args.out, max_iters=args.max_iters)
    r, m = out["result"], out["metrics"]
    print("\n--- sample ---\n" + out["sample"] + "\n--------------")
    print(f"validation loss {m['val_loss']:.4f}, perplexity {m['val_perplexity']:.3f} (whole validation split)")
    print(f"{r.step} steps, {r.ms_per_iter:.1f} ms/step, {r.tokens_per_s:,.0f} tokens/s")
    print(f"run directory: {out['run_dir']} (model card: {out['run_dir']}/card.md, loss curve: samples/loss_curve.png)")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import genloom as gl

    families = [f.strip() for f in (args.families or "").split(",") if f.strip()]
    report = gl.compare(
        args.out,
        data=args.data,
        families=families,
        runs=args.runs,
        budget=args.budget,
        preset=args.preset,
        sets=args.set,
        seed=args.seed,
        rounds=args.rounds,
        resume=args.resume,
        overwrite=args.overwrite,
        log=lambda line: print(line, flush=True),
    )
    print("\n".join(report["summary"]))
    return 0


def _name_value(item: str, flag: str) -> tuple[str, str]:
    """NAME=VALUE of a repeated flag."""
    from genloom.errors import UserError

    name, sep, value = item.partition("=")
    if not sep or not name or not value:
        raise UserError(f"{flag} {item!r}: expected NAME=VALUE")
    return name, value


def _cmd_serve(args: argparse.Namespace) -> int:
    from genloom.serve import serve

    max_batch = 1 if args.no_batching else args.max_batch
    indexes = dict(_name_value(item, "--index") for item in args.index)
    keys: dict[str, list[str]] = {}
    for item in args.index_key:
        name, key = _name_value(item, "--index-key")
        keys.setdefault(name, []).append(key)
    serve(
        args.runs,
        args.host,
        args.port,
        args.api_key,
        max_batch,
        args.max_queue,
        log=lambda line: print(line, flush=True),
        indexes=indexes,
        index_keys=keys,
        quantize=args.quantize,
    )
    return 0


def _warn(line: str) -> None:
    print(f"genloom: warning: {line}", file=sys.stderr, flush=True)


def _cmd_index(args: argparse.Namespace) -> int:
    import genloom as gl

    settings = {
        "chunk_tokens": args.chunk_tokens,
        "overlap": args.overlap,
        "max_file_bytes": args.max_file_mb,
        "scrub_pii": args.scrub_pii,
    }
    given = {k: v for k, v in settings.items() if v is not None}
    if "max_file_bytes" in given:
        given["max_file_bytes"] = int(given["max_file_bytes"] * 1_000_000)
    config = gl.IndexConfig(**given) if given else None
    index = gl.Index.build(
        args.docs, args.out, embedder=args.embedder, config=config, warn=_warn, overwrite=args.overwrite
    )
    print(f"{args.out}: {index.last_update.summary()}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    import json

    import genloom as gl
    from genloom.errors import UserError

    index = gl.Index(args.index, embedder=args.embedder)
    if args.queries is not None:
        queries = index.read_queries(args.queries)
        results = index.search_many([q for _, q in queries], k=args.k, mode=args.mode, one_per_doc=args.one_per_doc)
        for (qid, _), hits in zip(queries, results, strict=True):
            print(json.dumps({"id": qid, "hits": [h.to_json(text=False) for h in hits]}, ensure_ascii=False))
        return 0
    if args.query is None:
        raise UserError("search: give a query, or --queries FILE.jsonl")
    for rank, hit in enumerate(index.search(args.query, k=args.k, mode=args.mode, one_per_doc=args.one_per_doc), 1):
        if args.json:
            print(json.dumps(hit.to_json(), ensure_ascii=False))
        else:
            c = hit.chunk
            heading = f" > {' / '.join(c.heading)}" if c.heading else ""
            print(
                f"{rank}. {c.path} ({c.span}){heading}  score {hit.score:.4f}\n   {c.text[:300].replace(chr(10), ' ')}"
            )
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    import json

    import genloom as gl

    index = gl.Index(args.index, embedder=args.embedder)
    answer = index.ask(
        args.question,
        k=args.k,
        model=args.model,
        strict=args.strict,
        api_key=args.model_key,
        model_name=args.model_name,
        max_new_tokens=args.max_new_tokens,
    )
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
        return 0
    print(answer.text)
    for c in answer.citations:
        print(f"[{c.n}] {c.path} ({c.span}){' doc ' + c.doc_id if c.doc_id != c.path else ''}")
    for sentence in answer.flagged:
        print(f"flagged: {sentence.text!r}: {sentence.reason}")
    return 0


def _add_generation_flags(p: argparse.ArgumentParser) -> None:
    """Every `GenerationConfig` option as a flag (see docs/generation.md)."""
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate per prompt")
    p.add_argument(
        "--temperature", type=float, default=None, help="0 means greedy (default 1.0, as in the API; 0 with beams)"
    )
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: keep this much probability mass")
    p.add_argument("--min-p", type=float, default=None, help="drop tokens below min_p × the top probability")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeating tokens")
    p.add_argument("--frequency-penalty", type=float, default=0.0, help="subtracted per earlier occurrence")
    p.add_argument("--presence-penalty", type=float, default=0.0, help="subtracted once if a token occurred")
    p.add_argument("--logit-bias", action="append", default=[], metavar="ID=BIAS", help="add BIAS to token ID's logit")
    p.add_argument("--ban", action="append", type=int, default=[], metavar="ID", help="never generate token ID")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="end at TEXT (not printed); repeatable")
    p.add_argument("--num-beams", type=int, default=1, help="> 1: beam search (deterministic; no sampling flags)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam score = log p / length ** this")
    p.add_argument("--early-stopping", action="store_true", help="beam search ends when num_beams hypotheses end")
    p.add_argument(
        "--logprobs",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="N",
        help="print each token's log-probability and N alternatives",
    )
    p.add_argument("--truncate", action="store_true", help="keep the end of a prompt longer than the context")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the decode step (10-30 s once; faster small models)"
    )
    p.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    p.add_argument("--watermark", action="store_true", help="mark the output with the run's watermark (detect)")
    p.add_argument(
        "--block-verbatim",
        type=int,
        default=0,
        metavar="CHARS",
        help="text: never copy this many characters verbatim from the training text (e.g. 50)",
    )
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genloom", description="Build, train, sample and evaluate generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument("family", help="model family (see `genloom families`)")
    p.add_argument(
        "--data",
        help="bundled dataset (tinyshakespeare; images: mnist, fashion-mnist, digits; pairs: tatoeba-eng-fra), a file or a directory",
    )
    p.add_argument("--preset", help="named config of the family (e.g. debug, nanogpt-cpu)")
    p.add_argument("--config", help="TOML file with [model], [data] and [train] sections")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one field")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--encoding-errors", choices=["strict", "replace"], help="what to do with undecodable bytes")
    p.add_argument("--glob", help="files to read from a --data directory (default **/*.txt)")
    p.add_argument("--jsonl-field", help="field holding the text in a .jsonl file (default text)")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("sample", help="generate text from a run (or a Hugging Face GPT-2/Llama directory)")
    p.add_argument("run", help="run directory, or a Hugging Face model directory")
    p.add_argument("--prompt", default="", help="text to continue (empty: start of a document; \\n is a newline)")
    p.add_argument(
        "--suffix", help="code after the gap: fill in the middle between --prompt and it (FIM runs, docs/code.md)"
    )
    p.add_argument("--prompts-file", help="a file with one prompt per line, generated as one batch; prints JSON lines")
    p.add_argument("--stream", action="store_true", help="print the text as it is generated")
    _add_generation_flags(p)
    p.add_argument("--n", type=int, default=16, help="images: how many to sample")
    p.add_argument("--label", default=None, help="images: class (name or number) of a class-conditional run")
    p.add_argument("--steps", type=int, default=None, help="images (diffusion): sampling steps")
    p.add_argument("--guidance-scale", type=float, default=None, help="images (diffusion): guidance w")
    p.add_argument("--where", default=None, help="tables: keep rows meeting COLUMN=VALUE[,COLUMN=VALUE...]")
    p.add_argument("--out", default=None, help="file to write (images: a PNG grid, default RUN/samples/sample.png)")
    p.add_argument("--json-schema", default=None, metavar="JSON|FILE", help="text: output JSON valid under this schema")
    p.add_argument("--regex", default=None, help="text: output matching this regular expression")
    p.add_argument("--choice", action="append", default=None, metavar="TEXT", help="text: output one of these (repeat)")
    p.add_argument(
        "--quantize", choices=["int8", "int4"], default=None, help="text: 8- or 4-bit weights, faster decoding on CPU"
    )
    p.set_defaults(handler=_cmd_sample)

    p = sub.add_parser("agent", help="a model with tools works on a task: call, run, observe (docs/tools.md)")
    p.add_argument("run", help="run directory, model file, or the http(s) URL of an OpenAI-compatible endpoint")
    p.add_argument("task", help="what to do, e.g. 'What is 17 * 23?'")
    p.add_argument("--tool", action="append", default=[], metavar="NAME", help="calculator, datetime, files (repeat)")
    p.add_argument("--folder", default=None, help="the folder the files tool may read")
    p.add_argument("--max-steps", type=int, default=8, help="model turns before giving up")
    p.add_argument("--time-budget", type=float, default=120.0, help="seconds for the whole task")
    p.add_argument("--tool-timeout", type=float, default=10.0, help="seconds one tool call may take")
    p.add_argument("--max-new-tokens", type=int, default=256, help="tokens per model turn")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--model", default=None, help="endpoint: the model id (default: the first it lists)")
    p.add_argument("--api-key", default=None, help="endpoint: its API key")
    p.add_argument("--trace", action="store_true", help="print every model turn and tool call")
    p.set_defaults(handler=_cmd_agent)

    p = sub.add_parser("chat", help="interactive REPL with streaming output (the run's chat template, if tuned)")
    p.add_argument("run", help="run directory, or a Hugging Face model directory")
    p.add_argument("--system", default="", help="a system message that opens the conversation")
    _add_generation_flags(p)
    p.add_argument(
        "--quantize", choices=["int8", "int4"], default=None, help="text: 8- or 4-bit weights, faster decoding on CPU"
    )
    p.set_defaults(handler=_cmd_chat)

    p = sub.add_parser(
        "export",
        help="write a run in another format (hf: a GPT-2/GPT-NeoX/Llama/BERT directory transformers loads; peft: LoRA adapters)",
    )
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--format", choices=["hf", "peft"], default="hf", help="peft: a tune lora run's adapter for transformers + peft"
    )
    p.add_argument("--out", required=True, help="directory to write (must not exist or be empty)")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("eval", help="a run's held-out figures, or a named evaluation: eval memorization|bias RUN")
    p.add_argument("first", metavar="PROBE|RUN", help="a run directory, or an evaluation's name (memorization, bias)")
    p.add_argument("run", nargs="?", default=None, metavar="RUN", help="the run, after an evaluation's name")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.add_argument("--n-samples", type=int, default=500, help="images: samples for FID/KID and accuracy")
    p.add_argument("--prompts", type=int, default=None, help="memorization: training prefixes (default 1000)")
    p.add_argument("--prefix-chars", type=int, default=None, help="memorization: characters per prefix (64)")
    p.add_argument("--min-chars", type=int, default=None, help="memorization: a verbatim copy's length (50)")
    p.add_argument("--new-tokens", type=int, default=None, help="memorization: tokens generated per prefix (64)")
    p.add_argument("--block-verbatim", type=int, default=None, metavar="CHARS", help="memorization: guard on")
    p.add_argument("--seed", type=int, default=None, help="memorization: which prefixes are drawn (0)")
    p.add_argument(
        "--humaneval",
        choices=["completion", "single-line", "multi-line", "random-span"],
        help="code runs: HumanEval pass@k by running the samples in a sandbox (docs/code.md)",
    )
    p.add_argument(
        "--limit", type=int, help="--humaneval: only the first N problems; bias: N pairs spread over the set"
    )
    p.add_argument("--every", type=int, help="--humaneval: every Nth problem of the set (a spread-out subset)")
    p.add_argument(
        "--samples", type=int, help="--humaneval: samples per problem (default 1, greedy); pass@k for k <= it"
    )
    p.add_argument(
        "--temperature", type=float, help="--humaneval: sampling temperature (default 0 for 1 sample, else 0.8)"
    )
    p.add_argument(
        "--prefix-only", action="store_true", help="--humaneval/--middle-lines: continue the prefix, no suffix in view"
    )
    p.add_argument("--middle-lines", type=int, help="code runs: exact match of N held-out lines of validation files")
    p.add_argument("--out", help="--humaneval: the per-problem JSONL file (default RUN/samples/humaneval-SET.jsonl)")
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("detect", help="does a text or image carry a run's watermark? (z-score / bits, p-value)")
    p.add_argument("run", help="the run whose key marked it")
    p.add_argument("file", help="a UTF-8 text file (text runs) or an image or sample grid (image runs)")
    p.add_argument("--gamma", type=float, default=0.25, help="text: the green share the text was generated with")
    p.add_argument("--threshold", type=float, default=4.0, help="text: z above which a text counts as marked")
    p.add_argument("--json", action="store_true", help="all figures as one JSON object")
    p.set_defaults(handler=_cmd_detect)

    p = sub.add_parser("fill-mask", help="the most probable fillers of each [MASK] in a text (masked LMs)")
    p.add_argument("run", help="run directory of a bert run, or a local Hugging Face BERT directory")
    p.add_argument("text", help='text with one or more [MASK] tokens, e.g. "To be or not to [MASK]"')
    p.add_argument("--top-k", type=int, default=5, help="fillers to show per [MASK]")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_fill_mask)

    p = sub.add_parser("translate", help="translate text with a seq2seq run (greedy, beam search or sampling)")
    p.add_argument("run", help="run directory of a seq2seq run")
    p.add_argument("text", nargs="?", default=None, help="the sentence to translate")
    p.add_argument("--file", default=None, help="a file with one sentence per line; prints one translation per line")
    _add_generation_flags(p)
    p.set_defaults(handler=_cmd_translate, max_new_tokens=None)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API and web playground for text and image runs")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories; each one's model id is its directory name")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1/ routes")
    p.add_argument("--max-batch", type=int, default=16, help="requests decoded together per model")
    p.add_argument("--max-queue", type=int, default=64, help="waiting requests before answering 429")
    p.add_argument("--no-batching", action="store_true", help="decode one request at a time (a baseline)")
    p.add_argument("--index", action="append", default=[], metavar="NAME=DIR", help="serve a document index")
    p.add_argument("--index-key", action="append", default=[], metavar="NAME=KEY", help="bind index NAME to KEY")
    p.add_argument(
        "--quantize", choices=["int8", "int4"], default=None, help="text: 8- or 4-bit weights, faster decoding on CPU"
    )
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("tune", help="fine-tune a run: sft, lora, reward, ppo, dpo (docs/fine-tuning.md)")
    p.add_argument("method", choices=["sft", "lora", "reward", "ppo", "dpo"], help="fine-tuning method")
    p.add_argument("run", help="the base run directory")
    p.add_argument("--data", required=True, help="JSONL: prompt/response or messages (sft), prompt/chosen/rejected")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one field (train.lr=1e-4)")
    p.add_argument("--reward", help="ppo: a reward-model run, or ends-with-question, positive-words, shorter")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters instead of every weight")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.set_defaults(handler=_cmd_tune)

    p = sub.add_parser("compare", help="train several families on the same data and budget; one report")
    p.add_argument("--data", required=True, help="the dataset every model trains on (as for train)")
    p.add_argument("--families", default=None, help="comma-separated families, e.g. vae,gan,diffusion,flow,pixelcnn")
    p.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="FAMILY:KEY=VALUE,...",
        help="configurations to compare, e.g. 'gpt:preset=nanogpt-cpu' 'gpt:preset=nanogpt-cpu,model.pos=alibi'",
    )
    p.add_argument("--budget", default="5m", help="per model: wall-clock (90s, 5m, 1h) or steps (2000steps)")
    p.add_argument("--preset", default=None, help="preset for every family (default: each one's first non-debug)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override for every run")
    p.add_argument("--seed", type=int, default=1337, help="training seed of every run (and of the previews)")
    p.add_argument("--rounds", type=int, default=5, help="timed sampling rounds per model (median reported)")
    p.add_argument("--out", required=True, help="directory for the runs and report.html/report.json")
    p.add_argument("--resume", action="store_true", help="continue an interrupted compare; finished runs are kept")
    p.add_argument("--overwrite", action="store_true", help="replace an existing compare in --out")
    p.set_defaults(handler=_cmd_compare)

    p = sub.add_parser("index", help="index a folder of documents for search and answers (or update the index)")
    p.add_argument("docs", help="folder (or file) of .txt .md .html .pdf .docx .jsonl documents")
    p.add_argument("--out", required=True, help="index directory to write or update in place")
    p.add_argument("--embedder", default=None, help="bert run or HF BERT directory for dense/hybrid search")
    p.add_argument("--chunk-tokens", type=int, default=None, help="most words per chunk (default 200)")
    p.add_argument("--overlap", type=int, default=None, help="words a chunk repeats from the previous (default 40)")
    p.add_argument("--max-file-mb", type=float, default=None, help="skip larger files (default 50)")
    p.add_argument("--overwrite", action="store_true", help="rebuild from scratch (other settings or embedder)")
    p.add_argument(
        "--scrub-pii",
        default=None,
        metavar="KINDS",
        help="replace personal data before indexing: true, or a list (email,phone,iban,card,ssn,ip,url)",
    )
    p.set_defaults(handler=_cmd_index)

    p = sub.add_parser("search", help="search an index: hits with path, span, score and text")
    p.add_argument("index", help="index directory (genloom index)")
    p.add_argument("query", nargs="?", default=None, help="what to look for")
    p.add_argument("--k", type=int, default=10, help="hits to show")
    p.add_argument("--mode", choices=["hybrid", "bm25", "dense"], default=None, help="default: hybrid with vectors")
    p.add_argument("--json", action="store_true", help="one JSON object per hit")
    p.add_argument("--queries", default=None, help="JSONL of {id, text}: one JSON line of hits per query")
    p.add_argument("--one-per-doc", action="store_true", help="keep each document's best chunk only")
    p.add_argument("--embedder", default=None, help="the model the index was built with (default: the recorded one)")
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser("ask", help="answer a question from an index, with [n] citations")
    p.add_argument("index", help="index directory (genloom index)")
    p.add_argument("question", help="the question")
    p.add_argument("--model", default=None, help="run, GGUF/HF model or http://host:port/v1 (default: extractive)")
    p.add_argument("--model-key", default=None, help="API key of the --model endpoint")
    p.add_argument("--model-name", default=None, help="model id at the --model endpoint (default: its first)")
    p.add_argument("--k", type=int, default=5, help="chunks to retrieve")
    p.add_argument("--strict", action="store_true", help="drop sentences the sources do not support")
    p.add_argument("--max-new-tokens", type=int, default=200, help="longest generated answer (with --model)")
    p.add_argument("--json", action="store_true", help="the whole answer as JSON")
    p.add_argument("--embedder", default=None, help="the model the index was built with (default: the recorded one)")
    p.set_defaults(handler=_cmd_ask)

    p = sub.add_parser("families", help="list model families and what each is for")
    p.set_defaults(handler=_cmd_families)

    p = sub.add_parser("demo", help="train a small Shakespeare GPT (~2 min), sample it, write a report")
    p.add_argument("--out", default="runs/demo", help="run directory for the demo")
    p.add_argument(
        "--max-iters", type=int, default=None, help="train fewer steps than the preset's 2000 (quicker, worse)"
    )
    p.set_defaults(handler=_cmd_demo)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train,
    "sample": _cmd_sample,
    "chat": _cmd_chat,
    "export": _cmd_export,
    "eval": _cmd_eval,
    "detect": _cmd_detect,
    "families": _cmd_families,
    "compare": _cmd_compare,
    "demo": _cmd_demo,
    "fill-mask": _cmd_fill_mask,
    "translate": _cmd_translate,
    "serve": _cmd_serve,
    "tune": _cmd_tune,
    "index": _cmd_index,
    "search": _cmd_search,
    "ask": _cmd_ask,
    "agent": _cmd_agent,
}


def main(argv: list[str] | None = None) -> int:
    from genloom.errors import UserError

    args: Any = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as e:
        print(f"genloom: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # the place a file goes is full, read-only, ... (genloom.errors.WRITE_ERRNOS)
        from genloom.errors import WRITE_ERRNOS

        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"genloom: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("genloom: error: out of memory; make the model, batch or data smaller", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("genloom: interrupted", file=sys.stderr)
        return 130
