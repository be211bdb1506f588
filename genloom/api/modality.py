"""The family contract: one `Modality` object says how a kind of run is trained, loaded, sampled,
evaluated, described, exported, served and compared.

A family's row in `genloom.models.FAMILIES` names its modality; `genloom.api.MODALITIES` maps that name
to the object. The public API (`gl.train`, `gl.load`, `gl.sample`, `gl.evaluate`, `gl.export`), the CLI
and the server call these methods and never ask a run what it is, so a new modality is its own files
plus one row in each table (docs/architecture.md, "Adding a family").

Why two tables and not the object in the family row: `genloom.models` is a floor below training and
evaluation (models never import the trainer), while a modality trains and evaluates; the row names the
modality, the API floor holds the objects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genloom.errors import UserError
from genloom.models import Family
from genloom.train import TrainResult

Direction = Literal["lower", "higher"]
Log = Callable[[str], None] | None


class Metrics(dict[str, Any]):
    """An evaluation's named figures (a plain dict) and, for each quality metric, its direction:
    `metrics.directions["fid"] == "lower"`. Counts and settings have no direction. `line` is the
    modality's one-line reading of them (what `genloom eval` prints)."""

    def __init__(self, values: Mapping[str, Any], directions: Mapping[str, Direction], line: str = "") -> None:
        super().__init__(values)
        self.directions: dict[str, Direction] = {k: v for k, v in directions.items() if k in values}
        self.line = line

    def better(self, name: str, a: float, b: float) -> bool:
        """Whether `a` is a better value of metric `name` than `b`."""
        return a < b if self.directions[name] == "lower" else a > b


@dataclass
class Sampled:
    """What `Modality.sample` wrote: the file, how many samples, and a line for the user."""

    path: Path | None  # the file written (None: the samples went to stdout, e.g. text without --out)
    count: int
    message: str


@dataclass
class Budget:
    """A compare budget: wall-clock seconds or optimizer steps (exactly one is set)."""

    seconds: float | None = None
    steps: int | None = None

    @classmethod
    def parse(cls, text: str) -> Budget:
        """'90s', '2m', '1.5h', '2000steps' (or '2000 steps')."""
        t = text.strip().lower().replace(" ", "")
        units = {"steps": None, "step": None, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
        for unit in sorted(units, key=len, reverse=True):
            number = t.removesuffix(unit)
            if number != t:
                try:
                    value = float(number)
                except ValueError:
                    break
                if not math.isfinite(value) or value <= 0:
                    break
                scale = units[unit]
                if scale is None:
                    if value != int(value):
                        break
                    return cls(steps=int(value))
                return cls(seconds=value * scale)
        raise UserError(f"--budget {text!r}: expected a time such as 90s, 5m or 1h, or a step count such as 2000steps")

    def sets(self) -> list[str]:
        """The config overrides that make a training keep this budget."""
        if self.steps is not None:
            return [f"train.max_iters={self.steps}"]
        return [f"train.max_time={self.seconds}"]

    def __str__(self) -> str:
        if self.steps is not None:
            return f"{self.steps} steps"
        assert self.seconds is not None
        return f"{self.seconds:g} s"


@dataclass
class Modality:
    """The contract. Subclasses implement the methods; the fields describe the modality."""

    name: str  # the key families name in their row, e.g. "image"
    title: str  # heading of its group in `genloom families`
    docs: str  # its guide, relative to the repository (docs/images.md)
    noun: str = ""  # how errors name its runs: "text-generating run (gpt)"
    commands: frozenset[str] = field(default_factory=frozenset)  # CLI verbs it offers besides train/sample/eval
    refuse_serving: str = ""  # non-empty: why `genloom serve` cannot serve its runs (e.g. no route fits)
    kind: str = ""  # what the server's model list calls it ("text", "image", ...)
    sample_file: str = "samples/sample.txt"  # where `genloom sample` writes without --out, in the run
    directions: dict[str, Direction] = field(default_factory=dict)  # every quality metric's direction
    headline: str = ""  # the metric compare ranks by first
    probes: frozenset[str] = field(default_factory=frozenset)  # named evaluations: `genloom eval PROBE RUN`

    # ---- ingest / train / load ----

    def data(self, rc: Any) -> Any:
        """Build the run's data source from its data config (read, split, tokenize): what `train` feeds
        the Trainer. Compare calls it first to check every family can train on the data."""
        raise NotImplementedError

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        raise NotImplementedError

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> Any:
        """The handle `gl.load` returns for a run of this modality."""
        raise NotImplementedError

    # ---- sample / evaluate ----

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        """Draw samples with `options` (the CLI's flags by name; unknown ones ignored) and write them to
        `out` in the modality's format (None: its default place, or stdout through `echo`)."""
        raise NotImplementedError

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        """The run's held-out figures, recorded in its card.md; `options["probe"]`, when given, names one
        of `probes` to run instead (e.g. "memorization")."""
        raise NotImplementedError

    def detect(self, run_dir: Path, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        """Whether the file at `path` carries this run's watermark (docs/responsible.md): figures and a
        `line` for the user."""
        raise UserError(f"{run_dir}: {self.name} runs do not mark their samples with a watermark")

    def describe(self, metrics: Mapping[str, Any]) -> str:
        """`genloom eval`'s one line."""
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        """(Re)write the run's card.md from its summary."""
        raise NotImplementedError

    def export(self, run_dir: Path, out: Path, format: str, checkpoint: str) -> Path:
        raise UserError(f"{run_dir}: --format {format} exports text runs (gpt, bert), not this {self.name} run")

    # ---- serve ----

    def routes(self) -> str | None:
        """`module:function` that adds this modality's own server routes (`function(server)`); named by
        import path because the server floor sits above the API. None: only the shared routes."""
        return None

    def model_card(self, handle: Any) -> dict[str, Any]:
        """Fields of `GET /v1/models` for one served run."""
        return {}

    def quantize(self, handle: Any, kind: str) -> None:
        """Store the loaded model's weights in fewer bits for decoding (`gl.load(..., quantize=)`)."""
        raise UserError(f"--quantize {kind}: applies to GPT/Llama text models; this is a {self.noun}")

    # ---- compare ----

    def budget(self, budget: Budget) -> list[str]:
        """Config overrides that make a training keep `budget` (compare)."""
        return budget.sets()

    def compare_evaluation(self) -> dict[str, Any]:
        """Evaluation options compare uses (e.g. fewer samples than a full `genloom eval`)."""
        return {}

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        """Per-round sampling rates and their unit (e.g. 'images/s'), for compare."""
        raise NotImplementedError

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        """A few samples for compare's report, as (media type, bytes): 'image/png', 'text/plain', ..."""
        raise NotImplementedError


SLOW_ROUND_S = 2.0  # a round this long is not dominated by first-call costs: no separate warm-up needed
SPEED_BUDGET_S = 30.0  # past this, slow samplers (pixel by pixel) stop after MIN_ROUNDS timed rounds
MIN_ROUNDS = 3


def timed_rates(work: Callable[[], int], rounds: int) -> list[float]:
    """Items per second of `work()` (which returns how many it made) over `rounds` rounds, after one
    untimed warm-up round. A sampler slow enough that one round takes SLOW_ROUND_S has its warm-up
    round counted, and stops after MIN_ROUNDS rounds once SPEED_BUDGET_S are spent, so timing a
    pixel-by-pixel sampler does not cost minutes."""
    t0 = time.perf_counter()
    n = work()
    elapsed = time.perf_counter() - t0
    rates = [n / elapsed] if elapsed >= SLOW_ROUND_S else []
    while len(rates) < rounds and not (len(rates) >= min(MIN_ROUNDS, rounds) and elapsed >= SPEED_BUDGET_S):
        t0 = time.perf_counter()
        n = work()
        spent = time.perf_counter() - t0
        rates.append(n / spent)
        elapsed += spent
    return rates
