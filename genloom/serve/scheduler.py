"""The scheduler: one thread owns the models and runs every request through them.

HTTP handlers (on the asyncio event loop) `submit` jobs into one bounded waiting queue (full: the
handler answers 429). The scheduler thread loops: admit waiting text jobs into their model's
`ContinuousBatcher` while it has free rows, run one decode step of every model that has running rows,
hand each job its new text through its asyncio queue (`loop.call_soon_threadsafe`), repeat. So new
requests join between steps and finished or cancelled ones leave (continuous batching, see
genloom/generation/continuous.py). Image jobs run whole between two steps. With `max_batch=1` the same
code serves one request at a time (the `--no-batching` baseline of bench/serve.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from genloom.errors import UserError
from genloom.generation import GenerationConfig, TokenLogprob
from genloom.generation.continuous import ContinuousBatcher, DecodeRow


class QueueFull(Exception):
    """The waiting queue is at `max_queue`: the client should retry later (HTTP 429)."""


@dataclass
class Event:
    """What a job learns from the scheduler: new text, and at the end its finish reason (or an error)."""

    index: int  # the choice this event belongs to
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of the tokens decided since the last event
    finish_reason: str | None = None  # "stop", "length", "eos", "cancelled" when it ended
    completion_tokens: int = 0
    result: Any = None  # an image job's images
    error: str | None = None  # an unexpected failure (a bug): reported as a 500 / an error chunk
    user_error: bool = False  # the error is the request's fault (a genloom `UserError`): a 400


@dataclass
class Job:
    """One choice of one request: a prompt for a text model, or a call for an image model."""

    model: str
    index: int
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event]
    prompt: list[int] | None = None  # text jobs
    config: GenerationConfig | None = None
    sample: Callable[[], Any] | None = None  # image jobs: run in the scheduler thread
    stream: bool = True  # False: one event when it ends (the whole text), none per token
    row: DecodeRow | None = None
    cancelled: bool = False
    sent_logprobs: int = 0

    def cancel(self) -> None:
        """Stop this job: it leaves the batch at the next step (the client went away)."""
        self.cancelled = True
        if self.row is not None:
            self.row.cancelled = True

    def post(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class Scheduler:
    """Owns the models; `submit` from any thread, results arrive on each job's asyncio queue."""

    def __init__(
        self,
        text_models: dict[str, Any] | None = None,
        max_batch: int = 16,
        max_queue: int = 64,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        if max_queue < 1:
            raise UserError(f"max_queue must be >= 1, got {max_queue}")
        self.batchers = {
            name: ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, max_batch)
            for name, lm in (text_models or {}).items()
        }
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.on_step = on_step  # called after every decode step (tests use it to slow decoding down)
        self.waiting: deque[Job] = deque()
        self.running: dict[int, Job] = {}  # id(row) → job
        self.steps = 0  # decode steps run so far
        self.cancelled = 0  # jobs stopped because their client went away
        self._cond = threading.Condition()
        self._gate = threading.Lock()  # held while the scheduler works; `paused()` holds it from outside
        self._stop = False
        self._thread: threading.Thread | None = None

    def add_model(self, name: str, lm: Any) -> None:
        """Decode `lm` (a model and its tokenizer) with continuous batching; call before `start`."""
        self.batchers[name] = ContinuousBatcher(lm.model, lm.tokenizer.decode, lm.tokenizer.eos_id, self.max_batch)

    # ---- the HTTP side ---------------------------------------------------------------------------

    def submit(self, jobs: list[Job]) -> None:
        """Queue every job of one request, or none of them (QueueFull)."""
        with self._cond:
            if len(self.waiting) + len(jobs) > self.max_queue:
                raise QueueFull(f"the server queue is full ({self.max_queue} waiting requests); retry later")
            self.waiting.extend(jobs)
            self._cond.notify()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the scheduler between two steps (jobs still queue up meanwhile)."""
        with self._gate:
            yield

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="genloom-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- the scheduler thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self.waiting and not self.running:
                    self._cond.wait()
                if self._stop:
                    return
            with self._gate:
                try:
                    self._iteration()
                except Exception as e:  # a bug: fail the jobs in flight, keep serving the next ones
                    failed = list(self.running.values())
                    self.running.clear()
                    for batcher in self.batchers.values():
                        batcher.rows, batcher.cache, batcher.logits = [], None, None
                    for job in failed:
                        job.post(Event(job.index, error=f"{type(e).__name__}: {e}"))

    def _admit(self) -> list[Job]:
        """Move waiting jobs into free batch rows; returns the image jobs to run now. The queue is
        locked only to pick the jobs: prefilling happens outside, so `submit` never waits for it."""
        images: list[Job] = []
        joining: list[Job] = []
        with self._cond:
            free = {name: b.free for name, b in self.batchers.items()}
            still: deque[Job] = deque()
            for job in self.waiting:
                if job.cancelled:
                    self.cancelled += 1
                    job.post(Event(job.index, finish_reason="cancelled"))
                elif job.sample is not None:
                    images.append(job)
                elif free[job.model] > 0:
                    free[job.model] -= 1
                    joining.append(job)
                else:
                    still.append(job)
            self.waiting = still
        for job in joining:
            assert job.prompt is not None and job.config is not None
            try:
                row = self.batchers[job.model].add(job.prompt, job.config)
            except UserError as e:  # checked by the handler already; kept as a safety net
                job.post(Event(job.index, error=str(e)))
                continue
            if row.finished:  # max_tokens 0
                job.post(Event(job.index, finish_reason=row.finish_reason))
                continue
            with self._cond:
                job.row = row
                self.running[id(row)] = job
            if job.cancelled:  # cancelled while it was prefilled
                row.cancelled = True
        return images

    def _iteration(self) -> None:
        for job in self._admit():
            try:
                job.post(Event(job.index, result=job.sample(), finish_reason="stop"))  # type: ignore[misc]
            except UserError as e:
                job.post(Event(job.index, error=str(e), user_error=True))
            except Exception as e:
                job.post(Event(job.index, error=f"{type(e).__name__}: {e}"))
        for job in self.running.values():  # a cancel that raced with admission
            if job.cancelled and job.row is not None:
                job.row.cancelled = True
        for batcher in self.batchers.values():
            if not batcher.rows:
                continue
            deliveries: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}
            for row, text in batcher.step():
                job = self.running[id(row)]
                if not job.stream:  # the client waits for the end: no event loop work per token
                    if not row.finished:
                        continue
                    text, job.sent_logprobs = row.text.text, 0
                new = row.logprobs[job.sent_logprobs :]
                job.sent_logprobs = len(row.logprobs)
                event = Event(job.index, text, new, row.finish_reason, len(row.ids))
                if row.error is not None:  # this request's own numbers failed (the batch went on without it)
                    event = Event(job.index, error=row.error, user_error=True)
                if row.finished:
                    del self.running[id(row)]
                    if row.finish_reason == "cancelled":
                        self.cancelled += 1
                deliveries.setdefault(job.loop, []).append((job, event))
            for loop, items in deliveries.items():  # one wake-up of the event loop per step, not per row
                loop.call_soon_threadsafe(_deliver, items)
            self.steps += 1
            if self.on_step is not None:
                self.on_step()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) jobs."""
        with self._cond:
            return len(self.running), len(self.waiting)


def _deliver(items: list[tuple[Job, Event]]) -> None:
    """On the event loop: hand each job its event."""
    for job, event in items:
        job.events.put_nowait(event)
