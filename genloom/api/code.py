"""Code runs' evaluations (docs/code.md): HumanEval and HumanEval-Infilling by execution, and exact match
of held-out middle lines beside a copy-the-most-similar-line baseline.

`genloom eval RUN --humaneval SET` and `gl.evaluate(run, humaneval=SET)` come here through the text
modality. The samples are generated in this process; they are run only in the sandbox
(genloom/evaluate/sandbox.py), one process each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genloom import run as rundir
from genloom.api.runs import read_summary, write_summary
from genloom.data.code import load_code_corpus
from genloom.errors import UserError
from genloom.evaluate.humaneval import (
    SETS,
    HumanEvalResult,
    evaluate_humaneval,
    first_line,
    line_exact_match,
    middle_lines,
)
from genloom.evaluate.sandbox import Limits

# stop strings of a left-to-right completion: the function body ends where the next top-level statement
# starts (Chen et al. 2021, §2.3: "\nclass", "\ndef", "\n#", "\nif", "\nprint")
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
MAX_NEW_TOKENS = {"completion": 256, "single-line": 48, "multi-line": 192, "random-span": 128}
BATCH = 8  # problems decoded together (sorted by length, so a batch pads little)


def _batched(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def humaneval_samples(
    lm: Any,
    kind: str,
    problems: list[dict[str, Any]],
    samples: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    prefix_only: bool = False,
) -> list[list[str]]:
    """`samples` answers per problem: a completion of the prompt, the middle between prefix and suffix
    (fill-in-the-middle), or, with `prefix_only`, a continuation of the prefix alone."""
    options: dict[str, Any] = {"max_new_tokens": MAX_NEW_TOKENS[kind], "temperature": temperature}
    fim = kind != "completion" and not prefix_only
    if fim:
        lm.fim_tokenizer("--humaneval")  # one clear line for a run trained without FIM
    elif kind == "completion":
        options["stop"] = COMPLETION_STOPS
    order = sorted(range(len(problems)), key=lambda i: len(problems[i]["prompt"]) + len(problems[i].get("suffix", "")))
    answers: list[list[str]] = [[] for _ in problems]
    for s in range(samples):
        seeded = {**options, "seed": seed + s}
        for batch in _batched(order, BATCH):
            prefixes = [problems[i]["prompt"] for i in batch]
            if fim:
                done = lm.complete_infill(prefixes, [problems[i]["suffix"] for i in batch], **seeded)
            else:
                done = lm.complete(prefixes, context_overflow="truncate", **seeded)
            for i, c in zip(batch, done, strict=True):
                answers[i].append(c.text)
    return answers


def evaluate_code(lm: Any, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
    """`--humaneval SET` (pass@k by execution) or `--middle-lines N` (exact match vs the copy baseline);
    the figures go into summary.json and card.md, the per-problem results into a JSONL file."""
    if lm.config is None:
        raise UserError(f"{lm.run_dir}: a pretrained model has no training data of genloom's to evaluate on")
    if options.get("middle_lines"):
        metrics = evaluate_middle_lines(lm, int(options["middle_lines"]), bool(options.get("prefix_only")))
        key = "middle-line exact match"
    else:
        metrics = run_humaneval(lm, options)
        key = f"HumanEval {metrics['humaneval']}" + (" (prefix only)" if options.get("prefix_only") else "")
    metrics["checkpoint"] = checkpoint
    summary = read_summary(lm.run_dir)
    summary.setdefault("code_evaluation", {})[key] = metrics
    write_summary(lm.run_dir, summary)
    return metrics


def run_humaneval(lm: Any, options: dict[str, Any]) -> dict[str, Any]:
    kind = str(options["humaneval"])
    if kind not in SETS:
        raise UserError(f"--humaneval: unknown set {kind!r}; choose one of {', '.join(SETS)}")
    samples = int(options.get("samples") or 1)
    if samples < 1:
        raise UserError(f"--samples: expected at least 1 sample per problem, got {samples}")
    given = options.get("temperature")
    temperature = float(given) if given is not None else (0.0 if samples == 1 else 0.8)
    prefix_only = bool(options.get("prefix_only"))

    def generate(problems: list[dict[str, Any]]) -> list[list[str]]:
        return humaneval_samples(lm, kind, problems, samples, temperature, int(options.get("seed") or 0), prefix_only)

    limits = Limits(timeout=float(options.get("timeout") or Limits.timeout))
    ks = [k for k in (1, 10, 100) if k <= samples]
    every = int(options.get("every") or 1)
    result: HumanEvalResult = evaluate_humaneval(kind, generate, options.get("limit"), ks, limits, every=every)
    out = Path(
        options.get("out") or lm.run_dir / rundir.SAMPLES / f"humaneval-{kind}{'-prefix' if prefix_only else ''}.jsonl"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    result.write_jsonl(out)
    return {
        **result.metrics,
        "every": every,
        "temperature": temperature,
        "prefix_only": prefix_only,
        "results": str(out),
    }


def evaluate_middle_lines(lm: Any, n: int, prefix_only: bool = False, seed: int = 0) -> dict[str, Any]:
    """Exact match of `n` held-out lines of the validation files (files the model never saw), each filled in
    with the code before and after it in view (or, `prefix_only`, continued from the code before it), beside
    the baseline that copies the line of the same file whose neighbours are most like the gap's."""
    if not lm.config.data.code:
        raise UserError(f"--middle-lines: {lm.run_dir} was not trained on a source tree (data.code=false)")
    corpus = load_code_corpus(lm.config.data)
    picked = middle_lines(corpus.val_paths, corpus.val, n, seed)
    if not picked:
        raise UserError(f"--middle-lines: the validation files of {lm.run_dir} have no line to hold out")
    if not prefix_only:
        lm.fim_tokenizer("--middle-lines")
    predicted: list[str] = []
    for batch in _batched(picked, BATCH):
        prefixes = [m.prefix for m in batch]
        if prefix_only:
            done = lm.complete(prefixes, max_new_tokens=48, temperature=0.0, context_overflow="truncate")
        else:
            done = lm.complete_infill(prefixes, [m.suffix for m in batch], max_new_tokens=48, temperature=0.0)
        predicted.extend(first_line(c.text) for c in done)
    model_hits = sum(line_exact_match(p, m.line) for p, m in zip(predicted, picked, strict=True))
    baseline_hits = sum(line_exact_match(m.baseline, m.line) for m in picked)
    return {
        "middle_lines": len(picked),
        "files": len({m.path for m in picked}),
        "exact_match": model_hits / len(picked),
        "baseline_exact_match": baseline_hits / len(picked),
        "prefix_only": prefix_only,
    }


def describe_code(metrics: dict[str, Any]) -> str:
    """`genloom eval`'s line for a code evaluation."""
    if "middle_lines" in metrics:
        return (
            f"held-out middle lines: exact match {metrics['exact_match']:.3f} (copy-the-most-similar-line baseline "
            f"{metrics['baseline_exact_match']:.3f}) over {metrics['middle_lines']} lines of {metrics['files']} files"
        )
    passes = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("pass@"))
    how = "greedy" if metrics["temperature"] == 0 else f"temperature {metrics['temperature']}"
    return (
        f"HumanEval {metrics['humaneval']}{' (prefix only)' if metrics['prefix_only'] else ''}: {passes} over "
        f"{metrics['problems']} problems ({metrics['samples_per_problem']} sample(s) each, {how}); per-problem "
        f"results in {metrics['results']}"
    )
