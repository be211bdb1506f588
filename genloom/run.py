"""The run directory: the one place a trained model lives, and the only IO that touches it.

```
runs/<name>/
  config.toml          family + model + data + train config (complete, human-editable)
  model.safetensors    weights of the last good checkpoint
  best.safetensors     weights with the best validation loss so far
  tokenizer.json       text families (Hugging Face `tokenizers` format)
  state/trainer.pt     optimizer, RNG states, step, data position: exact resume
  metrics.jsonl        one JSON object per logged step
  samples/             text/images written during training and evaluation
  card.md              model card
```

Every write is atomic (temp file in the same directory, fsync, `os.replace`), so a kill at any moment
leaves either the old file or the new one. A checkpoint spans two files (weights and trainer state);
both carry the step, the state is committed first, and `recover()` rolls an interrupted commit forward,
so the pair on disk always belongs to one step. Weights are safetensors; trainer state is loaded with
`torch.load(weights_only=True)`. Nothing here unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from genloom.errors import UserError

CONFIG = "config.toml"
WEIGHTS = "model.safetensors"
BEST = "best.safetensors"
TOKENIZER = "tokenizer.json"
STATE = "state/trainer.pt"
METRICS = "metrics.jsonl"
CARD = "card.md"
SAMPLES = "samples"
_TMP = ".tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, final: Path) -> None:
    """Atomically move a fully written temp file over `final` and make the rename durable."""
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old or the new content, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + _TMP)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    _commit(tmp, path)


def _write_weights_tmp(model: torch.nn.Module, path: Path, step: int) -> Path:
    tmp = path.with_name(path.name + _TMP)
    save_model(model, str(tmp), metadata={"step": str(step), "format": "pt"})
    _fsync_file(tmp)
    return tmp


def save_weights(model: torch.nn.Module, path: str | Path, step: int) -> None:
    """Save a model's weights atomically as safetensors (shared/tied tensors are stored once)."""
    path = Path(path)
    _commit(_write_weights_tmp(model, path, step), path)


def weights_step(path: str | Path) -> int | None:
    """The training step recorded in a safetensors file's metadata (None if absent)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: truncated or corrupt safetensors file ({e})") from None
    return int(meta["step"]) if "step" in meta else None


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load safetensors weights into `model`, with one clear line for a missing or broken file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no weights file (is this a finished genloom run directory?)")
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: truncated or corrupt safetensors file ({str(e).splitlines()[0]})") from None
    if missing or unexpected:
        raise UserError(
            f"{path}: weights do not match the config (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )


def save_checkpoint(run_dir: str | Path, model: torch.nn.Module, state: dict[str, Any], step: int) -> None:
    """Save weights and trainer state as one step: both temp files first, then state, then weights."""
    run_dir = Path(run_dir)
    state_path = run_dir / STATE
    state_path.parent.mkdir(parents=True, exist_ok=True)
    weights_tmp = _write_weights_tmp(model, run_dir / WEIGHTS, step)
    state_tmp = state_path.with_name(state_path.name + _TMP)
    torch.save({**state, "step": step}, state_tmp)
    _fsync_file(state_tmp)
    _commit(state_tmp, state_path)  # from here on, recover() finishes the commit
    _commit(weights_tmp, run_dir / WEIGHTS)


def recover(run_dir: str | Path) -> None:
    """Finish or discard a checkpoint save that a kill interrupted.

    If the committed state is one step ahead of the weights and the complete temp weights for that
    step exist, roll them forward; any other temp file is an unfinished write and is removed.
    """
    run_dir = Path(run_dir)
    weights_tmp = run_dir / (WEIGHTS + _TMP)
    state_path = run_dir / STATE
    if weights_tmp.exists() and state_path.exists():
        try:
            tmp_step = weights_step(weights_tmp)
        except UserError:
            tmp_step = None
        if tmp_step is not None and tmp_step == load_state(run_dir).get("step"):
            _commit(weights_tmp, run_dir / WEIGHTS)
    for tmp in list(run_dir.glob("*" + _TMP)) + list(run_dir.glob("state/*" + _TMP)):
        tmp.unlink()


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """Trainer state (optimizer, RNG, step) saved by `save_checkpoint`; tensors and plain types only."""
    path = Path(run_dir) / STATE
    if not path.exists():
        raise UserError(f"{path}: no trainer state to resume from")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # a truncated or foreign file: say which and stop
        raise UserError(f"{path}: unreadable trainer state ({str(e).splitlines()[0]})") from None


def append_metrics(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to metrics.jsonl (flushed so a crash loses at most this line)."""
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete metric records; a half-written last line (from a kill) is ignored."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: str | Path, step: int) -> None:
    """Drop records after `step`, so a resumed run does not log the same step twice."""
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


def is_run(path: str | Path) -> bool:
    """Whether `path` already holds a genloom run (a config or weights file)."""
    path = Path(path)
    return (path / CONFIG).exists() or (path / WEIGHTS).exists()


def check_out_dir(out: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Refuse, before anything is read or written, an `--out` that would clobber something."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    if resume:
        if not is_run(out):
            raise UserError(f"--out {out}: no run to resume there")
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out}: already exists; pass --resume to continue it or --overwrite to replace it")
        if not is_run(out):
            raise UserError(f"--out {out}: a non-empty directory that is not a genloom run; refusing to delete it")
    return out


def prepare_out_dir(out: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Make `out` ready for a run: checked again, emptied on --overwrite, created if missing."""
    out = check_out_dir(out, overwrite=overwrite, resume=resume)
    if not resume and out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out
