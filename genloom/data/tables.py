"""Tables in: CSV and Parquet files (pandas, pyarrow) or a bundled dataset, column types detected and
overridable, a holdout split kept aside, and the fitted schema every table family shares.

The pipeline, in order: read the table → detect each column's kind (numeric, integer, categorical,
boolean, datetime, text, id; `data.types` overrides) → refuse what cannot be modelled (an empty table, a
single row, an all-missing column, a column mixing numbers and words) → split rows into train and
holdout (the holdout is never trained on: utility and privacy are measured against it) → fit the
`TableSchema` on the train rows: per column its bounds, decimals, missing share, categories, and for
continuous columns a quantile function (the marginal) and a Gaussian mixture (the modes of Xu et al.
2019). The schema is plain JSON (`table.json` in the run), so nothing is unpickled to load a run.

Two encodings of rows serve the families:
- "quantile" (copula, tabddpm): each continuous column as a normal score Φ⁻¹(F(x)) through its fitted
  quantile function; each discrete column as an integer code.
- "modes" (tvae, ctgan): mode-specific normalization (Xu et al. 2019, §4.2): a continuous value as
  (α, one-hot mode) with α = (x − μ_k) / 4σ_k for the mode k drawn from its posterior; discrete columns
  one-hot.
In both, a continuous column with missing values gets an extra discrete "missing" column, and a
discrete column's missing values are one more category, so missingness is modelled, not imputed.
A numeric column with few distinct values (`data.discrete_max`) keeps exactly those values: it is
modelled as an ordered discrete column, so samples never fall between the values the data has.
Identifier and free-text columns are never modelled as values: samples get fresh identifiers and
empty text.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtr, ndtri

from genloom.errors import UserError

Kind = Literal["numeric", "integer", "categorical", "boolean", "datetime", "text", "id"]
KINDS: tuple[str, ...] = ("numeric", "integer", "categorical", "boolean", "datetime", "text", "id")
CONTINUOUS_KINDS = ("numeric", "integer", "datetime")  # modelled as numbers (unless few distinct values)
BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "t": True, "f": False, "y": True, "n": False}
Z_CLIP = 5.0  # normal scores are clipped to ±5 (u within 3e-7 of 0 or 1)
MIN_ROWS = 2


@dataclass
class TableDataConfig:
    source: str = "wine"  # a bundled table (wine, breast_cancer, fair) or a CSV / Parquet file
    target: str = ""  # the column the utility score predicts ("": the bundled table's label, else the last column)
    types: str = ""  # kind overrides, "col=categorical,other=id" (numeric integer categorical boolean datetime text id)
    holdout: float = 0.2  # share of rows kept aside, never trained on: utility and privacy are measured on them
    split_seed: int = 0  # seed of the row permutation that makes the split
    discrete_max: int = 20  # a numeric column with at most this many distinct values keeps exactly those values
    quantiles: int = 256  # points of each continuous column's quantile function (its fitted marginal)
    max_modes: int = 10  # mode-specific normalization: Gaussian modes per continuous column (Xu et al. use 10)
    # sampling redraws any row identical to a training row (reads the training rows again at sampling time).
    # Off by default: on a table whose columns take few values, new real rows repeat training rows too
    reject_copies: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 0.9:
            raise ValueError(f"holdout must be a share between 0 and 0.9, got {self.holdout}")
        if self.discrete_max < 0:
            raise ValueError(f"discrete_max must be >= 0, got {self.discrete_max}")
        if self.quantiles < 2:
            raise ValueError(f"quantiles must be at least 2, got {self.quantiles}")
        if self.max_modes < 1:
            raise ValueError(f"max_modes must be at least 1, got {self.max_modes}")


# ---- reading -----------------------------------------------------------------------------------

BUNDLED_TABLES = {  # name -> (label column, provenance for the card)
    "wine": ("target", "scikit-learn's bundled `wine` (UCI Wine recognition, 178 rows, 13 measurements + cultivar)."),
    "breast_cancer": (
        "target",
        "scikit-learn's bundled `breast_cancer` (UCI Wisconsin diagnostic, 569 rows, 30 features + diagnosis).",
    ),
    "fair": (
        "rate_marriage",
        "statsmodels' bundled `fair` (Fair 1978, extramarital affairs survey, 6366 rows, 9 columns).",
    ),
}


def read_table(source: str) -> pd.DataFrame:
    """The table named by `source`: a bundled name, or a .csv / .parquet file."""
    if source in ("wine", "breast_cancer"):
        from sklearn import datasets

        loader = datasets.load_wine if source == "wine" else datasets.load_breast_cancer
        return loader(as_frame=True).frame
    if source == "fair":
        try:
            from statsmodels.datasets import fair
        except ImportError:
            raise UserError("--data fair needs statsmodels: pip install statsmodels") from None
        return fair.load_pandas().data
    path = Path(source)
    if not path.exists():
        raise UserError(f"--data {source}: no such file, and not a bundled table ({', '.join(BUNDLED_TABLES)})")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise UserError(f"{path}: the table is empty (no header, no rows)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except Exception as e:  # pyarrow raises ArrowInvalid (and OSError) for a file that is not Parquet
            raise UserError(f"{path}: not a Parquet file ({str(e).splitlines()[0]})") from None
    raise UserError(f"--data {source}: expected a .csv or .parquet file")


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write rows as CSV or Parquet (by the suffix), atomically: readers see the old file or the new one."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserError(f"--out {path}: expected a .csv or .parquet file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    tmp.replace(path)


# ---- column kinds ------------------------------------------------------------------------------


def parse_types(text: str) -> dict[str, str]:
    """`data.types` ("col=categorical,other=id") as a dict, each kind checked."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, eq, kind = item.rpartition("=")
        if not eq or not name.strip():
            raise UserError(f"data.types: {item!r} is not COLUMN=KIND (e.g. zip=categorical)")
        if kind.strip() not in KINDS:
            raise UserError(f"data.types: {kind.strip()!r} for {name.strip()!r} is not one of {', '.join(KINDS)}")
        out[name.strip()] = kind.strip()
    return out


def _numbers(values: pd.Series) -> pd.Series:
    """Which of a text column's values read as numbers."""
    return pd.to_numeric(values, errors="coerce").notna()


def detect_kind(name: str, values: pd.Series, notes: list[str]) -> str:
    """The kind of one column from its non-missing values (pandas dtypes first, then the strings)."""
    present = values.dropna()
    n = len(present)
    if pd.api.types.is_bool_dtype(present):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(present):
        return "datetime"
    if pd.api.types.is_numeric_dtype(present):
        whole = bool(np.all(np.mod(present.to_numpy(dtype=float), 1) == 0))
        if whole and n > 20 and present.is_unique and present.is_monotonic_increasing:
            notes.append(f"column {name!r}: every value is new and in order; treated as an identifier")
            return "id"
        return "integer" if whole else "numeric"
    strings = present.astype(str)
    if strings.str.lower().isin(BOOL_WORDS).all() and strings.str.lower().nunique() <= 2:
        return "boolean"
    is_number = _numbers(strings)
    if 0 < is_number.sum() < n:
        words = strings[~is_number]
        if is_number.mean() >= 0.5:  # mostly numbers with some words: a mistake to point at, not a category
            raise UserError(
                f"column {name!r} mixes numbers and text ({int(is_number.sum())} numbers, {len(words)} other values "
                f"such as {words.iloc[0]!r}); clean it, or set data.types={name}=categorical"
            )
    if is_number.all() and n:
        return "integer" if bool(np.all(np.mod(pd.to_numeric(strings), 1) == 0)) else "numeric"
    if n and not is_number.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(strings, errors="coerce", format="mixed")
        if parsed.notna().all() and strings.str.contains(r"\d{1,4}[-/:]\d", regex=True).all():
            return "datetime"
    unique = strings.nunique()
    if n > 1 and unique == n:
        spaced = strings.str.contains(" ").mean() > 0.5
        kind = "text" if spaced else "id"
        notes.append(f"column {name!r}: as many categories as rows ({n}); treated as {kind}, not modelled as values")
        return kind
    if n >= 20 and unique > 0.5 * n and strings.str.contains(" ").mean() > 0.5:
        notes.append(f"column {name!r}: mostly distinct multi-word values; treated as free text, not modelled")
        return "text"
    return "categorical"


def detect_kinds(df: pd.DataFrame, overrides: dict[str, str], notes: list[str]) -> dict[str, str]:
    """Every column's kind: `overrides` first, else detected; refuses a column that is all missing."""
    unknown = [c for c in overrides if c not in df.columns]
    if unknown:
        raise UserError(f"data.types: no column {unknown[0]!r}; the columns are {', '.join(map(str, df.columns))}")
    kinds = {}
    for col in df.columns:
        if df[col].isna().all():
            raise UserError(f"column {col!r} is missing in every row; drop it (nothing to learn from)")
        kinds[str(col)] = overrides.get(str(col)) or detect_kind(str(col), df[col], notes)
    if all(k in ("id", "text") for k in kinds.values()):
        raise UserError("no column to model: every column is an identifier or free text (see data.types)")
    return kinds


# ---- the fitted schema -------------------------------------------------------------------------


@dataclass
class ColumnSpec:
    """One column, as fitted on the train rows (JSON-able)."""

    name: str
    kind: str
    missing: float = 0.0  # share of missing values in train
    categories: list[Any] = field(default_factory=list)  # discrete columns: values in code order
    low: float = 0.0  # continuous columns: bounds kept on output
    high: float = 0.0
    decimals: int = 0  # digits after the point kept on output (numeric)
    knots: list[float] = field(default_factory=list)  # quantile function at evenly spaced levels
    modes: list[list[float]] = field(default_factory=list)  # (weight, mean, std) of each Gaussian mode
    dtype: str = ""  # the pandas dtype of the input, restored on output
    shares: list[float] = field(default_factory=list)  # discrete columns: share of each category (then missing)

    @property
    def modelled(self) -> bool:
        return self.kind not in ("id", "text")

    @property
    def discrete(self) -> bool:
        return self.modelled and bool(self.categories)


@dataclass
class Feature:
    """One modelled variable: a continuous column, a discrete column, or a continuous column's missing flag."""

    column: str
    role: Literal["continuous", "discrete", "missing"]
    size: int = 1  # categories of a discrete or missing feature (missing: 2, present/absent)


def _decimals(values: np.ndarray) -> int:
    """Digits after the point the values are written with (at most 6)."""
    for d in range(7):
        if np.allclose(values, np.round(values, d), rtol=0, atol=1e-9 * max(1.0, float(np.abs(values).max()))):
            return d
    return 6


def _to_number(values: pd.Series, kind: str) -> np.ndarray:
    """A continuous column as float64 (datetimes as seconds since the epoch; NaN stays NaN)."""
    if kind == "datetime":
        parsed = pd.to_datetime(values, errors="coerce", format="mixed") if values.dtype == object else values
        stamps = pd.to_datetime(parsed)
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert(None)
        out = stamps.astype("datetime64[ns]").astype("int64").to_numpy().astype(float) / 1e9
        out[stamps.isna().to_numpy()] = np.nan
        return out
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _json_value(v: Any) -> Any:
    """A category as a JSON value (numpy scalars to Python, everything else to str)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return str(v)


def _fit_modes(x: np.ndarray, max_modes: int, seed: int) -> list[list[float]]:
    """A variational Gaussian mixture (scikit-learn) over one column's values: (weight, mean, std) of the
    modes it keeps (weight > 0.5%), the mode-specific normalization of Xu et al. 2019."""
    from sklearn.mixture import BayesianGaussianMixture

    rng = np.random.default_rng(seed)
    fit_on = x if len(x) <= 5000 else rng.choice(x, 5000, replace=False)
    k = max(1, min(max_modes, len(np.unique(fit_on))))
    spread = float(np.std(fit_on)) or 1.0
    gm = BayesianGaussianMixture(
        n_components=k,
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=0.001,  # few modes unless the data asks for more
        max_iter=100,
        n_init=1,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on small columns: the fit is still usable
        gm.fit((fit_on / spread).reshape(-1, 1))
    keep = gm.weights_ > 0.005
    if not keep.any():
        keep = gm.weights_ == gm.weights_.max()
    weights = gm.weights_[keep] / gm.weights_[keep].sum()
    means = gm.means_[keep, 0] * spread
    stds = np.sqrt(gm.covariances_[keep].reshape(-1)) * spread
    return [[float(w), float(m), max(float(s), 1e-6 * spread)] for w, m, s in zip(weights, means, stds, strict=True)]


@dataclass
class TableSchema:
    """The fitted description of a table: its columns in order, which are modelled and how."""

    columns: list[ColumnSpec]
    target: str  # the utility score's label column
    rows: int = 0  # training rows it was fitted on (DP-SGD's sampling rate)

    # -- building --
    @classmethod
    def fit(
        cls, train: pd.DataFrame, kinds: dict[str, str], cfg: TableDataConfig, target: str, modes: bool = True
    ) -> TableSchema:
        """Fit on the train rows; `modes`: also the Gaussian modes (only the "modes" encoding needs them)."""
        columns = []
        for name in train.columns:
            kind = kinds[str(name)]
            values = train[name]
            spec = ColumnSpec(name=str(name), kind=kind, missing=float(values.isna().mean()), dtype=str(values.dtype))
            present = values.dropna()
            if kind in ("categorical", "boolean"):
                counts = present.value_counts()  # most frequent first: the copula's category order
                spec.categories = [_json_value(v) for v in counts.index]
                spec.shares = [float(c) / len(values) for c in counts.to_numpy()]
            elif kind in CONTINUOUS_KINDS:
                x = _to_number(present, kind)
                spec.low, spec.high = float(x.min()), float(x.max())
                spec.decimals = 0 if kind != "numeric" else _decimals(x)
                distinct = np.unique(x)
                if len(distinct) <= cfg.discrete_max or len(distinct) == 1:
                    spec.categories = [_json_value(v) for v in distinct]  # ordered by value
                    spec.shares = [float(np.mean(x == v)) * len(x) / len(values) for v in distinct]
                else:
                    levels = np.linspace(0, 1, min(cfg.quantiles, len(x)))
                    spec.knots = [float(v) for v in np.quantile(x, levels)]
                    spec.modes = _fit_modes(x, cfg.max_modes, cfg.split_seed) if modes else []
            columns.append(spec)
        return cls(columns, target, len(train))

    def to_json(self) -> str:
        return json.dumps(
            {"target": self.target, "rows": self.rows, "columns": [vars(c) for c in self.columns]}, indent=1
        )

    @classmethod
    def from_json(cls, text: str) -> TableSchema:
        raw = json.loads(text)
        return cls([ColumnSpec(**c) for c in raw["columns"]], raw["target"], int(raw.get("rows", 0)))

    # -- the modelled variables --
    def spec(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def features(self) -> list[Feature]:
        """Continuous features first, then discrete ones (discrete columns, then missing flags)."""
        cont = [Feature(c.name, "continuous") for c in self.columns if c.modelled and not c.discrete]
        disc = [Feature(c.name, "discrete", len(c.categories) + (c.missing > 0)) for c in self.columns if c.discrete]
        flags = [Feature(c.name, "missing", 2) for c in self.columns if c.modelled and not c.discrete and c.missing > 0]
        return cont + disc + flags

    def feature_shares(self) -> list[list[float]]:
        """Each discrete feature's category shares in the train rows (missing last), for sampling conditions."""
        out = []
        for f in self.features:
            spec = self.spec(f.column)
            if f.role == "discrete":
                out.append(spec.shares + ([spec.missing] if spec.missing > 0 else []))
            elif f.role == "missing":
                out.append([1 - spec.missing, spec.missing])
        return out

    @property
    def n_continuous(self) -> int:
        return sum(f.role == "continuous" for f in self.features)

    @property
    def cardinalities(self) -> list[int]:
        return [f.size for f in self.features if f.role != "continuous"]

    # -- quantile encoding: normal scores and codes --
    def codes(self, df: pd.DataFrame) -> np.ndarray:
        """Integer codes (n, discrete features); a missing value is the last category."""
        out = []
        for f in self.features:
            if f.role == "continuous":
                continue
            spec = self.spec(f.column)
            values = df[f.column]
            if f.role == "missing":
                out.append(values.isna().to_numpy().astype(np.int64))
                continue
            if spec.kind in CONTINUOUS_KINDS:
                values = pd.Series(_to_number(values, spec.kind), index=values.index)
            index = {_json_value(v): i for i, v in enumerate(spec.categories)}
            missing_code = len(spec.categories) if spec.missing > 0 else None
            codes = np.empty(len(values), dtype=np.int64)
            for i, v in enumerate(values.tolist()):
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    codes[i] = missing_code if missing_code is not None else 0
                else:
                    codes[i] = index.get(_json_value(v), 0)  # a value unseen in train (holdout): the most frequent
            out.append(codes)
        return np.stack(out, axis=1) if out else np.zeros((len(df), 0), dtype=np.int64)

    def raw_continuous(self, df: pd.DataFrame) -> np.ndarray:
        """Continuous columns as float64 (n, continuous features), NaN where missing."""
        cols = [self.spec(f.column) for f in self.features if f.role == "continuous"]
        if not cols:
            return np.zeros((len(df), 0))
        return np.stack([_to_number(df[c.name], c.kind) for c in cols], axis=1)

    def normal_scores(self, df: pd.DataFrame) -> np.ndarray:
        """Φ⁻¹(F(x)) of every continuous column through its quantile function (0 where missing)."""
        raw = self.raw_continuous(df)
        cols = [self.spec(f.column) for f in self.features if f.role == "continuous"]
        out = np.zeros_like(raw)
        for j, c in enumerate(cols):
            knots = np.asarray(c.knots)
            levels = np.linspace(0, 1, len(knots))
            # a value inside a run of equal knots (an atom, e.g. many zeros) maps to the run's middle level
            unique, inverse = np.unique(knots, return_inverse=True)
            middle = np.bincount(inverse, levels) / np.bincount(inverse)
            u = np.interp(raw[:, j], unique, middle)
            z = ndtri(np.clip(u, ndtr(-Z_CLIP), ndtr(Z_CLIP)))
            out[:, j] = np.where(np.isnan(raw[:, j]), 0.0, z)
        return out

    def from_normal_scores(self, z: np.ndarray) -> np.ndarray:
        """The inverse: values of the continuous columns from their normal scores."""
        cols = [self.spec(f.column) for f in self.features if f.role == "continuous"]
        out = np.zeros_like(z, dtype=float)
        for j, c in enumerate(cols):
            knots = np.asarray(c.knots)
            out[:, j] = np.interp(ndtr(z[:, j]), np.linspace(0, 1, len(knots)), knots)
        return out

    # -- modes encoding (Xu et al. 2019) --
    def spans(self) -> list[tuple[str, int]]:
        """The "modes" matrix's blocks in order: ("tanh", 1) for an α, ("softmax", k) for a one-hot."""
        out: list[tuple[str, int]] = []
        for f in self.features:
            if f.role == "continuous":
                out += [("tanh", 1), ("softmax", len(self.spec(f.column).modes))]
            else:
                out.append(("softmax", f.size))
        return out

    def encode_modes(self, df: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """Rows as the "modes" matrix: per continuous column α and a one-hot mode drawn from its posterior
        (as CTGAN does), per discrete feature a one-hot."""
        rng = np.random.default_rng(seed)
        raw = self.raw_continuous(df)
        blocks = []
        cont = [self.spec(f.column) for f in self.features if f.role == "continuous"]
        for j, c in enumerate(cont):
            w, mu, sd = (np.asarray(m) for m in zip(*c.modes, strict=True))
            x = np.nan_to_num(raw[:, j], nan=float(np.average(mu, weights=w)))[:, None]
            log_post = np.log(w) - np.log(sd) - 0.5 * ((x - mu) / sd) ** 2  # (n, k)
            post = np.exp(log_post - log_post.max(1, keepdims=True))
            post /= post.sum(1, keepdims=True)
            k = (post.cumsum(1) > rng.random((len(x), 1))).argmax(1)
            alpha = np.clip((x[:, 0] - mu[k]) / (4 * sd[k]), -0.99, 0.99)
            blocks += [alpha[:, None], np.eye(len(w))[k]]
        codes = self.codes(df)
        for i, size in enumerate(self.cardinalities):
            blocks.append(np.eye(size)[codes[:, i]])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def decode_modes(self, alphas: np.ndarray, modes: np.ndarray) -> np.ndarray:
        """Continuous values from α (n, c) and chosen modes (n, c): x = 4σ_k α + μ_k."""
        cont = [self.spec(f.column) for f in self.features if f.role == "continuous"]
        out = np.zeros_like(alphas, dtype=float)
        for j, c in enumerate(cont):
            mu = np.asarray([m[1] for m in c.modes])
            sd = np.asarray([m[2] for m in c.modes])
            out[:, j] = alphas[:, j] * 4 * sd[modes[:, j]] + mu[modes[:, j]]
        return out

    def span_index(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Index tensors that let a model treat every block of the "modes" matrix at once: the α
        positions (c,), the one-hot positions (S, K) padded with 0 where a block has fewer than K
        categories, the padding mask (S, K), and which one-hot blocks are modes (S,)."""
        alphas, blocks, is_mode = [], [], []
        start = 0
        spans = self.spans()
        for i, (kind, size) in enumerate(spans):
            if kind == "tanh":
                alphas.append(start)
            else:
                blocks.append(list(range(start, start + size)))
                is_mode.append(i > 0 and spans[i - 1][0] == "tanh")
            start += size
        k = max((len(b) for b in blocks), default=1)
        index = torch.tensor([b + [0] * (k - len(b)) for b in blocks], dtype=torch.long).reshape(len(blocks), k)
        mask = torch.tensor([[True] * len(b) + [False] * (k - len(b)) for b in blocks]).reshape(len(blocks), k)
        return torch.tensor(alphas, dtype=torch.long), index, mask, torch.tensor(is_mode, dtype=torch.bool)

    def split_modes(
        self, out: torch.Tensor, generator: torch.Generator | None, sigma: torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A "modes" model's raw output (n, D) as rows: α = tanh of its slot (plus N(0, σ) noise when `sigma`
        gives one per continuous column, as TVAE's decoder does), each one-hot drawn from the softmax of
        its logits (the Gumbel-max trick). Returns (continuous values (n, c), discrete codes (n, d))."""
        alpha_at, index, mask, is_mode = self.span_index()
        alpha = torch.tanh(out[:, alpha_at])  # (n, c)
        if sigma is not None:
            alpha = alpha + sigma * torch.randn(alpha.shape, generator=generator)
        logits = out[:, index].float().masked_fill(~mask, -math.inf)  # (n, S, K)
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator).clamp(1e-12, 1 - 1e-7)))
        drawn = (logits + gumbel).argmax(-1)  # (n, S): a draw from each block's softmax
        modes, codes = drawn[:, is_mode].numpy(), drawn[:, ~is_mode].numpy()
        return self.decode_modes(alpha.clamp(-1, 1).numpy(), modes), codes

    # -- back to a table --
    def to_frame(self, continuous: np.ndarray, codes: np.ndarray, seed: int = 0) -> pd.DataFrame:
        """Sampled variables back to a table in the input's column order: bounds and decimals kept,
        missing values where the model put them, fresh identifiers, empty free text."""
        feats = self.features
        cont_index = {f.column: j for j, f in enumerate(f for f in feats if f.role == "continuous")}
        disc = [f for f in feats if f.role != "continuous"]
        code_index = {(f.column, f.role): i for i, f in enumerate(disc)}
        n = len(continuous) if continuous.size else len(codes)
        out: dict[str, Any] = {}
        for c in self.columns:
            if c.kind == "id":
                numeric = c.dtype.startswith(("int", "float", "Int"))
                out[c.name] = np.arange(n) if numeric else [f"{c.name}_{i:06d}" for i in range(n)]
                continue
            if c.kind == "text":
                out[c.name] = pd.Series([None] * n, dtype=object)
                continue
            if c.discrete:
                k = codes[:, code_index[(c.name, "discrete")]]
                values = pd.Series([c.categories[i] if i < len(c.categories) else None for i in k.tolist()])
            else:
                x = np.clip(continuous[:, cont_index[c.name]], c.low, c.high)
                x = np.round(x, c.decimals)
                if (c.name, "missing") in code_index:
                    x = np.where(codes[:, code_index[(c.name, "missing")]] == 1, np.nan, x)
                values = pd.Series(x)
            out[c.name] = self._restore(c, values)
        return pd.DataFrame(out)

    @staticmethod
    def _restore(c: ColumnSpec, values: pd.Series) -> pd.Series:
        """The input's dtype back: integers (nullable when missing), datetimes, booleans."""
        if c.kind == "datetime":
            return pd.to_datetime(pd.to_numeric(values) * 1e9, unit="ns").dt.round("s")
        if c.kind == "integer":
            numbers = pd.to_numeric(values).round()
            return numbers.astype("Int64") if numbers.isna().any() else numbers.astype("int64")
        if c.kind == "numeric":
            return pd.to_numeric(values)
        if c.kind == "boolean" and all(isinstance(v, bool) for v in c.categories):
            return values.astype("boolean") if values.isna().any() else values.astype(bool)
        return values


# ---- the data source ---------------------------------------------------------------------------


@dataclass
class TableSplits:
    """A table read, checked and split: train rows (modelled), holdout rows (never trained on)."""

    frame: pd.DataFrame
    train: pd.DataFrame
    holdout: pd.DataFrame
    kinds: dict[str, str]
    target: str
    notes: list[str]


def load_table(cfg: TableDataConfig) -> TableSplits:
    """Read `cfg.source`, check it, detect kinds and split rows (deterministic in `cfg.split_seed`)."""
    df = read_table(cfg.source)
    if df.shape[1] == 0 or len(df) == 0:
        raise UserError(f"--data {cfg.source}: the table is empty (no rows or no columns)")
    if len(df) < MIN_ROWS:
        raise UserError(f"--data {cfg.source}: a single row is not a table to learn from; need at least 10 rows")
    df.columns = [str(c) for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise UserError(f"--data {cfg.source}: column names repeat; give every column its own name")
    notes: list[str] = []
    kinds = detect_kinds(df, parse_types(cfg.types), notes)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    bundled_target = BUNDLED_TABLES[cfg.source][0] if cfg.source in BUNDLED_TABLES else ""
    target = cfg.target or bundled_target or str(df.columns[-1])
    if target not in df.columns:
        raise UserError(f"data.target: no column {target!r}; the columns are {', '.join(df.columns)}")
    n_holdout = max(1, round(cfg.holdout * len(df)))
    if len(df) - n_holdout < MIN_ROWS:
        raise UserError(f"--data {cfg.source}: {len(df)} rows leave too few to train on after the holdout")
    order = np.random.default_rng(cfg.split_seed).permutation(len(df))
    holdout = df.iloc[np.sort(order[:n_holdout])].reset_index(drop=True)
    train = df.iloc[np.sort(order[n_holdout:])].reset_index(drop=True)
    return TableSplits(df, train, holdout, kinds, target, notes)


class TableData:
    """Batches of encoded train rows for the Trainer; "val" batches come from the holdout (the loss
    estimate only, never a gradient).

    `encoding` is the family's: "quantile" gives (normal scores (B, c) float, codes (B, d) long);
    "modes" gives the (B, D) float matrix, or with `conditional` also CTGAN's condition vectors by
    training-by-sampling: a discrete column uniformly, a category with probability ∝ log(1 + count), a
    real row with that category (Xu et al. 2019, §4.3)."""

    def __init__(self, splits: TableSplits, schema: TableSchema, encoding: str, conditional: bool = False) -> None:
        self.splits, self.schema, self.encoding, self.conditional = splits, schema, encoding, conditional
        self.tensors: dict[str, tuple[torch.Tensor, ...]] = {}
        for name, df in (("train", splits.train), ("val", splits.holdout)):
            if encoding == "quantile":
                self.tensors[name] = (
                    torch.tensor(schema.normal_scores(df), dtype=torch.float32),
                    torch.tensor(schema.codes(df), dtype=torch.long),
                )
            else:
                self.tensors[name] = (torch.tensor(schema.encode_modes(df)),)
        codes = torch.tensor(schema.codes(splits.train), dtype=torch.long)
        self.cardinalities = schema.cardinalities
        # training-by-sampling tables: for each discrete feature, the rows of each category
        self.rows_of = [
            [torch.nonzero(codes[:, i] == c)[:, 0] for c in range(k)] for i, k in enumerate(self.cardinalities)
        ]
        self.log_freq = []
        for i, k in enumerate(self.cardinalities):
            counts = torch.bincount(codes[:, i], minlength=k).double()
            p = torch.log1p(counts) * (counts > 0)
            self.log_freq.append(p / p.sum())
        self.offsets = [0, *np.cumsum(self.cardinalities).tolist()]

    @property
    def cond_dim(self) -> int:
        return int(sum(self.cardinalities))

    def condition(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n condition vectors (n, cond_dim) with the chosen feature (n,) and category (n,)."""
        feature = torch.randint(0, len(self.cardinalities), (n,), generator=generator)
        category = torch.empty(n, dtype=torch.long)
        for i in feature.unique().tolist():
            rows = feature == i
            category[rows] = torch.multinomial(self.log_freq[i].float(), int(rows.sum()), True, generator=generator)
        cond = torch.zeros(n, self.cond_dim)
        cond[torch.arange(n), torch.tensor(self.offsets)[feature] + category] = 1.0
        return cond, feature, category

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> Any:
        tensors = self.tensors["train" if split == "train" else "val"]
        n = len(tensors[0])
        if not (self.conditional and split == "train" and self.cardinalities):
            index = torch.randint(0, n, (batch_size,), generator=generator)
            picked = tuple(t[index] for t in tensors)
            if self.conditional:  # no discrete column, or a val batch: no condition (zero vectors)
                return picked[0], torch.zeros(batch_size, self.cond_dim)
            return picked if len(picked) > 1 else picked[0]
        cond, feature, category = self.condition(batch_size, generator)
        index = torch.empty(batch_size, dtype=torch.long)
        for b in range(batch_size):
            rows = self.rows_of[int(feature[b])][int(category[b])]
            index[b] = rows[torch.randint(0, len(rows), (1,), generator=generator)]
        return tensors[0][index], cond
