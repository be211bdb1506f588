"""A throwaway family of a new modality, "points": 2-D point clouds, modelled by a Gaussian mixture fit
by gradient descent. It exists to prove the family contract: everything genloom does with it (train,
sample, evaluate, serve, compare) goes through this file and two registry rows that the tests add to a
temporary registry, with no edit anywhere else. docs/architecture.md walks through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import genloom as gl
from genloom import run as rundir
from genloom.api.modality import Log, Sampled, timed_rates
from genloom.api.runs import build_model, end_summary, load_run_model, read_run_config, start_run, write_summary
from genloom.errors import UserError
from genloom.evaluate import plot_loss_curve, write_card
from genloom.models import Family
from genloom.train import Trainer, TrainResult

# ---- the model: a K-component Gaussian mixture in the plane -----------------------------------


@dataclass
class PointsConfig:
    components: int = 8  # mixture components K

    def __post_init__(self) -> None:
        if self.components < 1:
            raise ValueError(f"components must be positive, got {self.components}")


class PointsModel(nn.Module):
    """p(x) = sum_k pi_k N(x; mu_k, diag(sigma_k^2)); trained by the mean negative log-likelihood."""

    def __init__(self, config: PointsConfig) -> None:
        super().__init__()
        self.config = config
        self.means = nn.Parameter(torch.randn(config.components, 2))
        self.log_std = nn.Parameter(torch.zeros(config.components, 2))
        self.logits = nn.Parameter(torch.zeros(config.components))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, None, :] - self.means) / self.log_std.exp()  # (N, K, 2)
        per = -0.5 * (z**2).sum(-1) - self.log_std.sum(-1) - math.log(2 * math.pi)  # (N, K)
        return torch.logsumexp(per + self.logits.log_softmax(0), dim=1)

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nll = -self.log_prob(batch).mean()
        return nll, {"nll": nll}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        return self.means[k] + noise * self.log_std.exp()[k]


# ---- the data: a ring of Gaussians, or the user's CSV of x,y --------------------------------------


@dataclass
class PointsDataConfig:
    source: str = "ring"  # "ring" (8 Gaussians on a circle) or a CSV file of x,y rows
    n_points: int = 3000  # points drawn from "ring"
    seed: int = 0  # of the draw and the split


class PointsData:
    """Train/val/test tensors (80/10/10) of points; batches drawn with the trainer's generator."""

    def __init__(self, cfg: PointsDataConfig) -> None:
        generator = torch.Generator().manual_seed(cfg.seed)
        if cfg.source == "ring":
            angle = torch.randint(0, 8, (cfg.n_points,), generator=generator) * (2 * math.pi / 8)
            centre = torch.stack([angle.cos(), angle.sin()], dim=1) * 2
            points = centre + 0.1 * torch.randn(cfg.n_points, 2, generator=generator)
        else:
            path = Path(cfg.source)
            try:
                rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
                points = torch.tensor([[float(a), float(b)] for a, b in rows])
            except (OSError, ValueError) as e:
                raise UserError(f"{path}: expected a CSV of x,y rows ({e})") from None
        points = points[torch.randperm(len(points), generator=generator)]
        a, b = int(0.8 * len(points)), int(0.9 * len(points))
        self.splits = {"train": points[:a], "val": points[a:b], "test": points[b:]}

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        data = self.splits[split]
        return data[torch.randint(0, len(data), (batch_size,), generator=generator)]


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """2 E|a-b| - E|a-a'| - E|b-b'|: zero when the two samples come from one distribution."""
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def write_csv(points: torch.Tensor, path: Path) -> None:
    rundir.atomic_write_text(path, "x,y\n" + "".join(f"{x:.6f},{y:.6f}\n" for x, y in points.tolist()))


# ---- the contract -----------------------------------------------------------------------------


class PointsModality(gl.Modality):
    """2-D point clouds: CSV samples, test NLL and energy distance."""

    def data(self, rc: Any) -> PointsData:
        return PointsData(rc.data)

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        data = self.data(rc)
        torch.manual_seed(rc.train.seed)
        model = build_model(family, rc.model)  # checks its size before allocating
        out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
        trainer = Trainer(model, rc.train, data, out, log=log)
        start_run(out, rc, {"points": str(len(data.splits["train"]))}, resume, trainer)
        result = trainer.fit(resume=resume)
        stats = {name: len(split) for name, split in data.splits.items()}
        summary = end_summary(out, stats, {"parameters": 5 * rc.model.components}, result, trainer, "points_per_s")
        write_summary(out, summary)
        plot_loss_curve(out)
        self.card(out, rc, summary)
        return result

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> Any:
        model = load_run_model(run_dir, POINTS_FAMILY, rc, checkpoint)
        return PointsHandle(model, rc, run_dir)

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        n = int(options.get("n") or 16)
        if n <= 0:
            raise UserError(f"n must be a positive number of points, got {n}")
        seed = options.get("seed")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        out = out or handle.run_dir / self.sample_file
        write_csv(handle.model.sample(n, generator), out)
        return Sampled(out, n, f"{n} points written to {out}")

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        rc = read_run_config(run_dir)
        handle = self.load(run_dir, rc, checkpoint)
        test = self.data(rc).splits["test"]
        with torch.no_grad():
            nll = float(-handle.model.log_prob(test).mean())
        samples = handle.model.sample(len(test), torch.Generator().manual_seed(0))
        return {"test_nll": nll, "energy_distance": energy_distance(samples, test), "test_points": len(test)}

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        write_card(run_dir, f"Model card: {run_dir.name}", {"Training": summary.get("training", {})})

    def model_card(self, handle: Any) -> dict[str, Any]:
        return {}

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        return timed_rates(lambda: len(handle.model.sample(10_000)), rounds), "points/s"

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        points = handle.model.sample(8, torch.Generator().manual_seed(seed))
        return "text/csv", ("x,y\n" + "".join(f"{x:.3f},{y:.3f}\n" for x, y in points.tolist())).encode()


@dataclass
class PointsHandle:
    """What `gl.load` returns for a points run."""

    model: PointsModel
    config: Any
    run_dir: Path


POINTS_MODALITY = PointsModality(
    name="points",
    title="2-D point clouds (a test modality)",
    docs="docs/architecture.md",
    noun="points run",
    kind="points",
    sample_file="samples/points.csv",
    directions={"test_nll": "lower", "energy_distance": "lower"},
    headline="energy_distance",
)

POINTS_FAMILY = Family(
    name="points",
    modality="points",
    use_for="a Gaussian mixture of 2-D points: proves the family contract",
    config=PointsConfig,
    model=PointsModel,
    data_config=PointsDataConfig,
    presets={
        "debug": {
            "model": {"components": 8},
            "train": {"max_iters": 60, "batch_size": 64, "lr": 0.05, "warmup_iters": 5},
        },
        "default": {
            "model": {"components": 8},
            "train": {"max_iters": 400, "batch_size": 128, "lr": 0.05, "warmup_iters": 20},
        },
    },
)
