"""Benchmark: genloom's table families against SDV's synthesizers (issue 23), side by side in one run, on the
same splits, scored by the same function.

For each bundled table (wine, breast_cancer, fair) and seed: genloom reads the table and keeps its 20 %
holdout aside (split seed 0 for every run, so every system sees the same training rows); each genloom
family trains with its `default` preset (`gl.train`, timed whole: reading, schema, fit, writing the run);
each SDV synthesizer (GaussianCopula, TVAE, CTGAN, defaults, with the metadata SDV detects itself) is fit
on the same training rows, written to CSV, by a separate Python that has SDV installed (`--sdv-python`;
genloom never imports SDV), timed by SDV's `fit` alone. Every system then gives as many rows as there are
training rows, and genloom.evaluate.tables scores them all: quality (SDMetrics' definition), TSTR utility
against the holdout, exact copies and the closer-to-train share.

    python bench/tables.py                                   # everything, 3 seeds (about an hour on 2 cores)
    python bench/tables.py --systems copula,sdv:GaussianCopulaSynthesizer --seeds 0,1,2
    python bench/tables.py --report                          # rewrite the RESULTS section from the cache

Each (table, system, seed) result is appended to bench/out/tables.jsonl, so the benchmark can run in
pieces; the RESULTS.md section (`tables`) is rebuilt from all of them.
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
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402

CACHE = REPO / "bench" / "out" / "tables.jsonl"
TABLES = ("wine", "breast_cancer", "fair")
GENLOOM = ("copula", "tvae", "tabddpm", "ctgan")
SDV = ("sdv:GaussianCopulaSynthesizer", "sdv:TVAESynthesizer", "sdv:CTGANSynthesizer")


def load_load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f}"


def score(table: str, synthetic: pd.DataFrame) -> dict[str, Any]:
    """The same scores for every system: quality, utility, privacy against genloom's split of `table`."""
    from genloom.api.runs import resolve_config
    from genloom.api.tables import prepare_table
    from genloom.evaluate.tables import privacy, quality, utility

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = prepare_table(resolve_config("copula", data=table), fit=True)
    train, holdout, schema = pipe.splits.train, pipe.splits.holdout, pipe.schema
    synthetic = synthetic[list(train.columns)]
    out = {k: v for k, v in quality(train, synthetic, schema).items() if isinstance(v, float)}
    out.update({k: v for k, v in utility(train, holdout, synthetic, schema).items() if isinstance(v, float)})
    out.update(privacy(train, holdout, synthetic, schema))
    return out


def run_genloom(family: str, table: str, seed: int, work: Path) -> dict[str, Any]:
    import genloom as gl

    run = work / f"{family}-{table}-{seed}"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gl.train(
            family,
            out=run,
            data=table,
            preset="default",
            sets=[f"train.seed={seed}", "train.progress=false"],
            overwrite=True,
        )
    wall = time.perf_counter() - t0
    handle = gl.load(run)
    n = json.loads((run / "summary.json").read_text())["data"]["train_rows"]
    rows = handle.sample(n, seed=seed)
    return {"train_seconds": wall, "steps": result.step, **score(table, rows)}


def run_sdv(name: str, table: str, seed: int, work: Path, python: str) -> dict[str, Any]:
    from genloom.api.runs import resolve_config
    from genloom.api.tables import prepare_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = prepare_table(resolve_config("copula", data=table), fit=False).splits
    train_csv, out_csv = work / f"{table}-train.csv", work / f"{name}-{table}-{seed}.csv"
    splits.train.to_csv(train_csv, index=False)
    synthesizer = name.split(":", 1)[1]
    proc = subprocess.run(
        [python, str(REPO / "bench" / "sdv_peer.py"), str(train_csv), str(out_csv), "--synthesizer", synthesizer,
         "--seed", str(seed), "--rows", str(len(splits.train))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{name} on {table}: {proc.stderr[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"train_seconds": info["fit_seconds"], "sdv": info["sdv"], **score(table, pd.read_csv(out_csv))}


def report() -> None:
    from genloom.api.runs import machine_info

    records = [json.loads(line) for line in CACHE.read_text().splitlines()] if CACHE.exists() else []
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        by.setdefault((r["table"], r["system"]), []).append(r)

    def mean(rows: list[dict[str, Any]], key: str) -> str:
        values = [r[key] for r in rows if key in r]
        if not values:
            return "–"
        if len(values) == 1:
            return f"{values[0]:.3f}"
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"

    lines = [
        "Command: `SDV_PYTHON=/path/to/sdv-venv/bin/python python bench/tables.py` (SDV in a venv of its own; pieces: `--systems`, `--tables`, `--seeds`; `--report` rebuilds this).",
        "Every system fits the same training rows (genloom's split, 20 % holdout, split seed 0) and gives as many",
        "rows as there are training rows; one function (genloom.evaluate.tables) scores them all. Quality: SDMetrics'",
        "definition (every column pair counts). TSTR: macro F1 of a fixed random forest on the holdout, trained on",
        "synthetic rows (real rows: `trtr`). Privacy: share of exact copies of training rows (real holdout rows:",
        "`holdout copies`), share closer to train than holdout (0.5 ideal). genloom seconds are the whole",
        "`gl.train` (read, schema, fit, write); SDV's are its `fit` alone. Mean ± sd over the seeds listed; a row",
        "with fewer than 3 seeds was cut for time (2 cores shared with three other sessions, load 5-7). SDV's",
        "GaussianCopula draws the same rows for every seed. genloom runs use the default presets (no",
        "`data.reject_copies`; docs/tables.md shows its effect on fair).",
        "",
        f"Machine: `{json.dumps(machine_info())}`; load average (1 / 5 min) when measured is given per row.",
        "",
    ]
    for table in TABLES:
        rows = [(s, by[(table, s)]) for s in (*GENLOOM, *SDV) if (table, s) in by]
        if not rows:
            continue
        lines += [f"### {table}", "", "| system | seeds | quality | shapes | pairs | TSTR | TRTR | copies | holdout copies | closer to train | seconds | load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for system, rs in rows:
            seeds = ",".join(str(r["seed"]) for r in rs)
            tstr = "tstr_f1" if "tstr_f1" in rs[0] else "tstr_r2"
            lines.append(
                f"| {system} | {seeds} | {mean(rs, 'quality')} | {mean(rs, 'column_shapes')} | {mean(rs, 'column_pair_trends')} "
                f"| {mean(rs, tstr)} | {mean(rs, 'tr' + tstr[2:])} | {mean(rs, 'exact_copies')} | {mean(rs, 'holdout_exact_copies')} "
                f"| {mean(rs, 'closer_to_train')} | {mean(rs, 'train_seconds')} | {rs[-1]['load']} |"
            )
        lines.append("")
    lines += ["### The issue's bars", "", *bars(by), ""]
    update_results("tables", "Synthetic tables vs SDV (issue 23): bench/tables.py", "\n".join(lines))


def bars(by: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """Each bar of issue 23, met or not, with the numbers (means over the seeds measured)."""

    def avg(table: str, system: str, key: str) -> float | None:
        rows = by.get((table, system), [])
        return statistics.mean(r[key] for r in rows) if rows else None

    out = []
    for table in TABLES:
        cop, sdv = avg(table, "copula", "quality"), avg(table, "sdv:GaussianCopulaSynthesizer", "quality")
        if cop is not None and sdv is not None:
            t_cop = avg(table, "copula", "train_seconds")
            t_sdv = avg(table, "sdv:GaussianCopulaSynthesizer", "train_seconds")
            faster = "faster" if (t_cop or 0) < (t_sdv or 0) else "NOT faster"
            out.append(
                f"- {table}: copula quality {cop:.3f} vs SDV GaussianCopula {sdv:.3f}: {'met' if cop >= sdv else 'NOT met'}; "
                f"fit {t_cop:.2f} s vs {t_sdv:.2f} s ({faster}; genloom's time includes reading the table and writing the run)"
            )
        ours = {s: avg(table, s, "quality") for s in GENLOOM if (table, s) in by}
        theirs = {s: avg(table, s, "quality") for s in SDV if (table, s) in by}
        if ours and theirs:
            best, peer = max(ours, key=lambda s: ours[s] or 0), max(theirs, key=lambda s: theirs[s] or 0)
            verdict = "met" if (ours[best] or 0) > (theirs[peer] or 0) else "NOT met"
            out.append(
                f"- {table}: best genloom {best} {ours[best]:.3f} vs best SDV {peer} {theirs[peer]:.3f}: {verdict}"
            )
        for s in GENLOOM:
            rows = by.get((table, s), [])
            if not rows:
                continue
            copies = max(r["exact_copies"] for r in rows)
            closer = max(r["closer_to_train"] for r in rows)
            slow = max(r["train_seconds"] for r in rows)
            line = (
                f"- {table} {s}: exact copies (max over seeds) {copies:.2%} ({'met' if copies == 0 else 'NOT met'}), "
            )
            line += f"closer to train {closer:.3f} ({'met' if closer <= 0.55 else 'NOT met'}), training {slow:.0f} s"
            line += f" ({'met' if slow <= 600 else 'NOT met'})"
            if table == "breast_cancer" and "tstr_f1" in rows[0]:
                ratio = statistics.mean(r["tstr_f1"] / r["trtr_f1"] for r in rows)
                line += f"; TSTR F1 / real {ratio:.3f} ({'met' if ratio >= 0.9 else 'NOT met'})"
            out.append(line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join((*GENLOOM, *SDV)))
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--sdv-python",
        default=os.environ.get("SDV_PYTHON"),
        help="a Python with SDV installed, in a venv of its own (default: $SDV_PYTHON)",
    )
    parser.add_argument("--report", action="store_true", help="only rebuild the RESULTS.md section")
    args = parser.parse_args()
    if not args.report and any(s.startswith("sdv:") for s in args.systems.split(",")) and not args.sdv_python:
        parser.error("the sdv: systems need --sdv-python (or $SDV_PYTHON): a Python with SDV installed")
    if not args.report:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for table in args.tables.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    for system in args.systems.split(","):
                        load = load_load()
                        if system.startswith("sdv:"):
                            result = run_sdv(system, table, seed, Path(tmp), args.sdv_python)
                        else:
                            result = run_genloom(system, table, seed, Path(tmp))
                        record = {"table": table, "system": system, "seed": seed, "load": load, **result}
                        print(json.dumps(record), flush=True)
                        with CACHE.open("a") as f:
                            f.write(json.dumps(record) + "\n")
    report()


if __name__ == "__main__":
    main()
