"""Run reports: the loss-curve PNG and the model card (card.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genloom import run as rundir

LOSS_CURVE = "samples/loss_curve.png"


def plot_loss_curve(
    run_dir: str | Path, loss: str = "cross-entropy (nats/token)", metrics_dir: str | Path | None = None
) -> Path | None:
    """Plot training loss per step and validation loss per evaluation from metrics.jsonl (of
    `metrics_dir`, default the run's own) into the run's samples/; `loss` names what the loss is."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = rundir.read_metrics(Path(metrics_dir) if metrics_dir is not None else run_dir)
    train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(*zip(*train, strict=False), lw=0.8, alpha=0.6, label="train loss (per step)")
    if val:
        ax.plot(*zip(*val, strict=False), "o-", lw=1.5, label="validation loss (estimate)")
    ax.set_xlabel("step")
    ax.set_ylabel(loss)
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = run_dir / LOSS_CURVE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out


def _table(rows: dict[str, Any]) -> str:
    lines = ["| | |", "|---|---|"]
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"| {key} | {value} |")
    return "\n".join(lines)


def write_card(
    run_dir: str | Path,
    title: str,
    sections: dict[str, dict[str, Any] | str],
    usage: tuple[str, str] | None = None,
) -> Path:
    """Write card.md: a title, "Use this model" (`usage`: Python and shell lines that run as they are),
    then one table (dict) or paragraph (str) per section."""
    run_dir = Path(run_dir)
    parts = [f"# {title}\n"]
    if usage is not None:
        python, shell = usage
        parts.append("## Use this model\n")
        parts.append(f"```python\nimport genloom as gl\n\n{python.strip()}\n```\n\n```bash\n{shell.strip()}\n```\n")
    for heading, body in sections.items():
        parts.append(f"## {heading}\n")
        parts.append((_table(body) if isinstance(body, dict) else body.rstrip()) + "\n")
    if (run_dir / LOSS_CURVE).exists():
        parts.append(f"## Loss curve\n\n![loss curve]({LOSS_CURVE})\n")
    path = run_dir / rundir.CARD
    rundir.atomic_write_text(path, "\n".join(parts))
    return path
