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

Two rules keep a run safe from its readers and from careless flags (docs/architecture.md, "Run markers
and the writer lock"): `config.toml` carries the marker `genloom_run = RUN_FORMAT`, and `--overwrite`
deletes only a directory with that marker and nothing a run does not make; the one process that writes
a run holds an exclusive `flock` on `writer.lock`, and only that process recovers (rolls forward or
deletes) temp files, so a reader never disturbs a live training.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model

from genloom.errors import WRITE_ERRNOS, UserError

CONFIG = "config.toml"
WEIGHTS = "model.safetensors"
BEST = "best.safetensors"
TOKENIZER = "tokenizer.json"
STATE = "state/trainer.pt"
METRICS = "metrics.jsonl"
CARD = "card.md"
SAMPLES = "samples"
LOCK = "writer.lock"  # held (flock) by the one process writing the run; holds its pid
WATERMARK_KEY = "watermark.key"  # the run's secret watermark key (docs/responsible.md); never in any output
MEMORIZATION = "memorization"  # text runs: the training text's n-gram index (block_verbatim, eval memorization)
RUN_MARKER = "genloom_run"  # the config.toml key that says "this directory is a genloom run"
RUN_FORMAT = 1  # its value: the run-directory format version
TEMP_SUFFIX = ".tmp"  # what an unfinished atomic write is called beside its file
_TMP = TEMP_SUFFIX
# every top-level name a run (training, tuning, evaluation) makes: --overwrite refuses a directory with others
RUN_FILES = frozenset(
    {
        CONFIG,
        WEIGHTS,
        BEST,
        TOKENIZER,
        "state",
        METRICS,
        CARD,
        SAMPLES,
        LOCK,
        WATERMARK_KEY,
        MEMORIZATION,
        "summary.json",
        "chat_template.json",
        "tune.toml",
        "training",
        "adapters.safetensors",
        "adapters.json",
        "reward_head.safetensors",
        "value_head.safetensors",
        "table.json",  # a table run's fitted schema
        "report.html",  # a table run's evaluation report
    }
)


def write_error(path: str | Path, e: OSError) -> UserError:
    """An OSError from writing `path` (disk full, read-only, ...) as one line naming the file."""
    return UserError(f"{path}: cannot write it ({e.strerror or e})")


@contextlib.contextmanager
def _writing(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Turn a write failure of the place (WRITE_ERRNOS) into a `UserError`, removing our temp file."""
    try:
        yield
    except OSError as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if e.errno in WRITE_ERRNOS:
            raise write_error(path, e) from None
        raise


def _file_mode() -> int:
    """The mode a plain `open(..., "w")` gives a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any], mode: int | None = None) -> None:
    """`write(binary_file)` into a temp file beside `path`, fsync, rename over `path`: readers see the old
    or the new content, never a mix, and a failed write leaves no temp file behind. `mode` sets the file's
    permissions (e.g. 0o600 for a secret, which then never exists readable by others), else the umask's."""
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + _TMP)
    with _writing(path, tmp):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is not None else 0o666)
            with os.fdopen(fd, "wb") as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:  # a failing `write` (not only the disk) leaves no temp file either
            tmp.unlink(missing_ok=True)
            raise
        _commit(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _write_safetensors_tmp(write: Callable[[str], None], path: Path) -> Path:
    """`write(tmp_path)` a safetensors file beside `path`, with the run's file mode, fsynced."""
    tmp = path.with_name(path.name + _TMP)
    with _writing(path, tmp):
        write(str(tmp))
        os.chmod(tmp, _file_mode())  # safetensors creates 0600; a run's files all get the umask's mode
        _fsync_file(tmp)
    return tmp


def _write_weights_tmp(model: torch.nn.Module, path: Path, step: int) -> Path:
    return _write_safetensors_tmp(lambda f: save_model(model, f, metadata={"step": str(step), "format": "pt"}), path)


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Save named tensors atomically as safetensors (adapters, reward and value heads of tuned runs)."""
    path = Path(path)
    tmp = _write_safetensors_tmp(lambda f: save_file(tensors, f, metadata={"format": "pt"}), path)
    with _writing(path, tmp):
        _commit(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` atomically (see `atomic_write`); `mode` as there."""
    atomic_write(path, lambda f: f.write(data), mode)


def save_weights(model: torch.nn.Module, path: str | Path, step: int) -> None:
    """Save a model's weights atomically as safetensors (shared/tied tensors are stored once)."""
    path = Path(path)
    tmp = _write_weights_tmp(model, path, step)
    with _writing(path, tmp):
        _commit(tmp, path)


def weights_step(path: str | Path) -> int | None:
    """The training step recorded in a safetensors file's metadata (None if absent)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: truncated or corrupt safetensors file ({e})") from None
    if "step" not in meta:
        return None
    step = meta["step"]
    if not (step.isascii() and step.isdigit()):
        raise UserError(f"{path}: metadata 'step' must be a non-negative integer, got {step!r}")
    return int(step)


def check_weights_shapes(path: str | Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Compare the tensor shapes in a safetensors header with the ones a config gives (`expected`,
    from a model built on the meta device), so a config that does not match its weights is refused
    before a real model is allocated (a crafted vocab_size could ask for gigabytes)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no weights file (is this a finished genloom run directory?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: truncated or corrupt safetensors file ({str(e).splitlines()[0]})") from None
    for name, shape in found.items():
        want = expected.get(name)
        if want is not None and want != shape:
            raise UserError(
                f"{path}: tensor {name!r} has shape {list(shape)}, the config gives {list(want)}; "
                "config.toml does not match these weights"
            )


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
    with _writing(state_path):
        state_path.parent.mkdir(parents=True, exist_ok=True)
    weights_tmp = _write_weights_tmp(model, run_dir / WEIGHTS, step)
    state_tmp = state_path.with_name(state_path.name + _TMP)
    with _writing(state_path, state_tmp):
        try:
            torch.save({**state, "step": step}, state_tmp)
            _fsync_file(state_tmp)
        except OSError:
            weights_tmp.unlink(missing_ok=True)  # neither half of this checkpoint stays behind
            raise
        _commit(state_tmp, state_path)  # from here on, recover() finishes the commit
    with _writing(run_dir / WEIGHTS):
        _commit(weights_tmp, run_dir / WEIGHTS)


def recover(run_dir: str | Path) -> None:
    """Finish or discard a checkpoint save that a kill interrupted; only a run's writer calls this.

    If the committed state is one step ahead of the weights and the complete temp weights for that
    step exist, roll them forward; any other temp file is an unfinished write and is removed. It takes
    the writer lock (re-entrant), so it never touches the temp files of a live training in another
    process: that is a `UserError` instead. Readers (load, sample, eval, serve) never call it.
    """
    run_dir = Path(run_dir)
    with writer_lock(run_dir):
        weights_tmp = run_dir / (WEIGHTS + _TMP)
        state_path = run_dir / STATE
        if weights_tmp.exists() and state_path.exists():
            try:
                tmp_step = weights_step(weights_tmp)
            except UserError:
                tmp_step = None
            if tmp_step is not None and tmp_step == load_state(run_dir).get("step"):
                _commit(weights_tmp, run_dir / WEIGHTS)
        temps = [*run_dir.glob("*" + _TMP), *run_dir.glob("state/*" + _TMP), *run_dir.glob(f"{MEMORIZATION}/*{_TMP}")]
        for tmp in temps:
            tmp.unlink()


def load_state(run_dir: str | Path) -> dict[str, Any]:
    """Trainer state (optimizer, RNG, step) saved by `save_checkpoint`; tensors and plain types only."""
    path = Path(run_dir) / STATE
    if not path.exists():
        raise UserError(f"{path}: no trainer state to resume from")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # a truncated or foreign file: say which and stop
        raise UserError(f"{path}: unreadable trainer state ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise UserError(f"{path}: not a genloom trainer state (expected a table with an integer 'step')")
    return state


def append_metrics(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to metrics.jsonl (flushed so a crash loses at most this line)."""
    path = Path(run_dir) / METRICS
    with _writing(path), open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete metric records; a half-written last line (from a kill) is ignored, any other line
    that is not a JSON object with an integer "step" is a `UserError` naming the line."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for lineno, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):  # the line a kill cut short
                continue
            raise UserError(f"{path}:{lineno}: not valid JSON (each line is one metrics record)") from None
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(step, int) or isinstance(step, bool):
            raise UserError(f"{path}:{lineno}: expected a JSON object with an integer 'step', got {line[:40]!r}")
        records.append(record)
    return records


def truncate_metrics(run_dir: str | Path, step: int) -> None:
    """Drop records after `step`, so a resumed run does not log the same step twice."""
    kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


def is_run(path: str | Path) -> bool:
    """Whether `path` already holds a genloom run (a config or weights file): something to resume."""
    path = Path(path)
    return (path / CONFIG).is_file() or (path / WEIGHTS).is_file()


def run_marker(path: str | Path) -> int | None:
    """The run-format version in `path/config.toml` (None: not a genloom run's config)."""
    import tomllib

    try:
        with open(Path(path) / CONFIG, "rb") as f:
            marker = tomllib.load(f).get(RUN_MARKER)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return marker if isinstance(marker, int) and not isinstance(marker, bool) else None


def marked(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config as config.toml holds it: the run marker first, then the config."""
    return {RUN_MARKER: RUN_FORMAT, **config}


def _run_made(name: str) -> bool:
    """A name a run makes, or the temp file of one (`config.toml.tmp`)."""
    return name in RUN_FILES or (name.endswith(_TMP) and name.removesuffix(_TMP) in RUN_FILES)


def _foreign_entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if not _run_made(p.name))


def _is_empty(path: Path) -> bool:
    """No entries besides a writer lock and temp files of a run: what a run killed before its first
    file was complete leaves (a kill in the middle of writing config.toml)."""
    return all(p.name == LOCK or (p.name.endswith(_TMP) and _run_made(p.name)) for p in path.iterdir())


def check_writable(out: Path) -> None:
    """`out`, or the nearest existing folder above it, must be a writable directory."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--out {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {existing} is not writable")


def check_out_dir(out: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Refuse, before anything is read or written, an `--out` that would clobber something."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    check_writable(out)
    if resume:
        if not is_run(out):
            raise UserError(f"--out {out}: no run to resume there")
    elif out.exists() and not _is_empty(out):
        if not overwrite:
            raise UserError(f"--out {out}: already exists; pass --resume to continue it or --overwrite to replace it")
        if run_marker(out) is None:
            raise UserError(
                f"--out {out}: not a genloom run; refusing to delete it (no {CONFIG} with the "
                f"'{RUN_MARKER}' marker; remove it yourself if it should go)"
            )
        foreign = _foreign_entries(out)
        if foreign:
            raise UserError(
                f"--out {out}: holds {foreign[0]!r}, which a genloom run does not make; refusing to delete it"
            )
    return out


def prepare_out_dir(out: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Make `out` ready for a run: checked again, emptied on --overwrite (all but the writer lock, which
    this process holds), created if missing."""
    out = check_out_dir(out, overwrite=overwrite, resume=resume)
    with _writing(out):
        if not resume and out.exists():
            for entry in out.iterdir():
                if entry.name == LOCK:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        out.mkdir(parents=True, exist_ok=True)
    return out


# ---- the writer lock --------------------------------------------------------------------------

_HELD: dict[str, tuple[int, int]] = {}  # run directory → (lock file descriptor, nesting depth) in this process


def _key(run_dir: Path) -> str:
    return str(run_dir.resolve())


@contextlib.contextmanager
def writer_lock(run_dir: str | Path, create: bool = True) -> Iterator[None]:
    """Hold the run's exclusive writer lock (an `flock` on `writer.lock`, with our pid in it) for the
    block; re-entrant within a process. A second writer gets a `UserError` naming the holder. The
    kernel drops the lock when the process dies, so a kill -9 never leaves a run locked. With
    `create=False` a directory that does not exist yet is not made (there is nothing to protect)."""
    run_dir = Path(run_dir)
    if not create and not run_dir.is_dir():
        yield
        return
    key = _key(run_dir)
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _HELD[key]
            _HELD[key] = (fd, depth - 1)
        return
    path = run_dir / LOCK
    with _writing(path):
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UserError(
            f"{run_dir}: another genloom process (pid {holder}) is writing this run; wait for it or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _HELD.pop(key)
        os.close(fd)  # releases the flock; the file stays (unlinking it would race the next writer)
