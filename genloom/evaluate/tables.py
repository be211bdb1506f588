"""How good, how useful and how private a synthetic table is: the report `genloom eval` writes for table runs.

- **Quality**, as SDMetrics defines it (docs.sdv.dev, "Quality Report"; the classic definition in which
  every column pair counts): column shapes (KS complement 1 − D for continuous columns, TV complement
  1 − ½Σ|p − q| for discrete ones) and column-pair trends (correlation similarity 1 − |r − r̃|/2 of the
  Pearson correlations for two continuous columns, contingency similarity 1 − ½Σ|P − Q| of the joint
  shares otherwise, a continuous column cut into 10 bins of its own range first); quality is their mean.
  tests/tables/test_quality.py checks every number against the `sdmetrics` package.
- **Utility**: train on synthetic, test on real (TSTR) against train on real: a fixed scikit-learn model
  (a random forest of 100 trees, random_state 0) predicts the target column of the holdout rows; macro F1
  for a discrete target, R² for a continuous one.
- **Privacy**: the share of synthetic rows that copy a training row exactly (beside the same share for
  the real holdout rows: what a perfect model of the population would give); distance to the closest
  record (DCR, Gower: mean over columns of |Δ|/range for continuous, mismatch for discrete): the share of
  synthetic rows closer to the training rows than to the holdout (the mean over 5 subsamples of train, each as large as
  the holdout, ties counted half; 0.5 is ideal, 1.0 means memorized), and the median DCR against that of
  uniformly random rows (1.0: as far from the training rows as random rows are).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, pearsonr

from genloom.data.tables import CONTINUOUS_KINDS, TableSchema, _to_number

SUBSAMPLES = 5  # train subsamples the closer-to-train share averages over (it varies with the draw)


def quality_columns(schema: TableSchema) -> dict[str, str]:
    """The columns quality scores, each "continuous" or "discrete" (identifiers and free text are not)."""
    out = {}
    for c in schema.columns:
        if c.modelled:
            out[c.name] = "continuous" if c.kind in CONTINUOUS_KINDS else "discrete"
    return out


def _numbers(values: pd.Series, kind: str) -> pd.Series:
    return pd.Series(_to_number(values, kind), index=values.index)


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 − the two-sample Kolmogorov–Smirnov statistic of the non-missing values."""
    a, b = real.dropna(), synthetic.dropna()
    if len(a) == 0 or len(b) == 0:
        return math.nan
    return float(1 - ks_2samp(a.round(14), b.round(14)).statistic)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 − the total variation distance of the category shares (missing values left out)."""
    p = real.dropna().value_counts(normalize=True)
    q = synthetic.dropna().value_counts(normalize=True)
    if len(p) == 0 or len(q) == 0:
        return math.nan
    p, q = p.align(q, fill_value=0.0)
    return float(1 - 0.5 * np.abs(p - q).sum())


def correlation_similarity(real: pd.DataFrame, synthetic: pd.DataFrame) -> tuple[float, float, float]:
    """(1 − |r − r̃|/2, r, r̃) of the Pearson correlations of two continuous columns (rows with a gap dropped)."""
    a, b = real.dropna(), synthetic.dropna()
    if min(len(a), len(b)) < 2 or (a.nunique() < 2).any() or (b.nunique() < 2).any():
        return math.nan, math.nan, math.nan  # a constant column has no correlation (SDMetrics leaves it out)
    r = float(pearsonr(a.iloc[:, 0], a.iloc[:, 1])[0])
    s = float(pearsonr(b.iloc[:, 0], b.iloc[:, 1])[0])
    return 1 - abs(r - s) / 2, r, s


def contingency_similarity(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """1 − the total variation distance of the two columns' joint shares (missing is a value here)."""
    cols = list(real.columns)
    p = real.groupby(cols, dropna=False).size() / len(real)
    q = synthetic.groupby(cols, dropna=False).size() / len(synthetic)
    p, q = p.align(q, fill_value=0.0)
    return float(1 - 0.5 * np.abs(p - q).sum())


def _bins(values: pd.Series) -> np.ndarray:
    """A continuous column cut into 10 equal bins of its own range (missing: one more bin)."""
    present = values.dropna()
    edges = np.histogram_bin_edges(present) if len(present) else np.array([0.0, 1.0])
    return np.digitize(values.to_numpy(dtype=float), bins=edges)


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict[str, Any]:
    """Column shapes, column-pair trends and their mean, with the score of every column and pair."""
    columns = quality_columns(schema)
    kinds = {c.name: c.kind for c in schema.columns}
    r = {c: _numbers(real[c], kinds[c]) if t == "continuous" else real[c] for c, t in columns.items()}
    s = {c: _numbers(synthetic[c], kinds[c]) if t == "continuous" else synthetic[c] for c, t in columns.items()}
    shapes = {
        c: ks_complement(r[c], s[c]) if t == "continuous" else tv_complement(r[c], s[c]) for c, t in columns.items()
    }
    binned_r = {c: pd.Series(_bins(r[c])) for c, t in columns.items() if t == "continuous"}
    binned_s = {c: pd.Series(_bins(s[c])) for c, t in columns.items() if t == "continuous"}
    pairs: dict[tuple[str, str], float] = {}
    correlations: dict[tuple[str, str], tuple[float, float]] = {}
    for a, b in itertools.combinations(columns, 2):
        if columns[a] == columns[b] == "continuous":
            score, rr, ss = correlation_similarity(
                pd.concat([r[a], r[b]], axis=1, keys=[a, b]), pd.concat([s[a], s[b]], axis=1, keys=[a, b])
            )
            pairs[(a, b)] = score
            correlations[(a, b)] = (rr, ss)
            continue
        ra = binned_r[a] if columns[a] == "continuous" else r[a].reset_index(drop=True)
        rb = binned_r[b] if columns[b] == "continuous" else r[b].reset_index(drop=True)
        sa = binned_s[a] if columns[a] == "continuous" else s[a].reset_index(drop=True)
        sb = binned_s[b] if columns[b] == "continuous" else s[b].reset_index(drop=True)
        pairs[(a, b)] = contingency_similarity(
            pd.concat([ra, rb], axis=1, keys=[a, b]), pd.concat([sa, sb], axis=1, keys=[a, b])
        )
    shape_score = float(np.nanmean(list(shapes.values()))) if shapes else math.nan
    pair_values = [v for v in pairs.values() if not math.isnan(v)]
    pair_score = float(np.mean(pair_values)) if pair_values else math.nan
    overall = float(np.nanmean([shape_score, pair_score]))
    return {
        "quality": overall,
        "column_shapes": shape_score,
        "column_pair_trends": pair_score,
        "shapes": shapes,
        "pairs": pairs,
        "correlations": correlations,
    }


# ---- utility: train on synthetic, test on real -------------------------------------------------


def _features(df: pd.DataFrame, schema: TableSchema, target: str) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Model inputs: continuous columns as numbers, discrete ones as codes (the schema's); and the target."""
    xs, discrete = [], []
    codes = schema.codes(df)
    disc = [f for f in schema.features if f.role != "continuous"]
    for c in schema.columns:
        if not c.modelled or c.name == target:
            continue
        if c.discrete:
            xs.append(codes[:, disc.index(next(f for f in disc if f.column == c.name and f.role == "discrete"))])
            discrete.append(True)
        else:
            xs.append(_to_number(df[c.name], c.kind))
            discrete.append(False)
    spec = schema.spec(target)
    if spec.discrete:
        y = codes[:, disc.index(next(f for f in disc if f.column == target and f.role == "discrete"))]
    else:
        y = _to_number(df[target], spec.kind)
    return np.stack(xs, axis=1).astype(float), y, discrete


def _fit_score(train: pd.DataFrame, test: pd.DataFrame, schema: TableSchema, target: str) -> float:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import f1_score, r2_score

    x, y, _ = _features(train, schema, target)
    xt, yt, _ = _features(test, schema, target)
    keep, keep_t = ~pd.isna(y), ~pd.isna(yt)
    x, y, xt, yt = x[keep], y[keep], xt[keep_t], yt[keep_t]
    if schema.spec(target).discrete:
        if len(np.unique(y)) < 2:  # the training rows have one class: the model can only predict it
            return float(f1_score(yt, np.full_like(yt, y[0]), average="macro"))
        clf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
        return float(f1_score(yt, clf.fit(x, y).predict(xt), average="macro"))
    reg = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1)
    return float(r2_score(yt, reg.fit(x, y).predict(xt)))


def utility(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema) -> dict[str, Any]:
    """TSTR: the fixed model's score on the holdout when trained on synthetic rows and on real rows."""
    target = schema.target
    spec = schema.spec(target)
    if not spec.modelled:
        return {}
    metric = "f1" if spec.discrete else "r2"
    real = _fit_score(train, holdout, schema, target)
    synth = _fit_score(synthetic, holdout, schema, target)
    return {
        f"tstr_{metric}": synth,
        f"trtr_{metric}": real,
        "utility_ratio": synth / real if real > 0 else math.nan,
        "utility_metric": f"{'macro F1' if metric == 'f1' else 'R²'} predicting {target!r}",
    }


# ---- privacy: copies and distances to the closest record -----------------------------------------


def _distance_matrix(df: pd.DataFrame, schema: TableSchema) -> np.ndarray:
    """Rows in a space where the L1 distance over the column count is the Gower distance: continuous
    columns scaled by their training range (a missing value 1 away from every number), discrete ones
    one-hot times ½ (a mismatch costs 1)."""
    parts = []
    codes = schema.codes(df)
    disc = [f for f in schema.features if f.role != "continuous"]
    for c in schema.columns:
        if not c.modelled:
            continue
        if c.discrete:
            i = disc.index(next(f for f in disc if f.column == c.name and f.role == "discrete"))
            parts.append(0.5 * np.eye(disc[i].size)[codes[:, i]])
        else:
            x = _to_number(df[c.name], c.kind)
            scaled = (x - c.low) / ((c.high - c.low) or 1.0)
            parts.append(np.where(np.isnan(x), -1.0, np.clip(scaled, -1, 2))[:, None])
    return np.concatenate(parts, axis=1)


def _nearest(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=1, metric="manhattan").fit(reference)
    return nn.kneighbors(query)[0][:, 0]


def row_keys(df: pd.DataFrame, schema: TableSchema) -> list[bytes]:
    """Each row's modelled values as bytes (continuous ones at their kept decimals), for exact matching."""
    x = _distance_matrix(df, schema)
    return [row.tobytes() for row in np.round(x, 9)]


def privacy(
    train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema, seed: int = 0
) -> dict[str, Any]:
    """Exact copies, the share closer to train than to holdout, and DCR against a uniform baseline."""
    rng = np.random.default_rng(seed)
    width = sum(c.modelled for c in schema.columns)
    train_keys = set(row_keys(train, schema))
    copies = float(np.mean([k in train_keys for k in row_keys(synthetic, schema)]))
    holdout_copies = float(np.mean([k in train_keys for k in row_keys(holdout, schema)]))
    x_train, x_hold, x_syn = (_distance_matrix(d, schema) for d in (train, holdout, synthetic))
    d_hold = _nearest(x_syn, x_hold) / width
    shares = []
    for _ in range(SUBSAMPLES):  # several subsamples of train, each as large as the holdout: 0.5 is ideal
        subset = x_train[rng.choice(len(x_train), min(len(x_hold), len(x_train)), replace=False)]
        d_train = _nearest(x_syn, subset) / width
        shares.append(np.mean(d_train < d_hold) + 0.5 * np.mean(d_train == d_hold))
    closer = float(np.mean(shares))
    uniform = _uniform_rows(schema, len(synthetic), rng)
    dcr_syn = float(np.median(_nearest(x_syn, x_train) / width))
    dcr_uniform = float(np.median(_nearest(_distance_matrix(uniform, schema), x_train) / width))
    return {
        "exact_copies": copies,
        "holdout_exact_copies": holdout_copies,
        "closer_to_train": closer,
        "dcr_median": dcr_syn,
        "dcr_uniform_median": dcr_uniform,
        "dcr_baseline_protection": min(1.0, dcr_syn / dcr_uniform) if dcr_uniform > 0 else math.nan,
    }


def _uniform_rows(schema: TableSchema, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Rows drawn uniformly: each continuous column within its bounds, each discrete one over its categories."""
    out: dict[str, Any] = {}
    for c in schema.columns:
        if not c.modelled:
            continue
        if c.discrete:
            out[c.name] = [c.categories[i] for i in rng.integers(0, len(c.categories), n)]
        else:
            x = rng.uniform(c.low, c.high, n)
            out[c.name] = pd.to_datetime(x * 1e9, unit="ns") if c.kind == "datetime" else x
    return pd.DataFrame(out)


# ---- the HTML page ---------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def report_html(
    title: str,
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    scores: dict[str, Any],
    metrics: dict[str, Any],
) -> str:
    """One self-contained page: the figures, real-vs-synthetic plots per column, correlation differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = quality_columns(schema)
    kinds = {c.name: c.kind for c in schema.columns}
    ncols = 4
    nrows = max(1, math.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.6 * nrows), squeeze=False)
    for ax, (name, kind) in zip(axes.flat, columns.items(), strict=False):
        if kind == "continuous":
            a, b = _to_number(real[name], kinds[name]), _to_number(synthetic[name], kinds[name])
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=30)
            ax.hist(a, bins=edges, density=True, alpha=0.5, label="real (train)")
            ax.hist(b, bins=edges, density=True, alpha=0.5, label="synthetic")
        else:
            p = real[name].astype(str).value_counts(normalize=True)
            q = synthetic[name].astype(str).value_counts(normalize=True)
            cats = list(p.index[:15])
            xs = np.arange(len(cats))
            ax.bar(xs - 0.2, [p.get(k, 0) for k in cats], 0.4, label="real (train)")
            ax.bar(xs + 0.2, [q.get(k, 0) for k in cats], 0.4, label="synthetic")
            ax.set_xticks(xs, [k[:8] for k in cats], fontsize=7, rotation=45)
        ax.set_title(f"{name[:30]} ({scores['shapes'][name]:.2f})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    columns_png = _png(fig)

    names = list(columns)
    diff = np.full((len(names), len(names)), np.nan)
    for (a, b), (r, s) in scores["correlations"].items():
        i, j = names.index(a), names.index(b)
        diff[i, j] = diff[j, i] = r - s
    trend = np.zeros((len(names), len(names)))
    for (a, b), score in scores["pairs"].items():
        i, j = names.index(a), names.index(b)
        trend[i, j] = trend[j, i] = 1 - score if not math.isnan(score) else np.nan
    side = max(5.0, 0.28 * len(names) + 2)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(2 * side, side))
    im = ax1.imshow(diff, cmap="RdBu", vmin=-1, vmax=1)
    ax1.set_title("Pearson correlation: real − synthetic", fontsize=10)
    fig.colorbar(im, ax=ax1, shrink=0.7)
    im = ax2.imshow(trend, cmap="Reds", vmin=0, vmax=0.5)
    ax2.set_title("1 − pair trend score (all pairs)", fontsize=10)
    fig.colorbar(im, ax=ax2, shrink=0.7)
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(names)), [n[:14] for n in names], rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), [n[:14] for n in names], fontsize=7)
    fig.tight_layout()
    heat_png = _png(fig)

    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in metrics.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}td{{padding:2px 12px}}img{{max-width:100%}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Quality as SDMetrics defines it (column shapes and column-pair trends, and their mean); utility as
train-on-synthetic / test-on-real against train-on-real; privacy as exact copies and distance to the closest
record (docs/tables.md explains each).</p>
<table>{rows}</table>
<h2>Columns: real (train) against synthetic</h2>
<p>Each title holds the column-shape score (KS or TV complement).</p>
<img alt="per-column distributions" src="data:image/png;base64,{columns_png}">
<h2>Pairs of columns</h2>
<img alt="correlation difference heat map" src="data:image/png;base64,{heat_png}">
</body></html>
"""
