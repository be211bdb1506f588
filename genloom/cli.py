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


def _cmd_sample(args: argparse.Namespace) -> int:
    import genloom as gl

    lm = gl.load(args.run, checkpoint=args.checkpoint)
    if not isinstance(lm, gl.LanguageModel):  # a masked LM fills in, it does not continue text
        raise gl.UserError(f"{args.run}: a masked LM (bert) does not generate text; use `genloom fill-mask`")
    text = lm.generate(args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + text)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import genloom as gl

    m = gl.evaluate(args.run, checkpoint=args.checkpoint)
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


def _cmd_export(args: argparse.Namespace) -> int:
    import genloom as gl

    out = gl.export_hf(args.run, args.out, checkpoint=args.checkpoint)
    print(f"wrote a Hugging Face BERT directory: {out}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genloom", description="Build, train, sample and evaluate generative models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument("family", help="model family (see `genloom families`)")
    p.add_argument("--data", help="bundled dataset name (tinyshakespeare), a text file, a directory or a .jsonl file")
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

    p = sub.add_parser("sample", help="generate text from a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--prompt", default="", help="text to continue (empty: start of a document)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0 means greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_sample)

    p = sub.add_parser("eval", help="exact validation loss and perplexity of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("fill-mask", help="the most probable fillers of each [MASK] in a text (masked LMs)")
    p.add_argument("run", help="run directory of a bert run, or a local Hugging Face BERT directory")
    p.add_argument("text", help='text with one or more [MASK] tokens, e.g. "To be or not to [MASK]"')
    p.add_argument("--top-k", type=int, default=5, help="fillers to show per [MASK]")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_fill_mask)

    p = sub.add_parser("export", help="write a run in another library's format (bert → Hugging Face)")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", required=True, help="new directory to write")
    p.add_argument(
        "--format", choices=["hf"], default="hf", help="hf: config.json + model.safetensors + tokenizer.json"
    )
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("families", help="list model families and what each is for")
    p.set_defaults(handler=_cmd_families)

    p = sub.add_parser("demo", help="train a small Shakespeare GPT (~2 min), sample it, write a report")
    p.add_argument("--out", default="runs/demo", help="run directory for the demo")
    p.add_argument(
        "--max-iters", type=int, default=None, help="train fewer steps than the preset's 1500 (quicker, worse)"
    )
    p.set_defaults(handler=_cmd_demo)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train,
    "sample": _cmd_sample,
    "eval": _cmd_eval,
    "families": _cmd_families,
    "demo": _cmd_demo,
    "fill-mask": _cmd_fill_mask,
    "export": _cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    from genloom.errors import UserError

    args: Any = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as e:
        print(f"genloom: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("genloom: interrupted", file=sys.stderr)
        return 130
