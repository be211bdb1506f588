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
    if isinstance(lm, gl.ImageModel):
        return _sample_images(lm, args)
    temperature = 0.8 if args.temperature is None else args.temperature
    text = lm.generate(args.prompt, args.max_new_tokens, temperature, args.top_k, args.seed)
    print(args.prompt + text)
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
    print(
        f"val loss {m['val_loss']:.4f} nats/token, perplexity {m['val_perplexity']:.3f} over {m['val_tokens']:,} tokens"
    )
    return 0


def _cmd_families(args: argparse.Namespace) -> int:
    import genloom as gl

    for row in gl.families():
        print(f"{row['name']:<10} {row['modality']:<6} {row['use_for']}\n{'':<17} presets: {row['presets']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import genloom as gl

    print("genloom demo: training a character-level GPT on Tiny Shakespeare (about two minutes)...", flush=True)
    out = gl.demo(args.out)
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
    p.add_argument(
        "--data",
        help="bundled dataset (tinyshakespeare; images: mnist, fashion-mnist, digits), a file or a directory",
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

    p = sub.add_parser("sample", help="generate text from a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--prompt", default="", help="text to continue (empty: start of a document)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=None, help="text: 0 means greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.add_argument("--n", type=int, default=16, help="images: how many to sample")
    p.add_argument("--label", type=int, default=None, help="images: class of a class-conditional run")
    p.add_argument("--steps", type=int, default=None, help="images (diffusion): sampling steps")
    p.add_argument("--guidance-scale", type=float, default=None, help="images (diffusion): guidance w")
    p.add_argument("--out", default=None, help="images: PNG grid to write (default RUN/samples/sample.png)")
    p.set_defaults(handler=_cmd_sample)

    p = sub.add_parser("eval", help="exact validation loss and perplexity of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last")
    p.add_argument("--n-samples", type=int, default=500, help="images: samples for FID/KID and accuracy")
    p.set_defaults(handler=_cmd_eval)

    p = sub.add_parser("families", help="list model families and what each is for")
    p.set_defaults(handler=_cmd_families)

    p = sub.add_parser("demo", help="train a small Shakespeare GPT (~2 min), sample it, write a report")
    p.add_argument("--out", default="runs/demo", help="run directory for the demo")
    p.set_defaults(handler=_cmd_demo)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train,
    "sample": _cmd_sample,
    "eval": _cmd_eval,
    "families": _cmd_families,
    "demo": _cmd_demo,
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
