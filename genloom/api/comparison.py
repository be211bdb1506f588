"""`genloom compare`: which model fits my data? Train several families (or configurations of one) on the
same data under the same budget, evaluate them with the same metrics, time their sampling and write one
report.

```python
import genloom as gl
report = gl.compare("runs/cmp", data="mnist", families=["vae", "gan", "diffusion"], budget="2m")
report["runs"]["gan"]["metrics"]["fid"], report["summary"]
```

Every trained model is a normal run directory under `out/` (servable, evaluable, resumable). The state of
the comparison is `out/compare.json`, rewritten atomically after every stage of every run, so an
interrupted compare continues with `resume=True` and never retrains a finished run. The report is
`out/report.json` (the numbers) and `out/report.html` (one self-contained page: the table, the samples,
the learning curves and a plain-language summary of the trade-offs).
"""

from __future__ import annotations

import base64
import html
import json
import math
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genloom import run as rundir
from genloom.api.modalities import modality_of
from genloom.api.modality import Budget, Modality
from genloom.errors import UserError
from genloom.models import get_family

STATE = "compare.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
PREVIEWS = "previews"
FORMAT = 1  # compare.json's version; a directory with this file is a compare
SUFFIX = {"image/png": ".png", "text/plain": ".txt", "audio/wav": ".wav", "text/csv": ".csv"}


@dataclass
class Entry:
    """One model of the comparison: a family with its preset and overrides, trained into out/name."""

    name: str  # run directory under out/, and the row's label
    family: str
    preset: str | None
    sets: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        extras = ([f"preset={self.preset}"] if self.preset else []) + self.sets
        return f"{self.family} ({', '.join(extras)})" if extras else self.family


def default_preset(family: str) -> str | None:
    """A family's recommended preset: its first one that is not `debug`."""
    return next((p for p in get_family(family).presets if p != "debug"), None)


def parse_entries(families: Sequence[str], runs: Sequence[str], preset: str | None) -> list[Entry]:
    """`families` (each with `preset` or its recommended one) and `runs` ("gpt:preset=x,model.pos=alibi")."""
    entries: list[Entry] = []
    for family in families:
        get_family(family)  # an unknown family: one line naming the valid ones
        if preset is not None and preset not in get_family(family).presets:
            raise UserError(
                f"--preset {preset!r}: family {family} has no such preset ({', '.join(get_family(family).presets)})"
            )
        entries.append(Entry(family, family, preset or default_preset(family)))
    for spec in runs:
        family, _, rest = spec.partition(":")
        get_family(family.strip())
        chosen, sets = preset, []
        for item in filter(None, (x.strip() for x in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise UserError(
                    f"--runs {spec!r}: expected FAMILY:key=value,... (e.g. gpt:preset=demo,model.pos=alibi)"
                )
            if key.strip() == "preset":
                chosen = value.strip()
            else:
                sets.append(f"{key.strip()}={value.strip()}")
        entries.append(Entry("", family.strip(), chosen or default_preset(family.strip()), sets))
    if not entries:
        raise UserError("compare: give --families (e.g. vae,gan) or --runs (e.g. 'gpt:preset=demo')")
    seen: dict[str, int] = {}
    for e in entries:  # names: the family, numbered when it appears more than once
        seen[e.family] = seen.get(e.family, 0) + 1
    counter: dict[str, int] = {}
    for e in entries:
        if seen[e.family] == 1:
            e.name = e.family
        else:
            counter[e.family] = counter.get(e.family, 0) + 1
            e.name = f"{e.family}-{counter[e.family]}"
    modalities = {get_family(e.family).modality for e in entries}
    if len(modalities) > 1:
        by = ", ".join(f"{e.family} ({get_family(e.family).modality})" for e in entries)
        raise UserError(f"compare: the families must share one modality to share one dataset; got {by}")
    return entries


class PeakRSS:
    """The process's peak resident memory while a block runs, sampled every 20 ms from /proc (the
    kernel's high-water mark covers the whole process life, so it cannot tell runs apart)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @staticmethod
    def rss_mb() -> float:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.rss_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRSS:
        self.peak_mb = self.rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.rss_mb())


# ---- the compare directory ----------------------------------------------------------------------


def _save_state(out: Path, state: dict[str, Any]) -> None:
    rundir.atomic_write_text(out / STATE, json.dumps(state, indent=2))


def _check_out(out: Path, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """The saved state of a compare in `out` to resume, or None for a fresh one; refuses, before anything
    is written, an `out` that holds something else or a compare that would be overwritten."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    saved = None
    if (out / STATE).exists():
        try:
            saved = json.loads((out / STATE).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{out / STATE}: unreadable ({e}); pass --overwrite to start again") from None
        if not isinstance(saved, dict) or saved.get("genloom_compare") != FORMAT:
            raise UserError(f"{out / STATE}: not a genloom compare state; pass --overwrite to start again")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: a non-empty directory that is not a genloom compare; choose another --out")
    if resume:
        if saved is None:
            raise UserError(f"--out {out}: no compare to resume there")
        return saved
    if saved is not None and not overwrite:
        raise UserError(
            f"--out {out}: already holds a compare; pass --resume to continue it or --overwrite to replace it"
        )
    return None


def compare(
    out: str | Path,
    *,
    data: str,
    families: Sequence[str] = (),
    runs: Sequence[str] = (),
    budget: str = "5m",
    preset: str | None = None,
    sets: Sequence[str] = (),
    seed: int = 1337,
    rounds: int = 5,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train each family of `families` (and each configuration of `runs`) on `data` under `budget`
    ("5m", "90s", "2000steps"), evaluate, time sampling over `rounds` rounds, and write the report.
    Returns the report's numbers (also in out/report.json)."""
    from genloom.api import evaluate, open_run, train

    say = log or (lambda line: None)
    out = Path(out)
    plan = Budget.parse(budget)
    entries = parse_entries(families, runs, preset)
    if rounds < 1:
        raise UserError(f"--rounds must be at least 1, got {rounds}")
    saved = _check_out(out, resume, overwrite)
    spec = {
        "data": data,
        "budget": str(plan),
        "seed": seed,
        "sets": list(sets),
        "entries": [asdict(e) for e in entries],
    }
    if saved is not None:
        if saved.get("spec") != spec:
            raise UserError(
                f"--resume {out}: the families, data, budget, seed or --set differ from the compare there; "
                "give the same ones, or --overwrite to start again"
            )
        state = saved
        for name, record in state["runs"].items():
            if record.get("stage") != "pending" and not rundir.is_run(out / name):
                raise UserError(
                    f"--resume {out}: the run {out / name} is gone (deleted by hand?); pass --overwrite to start again"
                )
    else:
        _check_data(entries, data, sets, seed)
        if out.exists():
            shutil.rmtree(out)  # a compare (checked above) the user asked to overwrite
        out.mkdir(parents=True)
        state = {"genloom_compare": FORMAT, "spec": spec, "runs": {e.name: {"stage": "pending"} for e in entries}}
        _save_state(out, state)

    for e in entries:
        record = state["runs"][e.name]
        fam = get_family(e.family)
        modality = modality_of(fam)
        run_dir = out / e.name
        if record["stage"] in ("pending", "training"):
            say(f"compare: training {e.label} for {plan} ...")
            record["stage"] = "training"
            _save_state(out, state)
            again = rundir.is_run(run_dir) and (run_dir / rundir.WEIGHTS).exists()
            run_sets = [*modality.budget(plan), f"train.seed={seed}", "train.progress=false", *sets, *e.sets]
            t0 = time.perf_counter()
            with PeakRSS() as memory:
                result = train(
                    e.family,
                    out=run_dir,
                    data=data,
                    preset=e.preset,
                    sets=run_sets,
                    resume=again,
                    overwrite=not again,
                    log=log,
                )
            if result.interrupted:
                raise KeyboardInterrupt
            summary = json.loads((run_dir / "summary.json").read_text())["training"]
            record.update(
                stage="trained",
                steps=result.step,
                train_seconds=float(summary.get("train_seconds_total", 0.0)),
                wall_seconds=round(time.perf_counter() - t0, 2) + float(record.get("wall_seconds", 0.0)),
                peak_rss_mb=round(max(memory.peak_mb, float(record.get("peak_rss_mb", 0.0))), 1),
            )
            _save_state(out, state)
        if record["stage"] == "trained":
            say(f"compare: evaluating {e.name} ...")
            metrics = evaluate(run_dir, **modality.compare_evaluation())
            record.update(
                stage="evaluated",
                metrics={k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)},
                directions=metrics.directions,
            )
            _save_state(out, state)
        if record["stage"] == "evaluated":
            say(f"compare: timing {e.name}'s sampling (up to {rounds} rounds) ...")
            _, handle = open_run(run_dir)
            rates, unit = modality.speed(handle, rounds)
            media, content = modality.preview(handle, seed)
            preview = Path(PREVIEWS) / f"{e.name}{SUFFIX.get(media, '.bin')}"
            (out / PREVIEWS).mkdir(exist_ok=True)
            (out / preview).write_bytes(content)
            record.update(
                stage="done",
                speed=statistics.median(rates),
                speed_rounds=rates,
                speed_unit=unit,
                parameters=sum(p.numel() for p in handle.model.parameters()),
                preview=str(preview),
                preview_type=media,
            )
            _save_state(out, state)
    report = build_report(out, state, entries, modality_of(get_family(entries[0].family)))
    rundir.atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=2))
    rundir.atomic_write_text(out / REPORT_HTML, render_html(out, report))
    say(f"compare: report in {out / REPORT_HTML}")
    return report


def _check_data(entries: list[Entry], data: str, sets: Sequence[str], seed: int) -> None:
    """Every configuration resolves and its modality can read `data`, before anything is trained."""
    from genloom.api.runs import resolve_config

    seen: set[str] = set()
    for e in entries:
        rc = resolve_config(e.family, e.preset, None, data, [f"train.seed={seed}", *sets, *e.sets])
        key = f"{get_family(e.family).modality}:{rc.data!r}"
        if key in seen:
            continue
        seen.add(key)
        try:
            modality_of(get_family(e.family)).data(rc)
        except UserError as err:
            raise UserError(f"compare: {e.family} cannot train on --data {data}: {err}") from None


# ---- the report -------------------------------------------------------------------------------


def _curve(run_dir: Path) -> list[tuple[float, float]]:
    """(training seconds, train loss) from metrics.jsonl."""
    points, seconds = [], 0.0
    path = run_dir / rundir.METRICS
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("train_loss"), int | float):
            continue
        seconds += float(row.get("ms", 0.0)) / 1000
        points.append((seconds, float(row["train_loss"])))
    return points


def build_report(out: Path, state: dict[str, Any], entries: list[Entry], modality: Modality) -> dict[str, Any]:
    """The numbers of report.json: one row per run, the best value of each column, the summary."""
    rows: dict[str, dict[str, Any]] = {}
    for e in entries:
        r = state["runs"][e.name]
        rows[e.name] = {
            "family": e.family,
            "label": e.label,
            "run": str(out / e.name),
            "metrics": r["metrics"],
            "speed": r["speed"],
            "speed_unit": r["speed_unit"],
            "speed_rounds": r["speed_rounds"],
            "parameters": r["parameters"],
            "peak_rss_mb": r["peak_rss_mb"],
            "train_seconds": r["train_seconds"],
            "wall_seconds": r["wall_seconds"],
            "steps": r["steps"],
            "preview": r["preview"],
            "preview_type": r["preview_type"],
        }
    directions: dict[str, str] = {}
    for e in entries:
        directions.update(state["runs"][e.name]["directions"])
    # a metric some families have and others not (conditional accuracy, bits/dim) is compared among those
    metrics = [m for m in modality.directions if m in directions and any(m in rows[n]["metrics"] for n in rows)]
    columns: dict[str, str] = {m: directions[m] for m in metrics}
    columns |= {"speed": "higher", "parameters": "lower", "peak_rss_mb": "lower", "train_seconds": "lower"}
    best: dict[str, list[str]] = {}
    for col, direction in columns.items():
        values: dict[str, float] = {n: v for n, row in rows.items() if (v := cell(row, col)) is not None}
        target = (min if direction == "lower" else max)(values.values())
        best[col] = [n for n, v in values.items() if v == target]
    ranked = [m for m in metrics if all(m in rows[n]["metrics"] for n in rows)]
    headline = modality.headline if modality.headline in ranked else (ranked[0] if ranked else "speed")
    key = (lambda n: rows[n]["metrics"][headline]) if headline in ranked else (lambda n: -rows[n]["speed"])
    ranking = sorted(rows, key=key, reverse=headline in ranked and columns[headline] == "higher")
    return {
        "data": state["spec"]["data"],
        "budget": state["spec"]["budget"],
        "seed": state["spec"]["seed"],
        "modality": modality.name,
        "headline": headline,
        "columns": columns,
        "ranking": ranking,
        "best": best,
        "runs": rows,
        "summary": summarize(rows, ranking, columns, best, headline, metrics),
        "machine": _machine(),
    }


def cell(row: dict[str, Any], column: str) -> float | None:
    """A row's value in a column: a metric (None if its family has none) or a measured figure."""
    return row["metrics"].get(column) if column in row["metrics"] or column not in row else row[column]


def _machine() -> dict[str, Any]:
    from genloom.api.runs import machine_info

    return machine_info()


def _fmt(value: float) -> str:
    if isinstance(value, int) or (abs(value) >= 1000 and value == int(value)):
        return f"{int(value):,}"
    return f"{value:.4g}"


def summarize(
    rows: dict[str, dict[str, Any]],
    ranking: list[str],
    columns: dict[str, str],
    best: dict[str, list[str]],
    headline: str,
    metrics: list[str],
) -> list[str]:
    """Plain-language trade-offs, generated from the numbers: "diffusion: best fid (45.1); 40× slower to
    sample than gan"."""
    lines = []
    if headline in metrics:
        first = ranking[0]
        lines.append(
            f"Ranked by {headline} ({columns[headline]} is better): "
            + ", ".join(f"{n} {_fmt(rows[n]['metrics'][headline])}" for n in ranking)
            + "."
        )
    else:
        first = ranking[0]
    fastest = max(rows, key=lambda n: rows[n]["speed"])
    unit = rows[fastest]["speed_unit"]
    for n in ranking:
        row = rows[n]
        wins = [c for c in metrics if n in best[c]]
        parts = []
        if wins:
            parts.append("best " + ", ".join(f"{c} ({_fmt(row['metrics'][c])})" for c in wins))
        if n == fastest:
            parts.append(f"fastest to sample ({_fmt(row['speed'])} {unit})")
        else:
            ratio = rows[fastest]["speed"] / row["speed"] if row["speed"] > 0 else math.inf
            parts.append(f"{ratio:.1f}× slower to sample than {fastest}")
        if n in best["parameters"]:
            parts.append(f"smallest ({_fmt(row['parameters'])} parameters)")
        if n in best["peak_rss_mb"]:
            parts.append(f"least memory ({row['peak_rss_mb']:.0f} MB peak)")
        lines.append(f"{n}: " + "; ".join(parts) + ".")
    if headline in metrics and first != fastest:
        lines.append(
            f"Trade-off: {first} gives the best {headline}; {fastest} samples "
            f"{rows[fastest]['speed'] / max(rows[first]['speed'], 1e-12):.1f}× faster."
        )
    return lines


def _curves_png(out: Path, report: dict[str, Any]) -> bytes:
    """Every run's training loss against training seconds on one plot (relative to each run's first
    loss when families differ, since their losses are on different scales)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = {r["family"] for r in report["runs"].values()}
    relative = len(families) > 1
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    for name, row in report["runs"].items():
        points = _curve(Path(row["run"]))
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        k = max(1, len(ys) // 100)  # a running mean over about 1% of the steps
        smooth = [statistics.fmean(ys[max(0, i - k) : i + 1]) for i in range(len(ys))]
        if relative and smooth[0] != 0:
            smooth = [y / abs(smooth[0]) for y in smooth]
        ax.plot(xs, smooth, label=name)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("training loss / first loss" if relative else "training loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_html(out: Path, report: dict[str, Any]) -> str:
    """One self-contained page: no scripts, fonts or images from anywhere but the page itself."""
    e = html.escape
    cols = report["columns"]
    header = ["run", *cols]
    unit = next(iter(report["runs"].values()))["speed_unit"]
    names = {
        "speed": f"sampling ({unit})",
        "parameters": "parameters",
        "peak_rss_mb": "peak RSS (MB)",
        "train_seconds": "training (s)",
    }
    head = "".join(
        f"<th>{e(names.get(c, c))}<br><small>{e(cols.get(c, ''))} is better</small></th>"
        if c in cols
        else f"<th>{e(c)}</th>"
        for c in header
    )
    body = []
    for name in report["ranking"]:
        row = report["runs"][name]
        cells = [f"<td><b>{e(name)}</b><br><small>{e(row['label'])}, {row['steps']} steps</small></td>"]
        for c in cols:
            value = cell(row, c)
            mark = name in report["best"][c]
            text = "—" if value is None else e(_fmt(value)) + (" ★" if mark else "")
            cells.append(f'<td class="{"best" if mark else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    samples = []
    for name in report["ranking"]:
        row = report["runs"][name]
        data = (out / row["preview"]).read_bytes()
        if row["preview_type"].startswith("image/"):
            media = f'<img alt="samples of {e(name)}" src="data:{row["preview_type"]};base64,{base64.b64encode(data).decode()}">'
        elif row["preview_type"].startswith("audio/"):
            media = (
                f'<audio controls src="data:{row["preview_type"]};base64,{base64.b64encode(data).decode()}"></audio>'
            )
        else:
            media = f"<pre>{e(data.decode(errors='replace'))}</pre>"
        samples.append(f"<figure><figcaption>{e(name)}</figcaption>{media}</figure>")
    curves = base64.b64encode(_curves_png(out, report)).decode()
    summary = "".join(f"<li>{e(line)}</li>" for line in report["summary"])
    m = report["machine"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'">
<title>genloom compare: {e(report["data"])}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: .35em .6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }} td.best {{ background: #e3f5e1; font-weight: bold; }}
small {{ color: #666; font-weight: normal; }} .samples {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }} figcaption {{ font-weight: bold; }} pre {{ max-width: 520px; white-space: pre-wrap; background: #f6f6f6; padding: .5em; }}
.samples img {{ image-rendering: pixelated; max-width: 360px; }}
</style></head><body>
<h1>Which model for <code>{e(report["data"])}</code>?</h1>
<p>Each model trained on the same data for the same budget ({e(report["budget"])}, seed {report["seed"]}) and was
evaluated with the same metrics; sampling speed is the median of its timed rounds
({max(len(r["speed_rounds"]) for r in report["runs"].values())} at most; fewer for samplers that take seconds a round). Machine: {e(str(m.get("cpu")))}, {m.get("threads")} threads, torch {e(str(m.get("torch")))}. ★ marks the best value of each column.</p>
<h2>Summary</h2><ul id="summary">{summary}</ul>
<h2>Results</h2><table id="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
<h2>Samples</h2><div class="samples" id="samples">{"".join(samples)}</div>
<h2>Learning curves</h2><img id="curves" alt="learning curves" src="data:image/png;base64,{curves}">
</body></html>
"""
