"""Run configuration and the run-directory bookkeeping every family shares: resolve and read
`config.toml`, the data stamps checked on resume, `summary.json`, and loading a run's weights."""

import dataclasses
import hashlib
import json
import os
import platform
import secrets
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genloom import run as rundir
from genloom.config import build, dump_toml, merge, parse_sets, read_json_object, read_toml, to_dict
from genloom.errors import UserError
from genloom.models import Family, get_family, get_preset
from genloom.tokenizers import Tokenizer
from genloom.train import TrainConfig, Trainer, TrainResult

SECTIONS = ("model", "data", "train")
RESUMABLE_CHANGES = {
    "train.max_iters",
    "train.max_time",
    "train.progress",
    "train.threads",
}  # safe to change on --resume
SUMMARY = "summary.json"  # data statistics, training and evaluation figures, read by card.md
DATA_STAMP = "state/data.json"  # fingerprints of the corpus and tokenizer, checked on --resume


@dataclass
class RunConfig:
    """A run's complete configuration: what `config.toml` holds."""

    family: str
    model: Any  # the family's Config dataclass
    data: Any  # the family's data config dataclass
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **{s: to_dict(getattr(self, s)) for s in SECTIONS}}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def build_run_config(family: Family, raw: dict[str, Any], where: str = "config") -> RunConfig:
    """Check sections and keys of a raw config dict and build the typed `RunConfig`."""
    marker = raw.get(rundir.RUN_MARKER, rundir.RUN_FORMAT)
    if not isinstance(marker, int) or isinstance(marker, bool) or marker > rundir.RUN_FORMAT:
        raise UserError(
            f"{where}: {rundir.RUN_MARKER} = {marker!r}; this genloom reads run format {rundir.RUN_FORMAT} "
            "(made by a newer genloom?)"
        )
    unknown = set(raw) - set(SECTIONS) - {"family", rundir.RUN_MARKER}
    if unknown:
        raise UserError(f"{where}: unknown section {sorted(unknown)[0]!r}; valid sections: {', '.join(SECTIONS)}")
    if raw.get("family", family.name) != family.name:
        raise UserError(f"{where}: is for family {raw['family']!r}, not {family.name!r}")
    return RunConfig(
        family=family.name,
        model=build(family.config, raw.get("model", {}), "model"),
        data=build(family.data_config, raw.get("data", {}), "data"),
        train=build(TrainConfig, raw.get("train", {}), "train"),
    )


def resolve_config(
    family: str,
    preset: str | None = None,
    config: str | Path | None = None,
    data: str | None = None,
    sets: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults (or `base`) ← preset ← config file ← data ← `--set` overrides, checked field by field."""
    fam = get_family(family)
    raw: dict[str, Any] = dict(base or {})
    if preset is not None:
        raw = merge(raw, get_preset(fam, preset))
    if config is not None:
        raw = merge(raw, read_toml(config))
    if data is not None:
        raw = merge(raw, {"data": {"source": str(data)}})
    raw = merge(raw, parse_sets(list(sets)))
    return build_run_config(fam, raw, str(config) if config else "config")


def read_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / rundir.CONFIG
    if not path.exists():
        raise UserError(f"{run_dir}: not a genloom run directory (no {rundir.CONFIG})")
    raw = read_toml(path)
    if "family" not in raw:
        raise UserError(f"{path}: no 'family' key")
    return build_run_config(get_family(raw["family"]), raw, str(path))


def fingerprint(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def resume_config(
    out: Path, family: str, preset: str | None, config: str | Path | None, data: str | None, sets: Sequence[str]
) -> RunConfig:
    """The saved config, with whatever the user gave on top; only a few fields may change."""
    saved = read_run_config(out)
    if not (out / DATA_STAMP).exists():  # start_run writes it last, before the first step
        raise UserError(
            f"--resume {out}: the run stopped before it was set up (no {DATA_STAMP}); "
            "start it again with --overwrite instead of --resume"
        )
    if saved.family != family:
        raise UserError(f"--resume {out}: that run is family {saved.family!r}, not {family!r}")
    # the preset is not applied again: it is already in the saved config, and re-applying it over the
    # saved values would undo the run's own --set choices (then refused as a change)
    fresh = resolve_config(family, None, config, data, sets, base=saved.to_dict())
    a, b = flatten(saved.to_dict()), flatten(fresh.to_dict())
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)
    changed = [k for k in changed if k != "model.vocab_size"]
    if changed:
        key = changed[0]
        raise UserError(
            f"--resume {out}: config does not match the run ({key} is {a.get(key)!r} there, {b.get(key)!r} now); "
            f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume"
        )
    return dataclasses.replace(saved, train=fresh.train)


def announce(lines: Sequence[str], log: Callable[[str], None] | None) -> None:
    """Lines for the user before training starts (what was read, warnings), where the trainer logs."""
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    for line in lines:
        say(line)


def training_summary(result: TrainResult, trainer: Trainer, rate_name: str) -> dict[str, Any]:
    """The card's training figures; `rate_name` says what the loop counted (tokens or images)."""
    return {
        "steps": result.step,
        "train_loss": result.train_loss,
        "val_loss_estimate": result.val_loss,
        "best_val_loss_estimate": result.best_val_loss,
        "ms_per_iter_median": result.ms_per_iter,
        rate_name: result.tokens_per_s,
        "peak_rss_mb": result.peak_rss_mb,
        "train_seconds_total": trainer.elapsed,
        **machine_info(),
    }


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def read_summary(run_dir: Path) -> dict[str, Any]:
    return read_json_object(run_dir / SUMMARY)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    rundir.atomic_write_text(run_dir / SUMMARY, json.dumps(summary, indent=2))


def load_run_model(run_dir: Path, fam: Family, rc: RunConfig, checkpoint: str) -> nn.Module:
    """The family's model with the run's "last" or "best" weights, in eval mode (any family)."""
    weights = {"last": rundir.WEIGHTS, "best": rundir.BEST}.get(checkpoint)
    if weights is None:
        raise UserError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    model = build_for_weights(fam, rc, run_dir / weights)
    rundir.load_weights(model, run_dir / weights)
    check_finite(model, run_dir / weights)
    model.eval()
    return model


def check_finite(model: nn.Module, path: Path) -> None:
    """Refuse weights with NaN or infinite values (a diverged training): they sample garbage and evaluate
    to NaN, so sample, eval, serve and export say so instead."""
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise UserError(
                f"{path}: tensor {name!r} holds NaN or infinite values (the training diverged); "
                "try --checkpoint best, or train again with a lower train.lr"
            )


def saved_stamp(out: Path) -> dict[str, str]:
    """The data fingerprints a run recorded when it started (empty if it has none)."""
    return read_json_object(out / DATA_STAMP)


def _memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def build_model(fam: Family, cfg: Any) -> Any:  # the family's own model class
    """The family's model for `cfg`, sized on the meta device first: a model whose parameters do not fit
    in this machine's memory is a `UserError` with the numbers, not an allocation failure."""
    meta = _meta_model(fam, cfg)
    if meta is not None:
        nbytes = sum(t.numel() * t.element_size() for t in meta.state_dict().values())
        if nbytes > _memory_bytes():
            raise UserError(
                f"model: {nbytes / 1e9:,.1f} GB of weights, more than this machine's "
                f"{_memory_bytes() / 1e9:,.1f} GB of memory; make the model smaller"
            )
    try:
        return fam.model(cfg)
    except (MemoryError, RuntimeError) as e:  # RuntimeError: torch's "DefaultCPUAllocator: can't allocate"
        if isinstance(e, RuntimeError) and "alloc" not in str(e).lower():
            raise
        raise UserError(f"model: cannot allocate it ({str(e).splitlines()[0]}); make the model smaller") from None


def _meta_model(fam: Family, cfg: Any) -> nn.Module | None:
    """The model with shapes only (no memory); None for a family whose constructor needs real tensors."""
    rng = torch.get_rng_state()  # the real model's initialization must draw the same numbers either way
    try:
        with torch.device("meta"):
            return fam.model(cfg)
    except UserError:
        raise
    except Exception:  # a constructor that computes with tensors: the real build below checks instead
        return None
    finally:
        torch.set_rng_state(rng)


def build_for_weights(fam: Family, rc: RunConfig, weights: Path) -> nn.Module:
    """The model for a run's config, after the weights file's header agrees with the config's shapes."""
    meta = _meta_model(fam, rc.model)
    if meta is not None:
        rundir.check_weights_shapes(weights, {k: tuple(v.shape) for k, v in meta.state_dict().items()})
    return build_model(fam, rc.model)


def start_run(
    out: Path,
    rc: RunConfig,
    stamp: dict[str, str],
    resume: bool,
    trainer: Trainer | None,
    tokenizer: Tokenizer | None = None,
) -> None:
    """What a run writes before its first step: always its config.toml, and for a new run its tokenizer
    and data fingerprints (the tokenizer's own hash among them, checked on resume). On resume the
    checkpoint is restored first, so a resume that fails leaves config.toml as it was."""
    if resume and trainer is not None:  # None: a closed-form fit with no optimizer state (the table copula)
        trainer.restore()
    rundir.atomic_write_text(
        out / rundir.CONFIG, dump_toml(rundir.marked(rc.to_dict()), f"genloom run config ({rc.family})")
    )
    if not resume:  # config.toml first: it carries the marker that lets --overwrite clear a half-started run
        if tokenizer is not None:
            tokenizer.save(out / rundir.TOKENIZER)
            stamp["tokenizer"] = file_hash(out / rundir.TOKENIZER)
        stamp["run_id"] = uuid.uuid4().hex  # names this run: a watermark key copied from another run is refused
        write_watermark_key(out, stamp["run_id"])
        rundir.atomic_write_text(out / DATA_STAMP, json.dumps(stamp))


def write_watermark_key(run_dir: Path, run_id: str) -> None:
    """The run's secret watermark key (32 random bytes) and the id of the run it belongs to, readable by
    its owner only (docs/responsible.md)."""
    record = {"genloom_watermark_key": 1, "run_id": run_id, "key": secrets.token_hex(32)}
    rundir.atomic_write_bytes(run_dir / rundir.WATERMARK_KEY, (json.dumps(record) + "\n").encode(), mode=0o600)


def end_summary(
    out: Path, stats: dict[str, Any], model: dict[str, Any], result: TrainResult, trainer: Trainer, rate_name: str
) -> dict[str, Any]:
    """summary.json's data, model and training figures after a training run (evaluation kept)."""
    summary = read_summary(out)
    summary["data"] = stats
    summary["model"] = model
    summary["training"] = training_summary(result, trainer, rate_name)
    return summary
