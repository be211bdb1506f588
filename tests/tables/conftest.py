"""A small mixed table every table test can write: numbers, integers, categories, booleans, dates, an
identifier, free text and missing values, with a dependence between columns for the pair scores."""

import numpy as np
import pandas as pd
import pytest


def mixed_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    income = np.round(rng.lognormal(10, 0.4, n) + (group == "north") * 5000, 2)
    age = rng.integers(18, 80, n)
    score = np.round(0.5 * (age - 50) / 18 + rng.normal(0, 1, n), 3)
    score[rng.random(n) < 0.1] = np.nan  # missing values, modelled as such
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "group": group,
            "income": income,
            "age": age,
            "score": score,
            "member": rng.random(n) < 0.4,
            "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
            "comment": [f"free text number {i} about things" for i in range(n)],
            "label": (income > np.median(income)).astype(int),
        }
    )


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "people.csv"
    mixed_table().to_csv(path, index=False)
    return path
