"""The one training loop every family shares.

A family supplies `model.loss(batch) -> (scalar, {name: tensor})` and a data object with
`get_batch(split, batch_size, generator)`; the loop does the rest: AdamW with warmup + cosine,
gradient accumulation and clipping, optional bf16 autocast and `torch.compile`, periodic evaluation
and samples, metrics.jsonl, a progress bar, atomic best/last checkpoints, exact resume and a clean
stop on Ctrl-C.

Exact resume: the model weights, the optimizer state, the global torch RNG (dropout), the data
generator (which windows come next) and the step are saved together; the learning rate is a pure
function of the step. A run stopped at step k and resumed therefore computes bit-for-bit the same
losses as an unbroken run (tests/train/test_loop.py checks this).
"""

from __future__ import annotations

import contextlib
import math
import resource
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from genloom import run as rundir
from genloom.errors import UserError
from genloom.train.config import TrainConfig
from genloom.train.optim import lr_at, make_optimizer


class BatchSource(Protocol):
    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> Any: ...


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    step: int
    train_loss: float | None
    val_loss: float | None
    best_val_loss: float | None
    ms_per_iter: float | None  # median over this session's non-evaluation steps
    tokens_per_s: float | None
    peak_rss_mb: float
    elapsed_s: float
    interrupted: bool = False
    stopped_by_time: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _autocast(cfg: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    if cfg.dtype == "bfloat16":
        return torch.autocast(device_type=torch.device(cfg.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batch_tokens(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.numel()) if isinstance(first, torch.Tensor) else 0


def _to_device(batch: Any, device: str) -> Any:
    if device == "cpu":
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch.to(device, non_blocking=True) if isinstance(batch, torch.Tensor) else batch


class _StopRequest:
    """SIGINT handler: the first Ctrl-C asks the loop to stop after the current step and save;
    a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        try:
            previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no signal handling, Ctrl-C behaves as usual
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


class Trainer:
    """Trains `model` on `data` into `run_dir`, which must already hold config.toml (and tokenizer)."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        data: BatchSource,
        run_dir: str | Path,
        *,
        sampler: Callable[[nn.Module], str] | None = None,
        log: Callable[[str], None] | None = None,
        unit: str = "tok",
    ) -> None:
        self.model = model.to(cfg.device)
        self.unit = unit  # what the progress bar counts per second: tokens ("tok"), images ("img"), ...
        self.cfg = cfg
        self.data = data
        self.run_dir = Path(run_dir)
        self.sampler = sampler
        self.log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))  # progress on stderr, results on stdout
        self.optimizer = make_optimizer(self.model, cfg)
        self.data_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.best_val_loss: float | None = None
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self._restored = False
        self._forward_backward = (
            torch.compile(self._forward_backward_eager) if cfg.compile else self._forward_backward_eager
        )

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_data": self.data_generator.get_state(),
            "best_val_loss": self.best_val_loss,
            "elapsed": self.elapsed,
        }

    def save(self) -> None:
        """Checkpoint the current step atomically (weights + state, see genloom.run)."""
        rundir.save_checkpoint(self.run_dir, self.model, self._state(), self.step)

    def restore(self) -> None:
        """Load the last checkpoint of `run_dir` for an exact resume (once; `fit(resume=True)` calls it
        unless the caller did, e.g. to check the checkpoint before it rewrites config.toml). A run killed
        before its first checkpoint starts again from step 0, exactly as a new run would."""
        if self._restored:
            return
        with rundir.writer_lock(self.run_dir):
            rundir.recover(self.run_dir)
            if not (self.run_dir / rundir.STATE).exists() and not (self.run_dir / rundir.WEIGHTS).exists():
                self.log(f"{self.run_dir}: no checkpoint yet (stopped before the first one); starting from step 0")
                rundir.truncate_metrics(self.run_dir, 0)
                torch.manual_seed(self.cfg.seed)  # as `fit` does for a new run
                self._restored = True
                return
            self._restore_checkpoint()
        self._restored = True

    def _restore_checkpoint(self) -> None:
        rundir.load_weights(self.model, self.run_dir / rundir.WEIGHTS)
        state = rundir.load_state(self.run_dir)
        weights_step = rundir.weights_step(self.run_dir / rundir.WEIGHTS)
        if weights_step != state["step"]:
            raise UserError(
                f"{self.run_dir}: weights (step {weights_step}) and trainer state (step {state['step']}) disagree"
            )
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_torch"])
            self.data_generator.set_state(state["rng_data"])
            self.best_val_loss = state["best_val_loss"]
            self.elapsed = float(state["elapsed"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise UserError(
                f"{self.run_dir / rundir.STATE}: does not fit this model and config ({type(e).__name__}: {e})"
            ) from None
        self.step = int(state["step"])
        rundir.truncate_metrics(self.run_dir, self.step)  # rows after the checkpoint are logged again

    # -- one step ----------------------------------------------------------------------------
    def _forward_backward_eager(self, batch: Any) -> torch.Tensor:
        with _autocast(self.cfg):
            loss, _ = self.model.loss(batch)  # type: ignore[operator]
        (loss / self.cfg.grad_accum).backward()
        return loss.detach()

    def train_step(self) -> tuple[float, int]:
        """One optimizer step over `grad_accum` micro-batches; returns (mean loss, tokens seen)."""
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        own_step = getattr(self.model, "train_step", None)
        if own_step is not None:  # the seam for families that own their update (GAN): see below
            return self._own_step(own_step)
        total = torch.zeros(())
        tokens = 0
        for _ in range(cfg.grad_accum):
            batch = _to_device(self.data.get_batch("train", cfg.batch_size, self.data_generator), cfg.device)
            tokens += _batch_tokens(batch)
            total += self._forward_backward(batch).float().cpu()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        after = getattr(self.model, "after_optimizer_step", None)
        if after is not None:  # a family that tracks its weights between steps (diffusion's EMA)
            after()
        self.step += 1
        return float(total) / cfg.grad_accum, tokens

    def _own_step(self, own_step: Callable[..., Any]) -> tuple[float, int]:
        """A family whose update is not one loss defines `train_step(batch, optimizer) -> (loss, terms)`
        and does its own backward passes and `optimizer.step()` calls (e.g. discriminator then generator).
        The loop still sets the learning rate, draws the batch, counts the step, logs, evaluates,
        checkpoints and resumes; `grad_accum` and `grad_clip` are the family's business."""
        batch = _to_device(self.data.get_batch("train", self.cfg.batch_size, self.data_generator), self.cfg.device)
        with _autocast(self.cfg):
            loss, _ = own_step(batch, self.optimizer)
        self.step += 1
        return float(loss), _batch_tokens(batch)

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def estimate_loss(self, split: str) -> float:
        """Mean loss over `eval_iters` random batches drawn with a generator fixed by (seed, step),
        so evaluation never disturbs the training RNG and is the same after a resume."""
        self.model.eval()
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
        losses = []
        for _ in range(self.cfg.eval_iters):
            batch = _to_device(self.data.get_batch(split, self.cfg.batch_size, generator), self.cfg.device)
            with _autocast(self.cfg):
                loss, _ = self.model.loss(batch)  # type: ignore[operator]
            losses.append(float(loss))
        self.model.train()
        return sum(losses) / len(losses)

    def evaluate(self) -> dict[str, float]:
        return {"val_loss": self.estimate_loss("val"), "train_eval_loss": self.estimate_loss("train")}

    def _sample(self) -> None:
        if self.sampler is None or self.cfg.sample_tokens == 0:
            return
        self.model.eval()
        text = self.sampler(self.model)
        self.model.train()
        rundir.atomic_write_text(self.run_dir / rundir.SAMPLES / f"step_{self.step:06d}.txt", text)
        preview = " ".join(text.split())[:100]
        self.log(f"step {self.step} sample: {preview}")

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to `max_iters` (or `max_time`, or Ctrl-C), holding the run's writer lock throughout."""
        with rundir.writer_lock(self.run_dir):
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if resume:
            self.restore()
        else:  # the caller seeded the model's initialization; reseed so training RNG is the same either way
            torch.manual_seed(cfg.seed)
        self.model.train()
        stop = _StopRequest()
        session_start = time.perf_counter()
        elapsed_at_start = self.elapsed
        step_times: list[float] = []
        tokens_done = 0
        last_loss: float | None = None
        last_val: float | None = None
        stopped_by_time = False
        bar = tqdm(
            total=cfg.max_iters, initial=self.step, disable=not cfg.progress, unit="it", dynamic_ncols=True, leave=True
        )
        try:
            with stop.installed():
                while self.step < cfg.max_iters:
                    t0 = time.perf_counter()
                    last_loss, tokens = self.train_step()
                    dt = time.perf_counter() - t0
                    step_times.append(dt)
                    tokens_done += tokens
                    self.elapsed = elapsed_at_start + time.perf_counter() - session_start
                    record: dict[str, Any] = {
                        "step": self.step,
                        "train_loss": last_loss,
                        "lr": lr_at(self.step - 1, cfg),
                    }
                    record["ms"] = round(dt * 1000, 3)
                    if not math.isfinite(last_loss):
                        self.log(f"step {self.step}: the loss is {last_loss}; stopping (try a lower train.lr)")
                        rundir.append_metrics(self.run_dir, record)
                        break
                    out_of_time = cfg.max_time is not None and self.elapsed >= cfg.max_time
                    stopped_by_time = out_of_time
                    stopping = stop.requested  # read once: a Ctrl-C landing later is handled after the next step
                    checkpoint = (
                        self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters or out_of_time or stopping
                    )
                    if checkpoint:
                        record.update(self.evaluate())
                        last_val = record["val_loss"]
                    # the row goes out before the checkpoint: a kill in between re-logs it on resume
                    # (rows after the checkpoint's step are dropped), a kill after keeps it; never lost
                    if self.step % cfg.log_interval == 0 or checkpoint:
                        rundir.append_metrics(self.run_dir, record)
                    if checkpoint:
                        val = record["val_loss"]
                        if self.best_val_loss is None or val < self.best_val_loss:
                            self.best_val_loss = val
                            rundir.save_weights(self.model, self.run_dir / rundir.BEST, self.step)
                        self._sample()
                        self.save()
                    bar.update(1)
                    rate = tokens / dt if dt > 0 else 0.0
                    shown = {"loss": f"{last_loss:.4f}", f"{self.unit}/s": f"{rate:,.0f}"}
                    if self.best_val_loss is not None:  # the last evaluation's estimate stays in view
                        shown["val"] = f"{last_val if last_val is not None else self.best_val_loss:.4f}"
                    bar.set_postfix(shown, refresh=False)
                    if stopping or out_of_time:
                        break
        finally:
            bar.close()
        if stop.requested:
            self.log(f"stopped at step {self.step} by Ctrl-C; saved. Continue with --resume.")
        train_times = sorted(step_times)
        median = statistics.median(train_times) if train_times else None
        return TrainResult(
            step=self.step,
            train_loss=last_loss,
            val_loss=last_val,
            best_val_loss=self.best_val_loss,
            ms_per_iter=median * 1000 if median else None,
            tokens_per_s=(cfg.batch_size * cfg.grad_accum * _tokens_per_sequence(self.data)) / median
            if median
            else None,
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            elapsed_s=time.perf_counter() - session_start,
            interrupted=stop.requested,
            stopped_by_time=stopped_by_time,
        )


def _tokens_per_sequence(data: Any) -> int:
    return int(getattr(data, "block_size", 1))
