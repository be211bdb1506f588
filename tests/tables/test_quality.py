"""Quality as SDMetrics defines it, checked against the `sdmetrics` package itself (within ±0.01) on a
mixed table (numbers, integers, categories, booleans, dates, missing values) and on wine; the utility
and privacy scores on cases whose answer is known."""

import numpy as np
import pandas as pd
import pytest
import torch

from genloom.data.tables import TableData, TableDataConfig, TableSchema, load_table
from genloom.evaluate.tables import privacy, quality, utility
from genloom.models.copula import Copula, CopulaConfig

SDTYPES = {"numeric": "numerical", "integer": "numerical", "datetime": "datetime", "categorical": "categorical"}


def metadata(schema: TableSchema) -> dict:
    columns = {}
    for c in schema.columns:
        if c.kind in ("id", "text"):
            columns[c.name] = {"sdtype": "id" if c.kind == "id" else "text"}
        else:
            columns[c.name] = {"sdtype": SDTYPES.get(c.kind, c.kind)}
        if c.kind == "datetime":
            columns[c.name]["datetime_format"] = "%Y-%m-%d"
    return {"columns": columns}


def copula_rows(source: str, n: int | None = None):
    config = TableDataConfig(source=source)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        splits = load_table(config)
    schema = TableSchema.fit(splits.train, splits.kinds, config, splits.target, modes=False)
    model = Copula(CopulaConfig(), schema)
    data = TableData(splits, schema, "quantile")
    model.fit(*data.tensors["train"], generator=torch.Generator().manual_seed(0))
    continuous, codes = model.sample(n or len(splits.train), torch.Generator().manual_seed(1))
    return splits, schema, schema.to_frame(continuous, codes)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("source", ["mixed", "wine"])
def test_quality_matches_sdmetrics(source, table_csv):
    pytest.importorskip("sdmetrics")
    from sdmetrics.reports.single_table import QualityReport  # the single-table report (deprecation warned)

    splits, schema, synthetic = copula_rows(str(table_csv) if source == "mixed" else source)
    ours = quality(splits.train, synthetic, schema)
    report = QualityReport()
    report.real_correlation_threshold = 0  # the classic definition: every column pair counts
    report.real_association_threshold = 0
    dated = synthetic.assign(joined=synthetic["joined"].dt.strftime("%Y-%m-%d")) if "joined" in synthetic else synthetic
    report.generate(splits.train, dated, metadata(schema), verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    assert ours["column_shapes"] == pytest.approx(properties["Column Shapes"], abs=0.01)
    assert ours["column_pair_trends"] == pytest.approx(properties["Column Pair Trends"], abs=0.01)
    assert ours["quality"] == pytest.approx(report.get_score(), abs=0.01)
    shapes = report.get_details("Column Shapes").set_index("Column")["Score"]
    for column, score in ours["shapes"].items():
        assert score == pytest.approx(shapes[column], abs=0.01), column
    assert 0.6 < ours["quality"] < 1.0  # a copula is good but not perfect


def test_quality_of_the_real_rows_themselves_is_one(table_csv):
    splits, schema, _ = copula_rows(str(table_csv))
    assert quality(splits.train, splits.train, schema)["quality"] == pytest.approx(1.0)


def test_privacy_flags_copies_and_memorization(table_csv):
    splits, schema, synthetic = copula_rows(str(table_csv))
    fresh = privacy(splits.train, splits.holdout, synthetic, schema)
    assert fresh["exact_copies"] == 0.0 and fresh["holdout_exact_copies"] == 0.0
    assert 0.3 < fresh["closer_to_train"] < 0.7
    copied = privacy(splits.train, splits.holdout, splits.train.sample(100, random_state=0), schema)
    assert copied["exact_copies"] == 1.0 and copied["dcr_median"] == 0.0
    # train is subsampled to the holdout's size, so a copy counts as closer to train only when its row is in
    # the subsample: with a train set as large as the holdout, copying reads 1.0
    small = splits.train.iloc[: len(splits.holdout)]
    assert privacy(small, splits.holdout, small, schema)["closer_to_train"] == 1.0
    assert copied["dcr_baseline_protection"] == 0.0 and fresh["dcr_baseline_protection"] > 0.1


def test_utility_of_real_rows_equals_the_baseline(table_csv):
    splits, schema, synthetic = copula_rows(str(table_csv))
    same = utility(splits.train, splits.holdout, splits.train, schema)
    assert same["tstr_f1"] == same["trtr_f1"] and same["utility_ratio"] == 1.0
    shuffled = splits.train.assign(label=np.random.default_rng(0).permutation(splits.train["label"].to_numpy()))
    noise = utility(splits.train, splits.holdout, shuffled, schema)
    assert noise["tstr_f1"] < same["tstr_f1"] - 0.2  # labels unrelated to the features teach nothing
    assert isinstance(pd.DataFrame(synthetic), pd.DataFrame)
