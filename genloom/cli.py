"""The `genloom` command: argument parsing mapped one-to-one onto the public API, nothing else.

User mistakes (`UserError`) print one line and exit with status 2; Ctrl-C exits with 130. The API is
imported inside the handlers so that `genloom --help` answers without loading torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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
        "temperature": args.temperature if args.temperature is not None else (0.8 if args.num_beams == 1 else 0.0),
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
    }
    if args.logprobs is not None:
        options |= {"logprobs": True, "top_logprobs": args.logprobs}
    return options


def _cmd_sample(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import genloom as gl
    from genloom.errors import UserError

    lm = gl.load(args.run, checkpoint=args.checkpoint)
    if isinstance(lm, gl.ImageModel):
        return _sample_images(lm, args)
    if isinstance(lm, gl.Translator):
        raise UserError(f"{args.run}: a seq2seq run translates rather than continues text; use `genloom translate`")
    if not isinstance(lm, gl.LanguageModel):  # a masked LM fills in, it does not continue text
        raise UserError(f"{args.run}: a masked LM (bert) does not generate text; use `genloom fill-mask`")
    options = _generation_options(args)
    prompt = _unescape(args.prompt)
    if args.prompts_file is not None:  # a batch: one prompt per line in, one JSON object per line out
        try:
            lines = Path(args.prompts_file).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise UserError(f"--prompts-file {args.prompts_file}: cannot read it ({e.strerror})") from None
        except UnicodeDecodeError as e:
            raise UserError(f"--prompts-file {args.prompts_file}: not UTF-8 text (byte offset {e.start})") from None
        prompts = [_unescape(line) for line in lines if line.strip()]
        if not prompts:
            raise UserError(f"--prompts-file {args.prompts_file}: no prompts (one per line expected)")
        for p, c in zip(prompts, lm.complete(prompts, **options), strict=True):
            print(json.dumps({"prompt": p, "text": c.text, "finish_reason": c.finish_reason}, ensure_ascii=False))
        return 0
    if args.stream:
        print(prompt, end="", flush=True)
        for piece in lm.stream(prompt, **options):
            print(piece, end="", flush=True)
        print()
        return 0
    (completion,) = lm.complete(prompt, **options)
    print(prompt + completion.text)
    if completion.logprobs is not None:
        print("--- logprobs (token, log p, alternatives) ---")
        for t in completion.logprobs:
            alternatives = "  ".join(f"{alt!r} {lp:.3f}" for _, alt, lp in t.top)
            print(f"{t.text!r:>16} {t.logprob:8.3f}   {alternatives}")
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    import genloom as gl

    lm = gl.load(args.run, checkpoint=args.checkpoint)
    if not isinstance(lm, gl.LanguageModel):
        raise gl.UserError(f"{args.run}: chat needs a text-generating run (gpt), not {type(lm).__name__}")
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


def _sample_images(handle: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    out = args.out or str(Path(args.run) / "samples" / "sample.png")
    handle.sample(args.n, args.label, args.seed, args.steps, args.guidance_scale, args.temperature, out=out)
    print(f"{args.n} samples written to {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import genloom as gl

    if isinstance(gl.load(args.run, checkpoint=args.checkpoint), gl.ImageModel):
        m = gl.evaluate_images(args.run, checkpoint=args.checkpoint, n_samples=args.n_samples)
        print(", ".join(f"{k} {v:.4g}" for k, v in m.items()))
        return 0
    m = gl.evaluate(args.run, checkpoint=args.checkpoint)
    if "bleu" in m:  # a seq2seq run
        print(
            f"BLEU {m['bleu']:.2f}, chrF {m['chrf']:.2f} over {m['test_sentences']:,} test sentences; "
            f"test loss {m['test_loss']:.4f} nats/token ({m['bleu_signature']})"
        )
        return 0
    if "val_masked_accuracy" in m:  # a masked LM
        print(
            f"masked-token accuracy {m['val_masked_accuracy']:.4f}, loss {m['val_masked_loss']:.4f} nats "
            f"over {m['val_masked_targets']:,} masked tokens of the validation split"
        )
        return 0
    print(
        f"val loss {m['val_loss']:.4f} nats/token, perplexity {m['val_perplexity']:.3f} over {m['val_tokens']:,} tokens"
    )
    return 0


def _cmd_fill_mask(args: argparse.Namespace) -> int:
    import genloom as gl

    lm = gl.load(args.run, checkpoint=args.checkpoint)
    if not isinstance(lm, gl.MaskedLanguageModel):
        raise gl.UserError(f"{args.run}: fill-mask needs a masked LM (a bert run or a Hugging Face BERT directory)")
    for n, fillers in enumerate(lm.fill_mask(args.text, args.top_k), start=1):
        print(f"[MASK] #{n}:")
        for token, prob in fillers:
            print(f"  {prob:7.4f}  {token}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import genloom as gl

    tr = gl.load(args.run, checkpoint=args.checkpoint)
    if not isinstance(tr, gl.Translator):
        raise gl.UserError(f"{args.run}: translate needs a seq2seq run (genloom train seq2seq ...)")
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

    for row in gl.families():
        print(f"{row['name']:<10} {row['modality']:<6} {row['use_for']}\n{'':<17} presets: {row['presets']}")
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


def _cmd_serve(args: argparse.Namespace) -> int:
    from genloom.serve import serve

    max_batch = 1 if args.no_batching else args.max_batch
    serve(
        args.runs,
        args.host,
        args.port,
        args.api_key,
        max_batch,
        args.max_queue,
        log=lambda line: print(line, flush=True),
    )
    return 0


def _add_generation_flags(p: argparse.ArgumentParser) -> None:
    """Every `GenerationConfig` option as a flag (see docs/generation.md)."""
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate per prompt")
    p.add_argument("--temperature", type=float, default=None, help="0 means greedy (default 0.8; 0 with beams)")
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
    p.add_argument("--prompts-file", help="a file with one prompt per line, generated as one batch; prints JSON lines")
    p.add_argument("--stream", action="store_true", help="print the text as it is generated")
    _add_generation_flags(p)
    p.add_argument("--n", type=int, default=16, help="images: how many to sample")
    p.add_argument("--label", type=int, default=None, help="images: class of a class-conditional run")
    p.add_argument("--steps", type=int, default=None, help="images (diffusion): sampling steps")
    p.add_argument("--guidance-scale", type=float, default=None, help="images (diffusion): guidance w")
    p.add_argument("--out", default=None, help="images: PNG grid to write (default RUN/samples/sample.png)")
    p.set_defaults(handler=_cmd_sample)

    p = sub.add_parser("chat", help="interactive REPL with streaming output (the run's chat template, if tuned)")
    p.add_argument("run", help="run directory, or a Hugging Face model directory")
    p.add_argument("--system", default="", help="a system message that opens the conversation")
    _add_generation_flags(p)
    p.set_defaults(handler=_cmd_chat)

    p = sub.add_parser(
        "export", help="write a run in another format (hf: GPT-2/Llama/BERT directories transformers loads)"
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--format", choices=["hf"], default="hf")
    p.add_argument("--out", required=True, help="directory to write (must not exist or be empty)")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("eval", help="exact validation loss and perplexity of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.add_argument("--n-samples", type=int, default=500, help="images: samples for FID/KID and accuracy")
    p.set_defaults(handler=_cmd_eval)

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
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories; each one's model id is its directory name")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1/ routes")
    p.add_argument("--max-batch", type=int, default=16, help="requests decoded together per model")
    p.add_argument("--max-queue", type=int, default=64, help="waiting requests before answering 429")
    p.add_argument("--no-batching", action="store_true", help="decode one request at a time (a baseline)")
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
    "families": _cmd_families,
    "demo": _cmd_demo,
    "fill-mask": _cmd_fill_mask,
    "translate": _cmd_translate,
    "serve": _cmd_serve,
    "tune": _cmd_tune,
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
