"""Table runs (copula, tvae, ctgan, tabddpm): read and split the table, fit its schema, train, sample rows
to CSV or Parquet (with `--where` conditions), and the report: quality, utility and privacy.

The run directory is the usual one plus `table.json`, the fitted schema (column kinds, bounds, decimals,
categories, quantile functions, Gaussian modes), which every family needs to turn its numbers back into
rows. A family with a `loss` trains through the shared Trainer on `TableData` batches; the copula has
no gradient to follow, so its closed-form `fit` runs once here and the result is saved as weights the
same way (model.safetensors, best.safetensors at step 0), so load, sample, eval, serve and compare treat
it like any run.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from genloom import run as rundir
from genloom.api.modality import Log, Modality, Sampled, timed_rates
from genloom.api.runs import (
    RunConfig,
    end_summary,
    machine_info,
    read_run_config,
    read_summary,
    saved_stamp,
    start_run,
    write_summary,
)
from genloom.config import to_dict
from genloom.data.tables import BUNDLED_TABLES, TableData, TableSchema, TableSplits, load_table, write_table
from genloom.errors import UserError
from genloom.evaluate import plot_loss_curve, write_card
from genloom.evaluate.tables import privacy, quality, report_html, row_keys, utility
from genloom.models import Family, get_family
from genloom.train import Trainer, TrainResult

SCHEMA = "table.json"  # the fitted schema of a table run
REPORT = "report.html"  # written by `genloom eval`
MAX_REJECTION_ROUNDS = 50  # --where: rounds of sampling before a condition is called too rare


@dataclass
class TablePipeline:
    """A table read, split and described, and its fingerprint (checked on resume and eval)."""

    splits: TableSplits
    schema: TableSchema
    stamp: dict[str, str]


def prepare_table(rc: RunConfig, fit: bool = True) -> TablePipeline:
    """Read, check and split `rc.data`, and fit the schema on its train rows (`fit=False`: only the
    kinds, for evaluation, which uses the run's own schema)."""
    splits = load_table(rc.data)
    modes = fit and getattr(get_family(rc.family).model, "encoding", "") == "modes"
    schema = TableSchema.fit(splits.train, splits.kinds, rc.data, splits.target, modes=modes)
    h = hashlib.sha256()
    for part in (splits.train, splits.holdout):
        h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return TablePipeline(splits, schema, {"table": h.hexdigest()[:16]})


def read_schema(run_dir: Path) -> TableSchema:
    path = run_dir / SCHEMA
    if not path.exists():
        raise UserError(f"{run_dir}: no {SCHEMA} (not a finished table run)")
    return TableSchema.from_json(path.read_text())


def build_model(family: Family, rc: RunConfig, schema: TableSchema) -> nn.Module:
    """The family's model for a table of this schema (a bad config: one line naming the field)."""
    try:
        return family.model(rc.model, schema)
    except ValueError as e:
        raise UserError(f"model: {e}") from None


def train_table(fam: Family, rc: RunConfig, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
    pipe = prepare_table(rc)  # every input is checked before the run directory is touched
    schema = pipe.schema
    if resume:
        if saved_stamp(out).get("table") != pipe.stamp["table"]:
            raise UserError(f"--resume {out}: the table differs from the one this run was trained on")
        schema = read_schema(out)
    torch.manual_seed(rc.train.seed)  # initialization is part of the run's reproducibility
    model = build_model(fam, rc, schema)
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    closed_form = not hasattr(model, "loss")  # the copula: fitted in one pass, no optimizer
    encoding = str(model.encoding)  # the family's row encoding: "quantile" or "modes"
    data = TableData(pipe.splits, schema, encoding, conditional=getattr(model, "conditional_batches", False))
    trainer = None if closed_form else Trainer(model, rc.train, data, out, log=log)
    start_run(out, rc, dict(pipe.stamp), resume, trainer)
    if not resume:
        rundir.atomic_write_text(out / SCHEMA, schema.to_json())
    splits = pipe.splits
    stats: dict[str, Any] = {
        "rows": len(splits.frame),
        "train_rows": len(splits.train),
        "holdout_rows": len(splits.holdout),
        "columns": ", ".join(f"{c.name} ({c.kind})" for c in schema.columns),
        "target": schema.target,
        "notes": "; ".join(splits.notes) or "none",
    }
    info = {"parameters": sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())}
    if trainer is None:  # closed-form fit (the copula): one pass, saved as a step-0 checkpoint
        t0 = time.perf_counter()
        model.fit(*data.tensors["train"], generator=torch.Generator().manual_seed(rc.train.seed))  # type: ignore[operator]
        elapsed = time.perf_counter() - t0
        with rundir.writer_lock(out):  # as the Trainer does for its checkpoints: one writer at a time
            rundir.save_weights(model, out / rundir.WEIGHTS, 0)
            rundir.save_weights(model, out / rundir.BEST, 0)
        result = TrainResult(0, None, None, None, None, None, 0.0, elapsed)
        summary = read_summary(out)
        summary.update(data=stats, model=info)
        summary["training"] = {"fit": "closed form, one pass", "train_seconds_total": elapsed, **machine_info()}
    else:
        result = trainer.fit(resume=resume)
        summary = end_summary(out, stats, info, result, trainer, "rows_per_s")
        if getattr(model, "private", False):
            summary["training"].update(dp_guarantee(rc, schema, result.step))
        plot_loss_curve(out, fam.loss)
    write_summary(out, summary)
    write_table_card(out, rc, summary)
    return result


def dp_guarantee(rc: RunConfig, schema: TableSchema, steps: int) -> dict[str, Any]:
    """The (ε, δ) of `steps` DP-SGD steps by Opacus' RDP accountant (sampling rate: batch / training rows;
    the accountant assumes Poisson sampling, the loop draws batches uniformly, a common approximation)."""
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:
        raise UserError(
            "model.dp_noise_multiplier needs Opacus for its privacy accountant: pip install opacus"
        ) from None
    accountant = RDPAccountant()
    rate = min(1.0, rc.train.batch_size / max(schema.rows, 1))
    accountant.history = [(rc.model.dp_noise_multiplier, rate, steps)]
    return {
        "dp_epsilon": float(accountant.get_epsilon(rc.model.dp_delta)),
        "dp_delta": rc.model.dp_delta,
        "dp_noise_multiplier": rc.model.dp_noise_multiplier,
        "dp_max_grad_norm": rc.model.dp_max_grad_norm,
        "dp_sampling_rate": rate,
    }


class TableModel:
    """A loaded table run: draws rows as a pandas DataFrame, optionally under conditions."""

    def __init__(self, model: nn.Module, schema: TableSchema, config: RunConfig, run_dir: Path) -> None:
        self.model = model
        self.schema = schema
        self.config = config
        self.run_dir = run_dir
        self._training_keys: set[bytes] | None = None

    def conditions(self, where: str | None) -> list[tuple[int, int]]:
        """`where` ("label=1" or "a=x,b=y") as (discrete feature, code) pairs, each checked."""
        if not where or not where.strip():
            return []
        discrete = [f for f in self.schema.features if f.role != "continuous"]
        out = []
        for item in where.split(","):
            name, eq, value = item.partition("=")
            name, value = name.strip(), value.strip()
            columns = [c.name for c in self.schema.columns]
            if not eq or name not in columns:
                raise UserError(f"--where {item.strip()!r}: no column {name!r}; the columns are {', '.join(columns)}")
            spec = self.schema.spec(name)
            if not spec.discrete:
                raise UserError(
                    f"--where {item.strip()!r}: {name!r} is a {spec.kind} column with many values; "
                    "conditions take a column with few values (categorical, boolean, or a number with few values)"
                )
            matches = [i for i, c in enumerate(spec.categories) if str(c) == value or _same_number(c, value)]
            if not matches:
                shown = ", ".join(map(str, spec.categories[:10])) + (", ..." if len(spec.categories) > 10 else "")
                raise UserError(f"--where {item.strip()!r}: {value!r} is not a value of {name!r} ({shown})")
            index = next(i for i, f in enumerate(discrete) if f.column == name and f.role == "discrete")
            out.append((index, matches[0]))
        return out

    def training_keys(self) -> set[bytes]:
        """The training rows (read again from the run's data source) as keys for exact matching."""
        if self._training_keys is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the kind notes were shown at training
                pipe = prepare_table(self.config, fit=False)
            if saved_stamp(self.run_dir).get("table") not in (None, pipe.stamp["table"]):
                raise UserError(
                    f"{self.run_dir}: data.reject_copies needs the training table, and {self.config.data.source} changed"
                )
            self._training_keys = set(row_keys(pipe.splits.train, self.schema))
        return self._training_keys

    def sample(self, n: int, seed: int | None = None, where: str | None = None) -> pd.DataFrame:
        """n synthetic rows (a DataFrame in the table's column order and dtypes); `where` keeps only rows
        meeting its conditions (rejection sampling: drawn in rounds until n rows qualify)."""
        if n <= 0:
            raise UserError(f"n must be a positive number of rows, got {n}")
        conditions = self.conditions(where)
        generator = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**62))
        copies = self.training_keys() if self.config.data.reject_copies else None
        kept_cont, kept_codes, have = [], [], 0
        for _ in range(MAX_REJECTION_ROUNDS):
            want = n - have if not (conditions or copies) else max(2 * (n - have), 1000)
            continuous, codes = self.model.sample(want, generator=generator)  # type: ignore[operator]
            keep = np.ones(len(codes), dtype=bool)
            for index, code in conditions:
                keep &= codes[:, index] == code
            if copies is not None:  # data.reject_copies: drop rows identical to a training row
                keep &= np.array(
                    [k not in copies for k in row_keys(self.schema.to_frame(continuous, codes), self.schema)]
                )
            kept_cont.append(continuous[keep])
            kept_codes.append(codes[keep])
            have += int(keep.sum())
            if have >= n:
                break
        if have < n:
            raise UserError(
                f"--where {where!r}: only {have} of {n} rows met the condition (and data.reject_copies) after "
                f"{MAX_REJECTION_ROUNDS} rounds; the model rarely draws it: ask for fewer rows or a more common value"
            )
        continuous = np.concatenate(kept_cont)[:n]
        codes = np.concatenate(kept_codes)[:n]
        return self.schema.to_frame(continuous, codes)


def _same_number(category: Any, text: str) -> bool:
    try:
        return isinstance(category, int | float) and not isinstance(category, bool) and float(text) == category
    except ValueError:
        return False


def load_table_model(run_dir: Path, rc: RunConfig, checkpoint: str) -> TableModel:
    weights = {"last": rundir.WEIGHTS, "best": rundir.BEST}.get(checkpoint)
    if weights is None:
        raise UserError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    rundir.recover(run_dir)
    if rc.train.threads:  # the run's thread setting serves sampling too (one thread: tiny matrices)
        torch.set_num_threads(rc.train.threads)
    schema = read_schema(run_dir)
    model = build_model(get_family(rc.family), rc, schema)
    rundir.load_weights(model, run_dir / weights)
    model.eval()
    return TableModel(model, schema, rc, run_dir)


def evaluate_table(run_dir: Path, checkpoint: str = "last", seed: int = 0) -> dict[str, Any]:
    """Quality, utility and privacy of as many synthetic rows as the run has training rows; report.html
    in the run, and the figures in summary.json and card.md."""
    rc = read_run_config(run_dir)
    handle = load_table_model(run_dir, rc, checkpoint)
    pipe = prepare_table(rc, fit=False)
    if saved_stamp(run_dir).get("table") not in (None, pipe.stamp["table"]):
        raise UserError(f"{run_dir}: the table {rc.data.source} changed since this run was trained; cannot evaluate")
    train, holdout, schema = pipe.splits.train, pipe.splits.holdout, handle.schema
    synthetic = handle.sample(len(train), seed=seed)
    scores = quality(train, synthetic, schema)
    metrics: dict[str, Any] = {k: scores[k] for k in ("quality", "column_shapes", "column_pair_trends")}
    metrics.update(utility(train, holdout, synthetic, schema))
    metrics.update(privacy(train, holdout, synthetic, schema, seed))
    metrics["synthetic_rows"] = len(synthetic)
    page = report_html(
        f"Synthetic table report: {run_dir.name} ({rc.family})", train, synthetic, schema, scores, metrics
    )
    rundir.atomic_write_text(run_dir / REPORT, page)
    summary = read_summary(run_dir)
    summary["evaluation"] = {**metrics, "checkpoint": checkpoint, "report": REPORT}
    write_summary(run_dir, summary)
    write_table_card(run_dir, rc, summary)
    return metrics


def write_table_card(run_dir: Path, rc: RunConfig, summary: dict[str, Any]) -> None:
    source = rc.data.source
    provenance = (
        BUNDLED_TABLES[source][1] if source in BUNDLED_TABLES else f"Source: `{source}` (a file given by the user)."
    )
    sections: dict[str, dict[str, Any] | str] = {
        "Model": {"family": rc.family, **to_dict(rc.model), **summary.get("model", {})},
        "Data": provenance
        + " Identifier and free-text columns are never modelled: samples get fresh identifiers and empty text.",
        "Data statistics": summary.get("data", {}),
        "Training": summary.get("training", {}),
    }
    if "evaluation" in summary:
        sections["Evaluation"] = summary["evaluation"]
        sections["Reading the evaluation"] = (
            f"Quality is SDMetrics' (column shapes and column-pair trends, 0 to 1); utility trains a fixed "
            f"random-forest model on synthetic rows and tests it on the holdout rows, against the same model "
            f"trained on real rows; privacy counts exact copies of training rows and compares distances to the "
            f"closest record. The plots are in [{REPORT}]({REPORT}); docs/tables.md explains each number."
        )
    sections["Intended use"] = "Synthetic rows for testing and sharing; check the privacy figures before you share."
    write_card(run_dir, f"Model card: {run_dir.name}", sections)


# ---- the contract (genloom.api.modality) ----------------------------------------------------------


class TableModality(Modality):
    """Synthetic tables: CSV/Parquet rows, SDMetrics quality, TSTR utility, DCR privacy."""

    def data(self, rc: Any) -> TablePipeline:
        return prepare_table(rc)

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        return train_table(family, rc, out, resume=resume, overwrite=overwrite, log=log)

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> TableModel:
        return load_table_model(run_dir, rc, checkpoint)

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        tm: TableModel = handle
        n = int(options.get("n") or 16)
        rows = tm.sample(n, options.get("seed"), options.get("where"))
        out = out or tm.run_dir / self.sample_file
        write_table(rows, out)
        return Sampled(out, n, f"{n} rows written to {out}")

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        return evaluate_table(run_dir, checkpoint)

    def describe(self, metrics: Any) -> str:
        m = metrics
        parts = [
            f"quality {m['quality']:.4f} (column shapes {m['column_shapes']:.4f}, pair trends {m['column_pair_trends']:.4f})"
        ]
        for key in ("tstr_f1", "tstr_r2"):
            if key in m:
                name = "F1" if key.endswith("f1") else "R²"
                parts.append(f"TSTR {name} {m[key]:.4f} vs {m['tr' + key[2:]]:.4f} on real rows")
        parts.append(
            f"exact copies {m['exact_copies']:.2%} (real holdout {m['holdout_exact_copies']:.2%}), "
            f"closer to train than holdout {m['closer_to_train']:.3f}, DCR vs uniform {m['dcr_baseline_protection']:.3f}"
        )
        return "; ".join(parts) + f" — plots in {REPORT}"

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        write_table_card(run_dir, rc, summary)

    def model_card(self, handle: Any) -> dict[str, Any]:
        return {}

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        tm: TableModel = handle
        with torch.inference_mode():
            return timed_rates(lambda: len(tm.sample(1000, seed=0)), rounds), "rows/s"

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        tm: TableModel = handle
        with torch.inference_mode():
            return "text/csv", tm.sample(8, seed=seed).to_csv(index=False).encode()
