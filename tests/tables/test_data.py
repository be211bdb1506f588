"""The table data layer: kinds detected and overridden, the schema's round trip (bounds, decimals,
missing values, dtypes), the encodings, and bad input refused in one line or flagged by column."""

import numpy as np
import pandas as pd
import pytest
import torch

from genloom.data.tables import TableData, TableDataConfig, TableSchema, load_table
from genloom.errors import UserError

from .conftest import mixed_table


def fitted(path, **cfg):
    config = TableDataConfig(source=str(path), **cfg)
    with pytest.warns(UserWarning):  # the identifier and free-text notes
        splits = load_table(config)
    return splits, TableSchema.fit(splits.train, splits.kinds, config, splits.target)


def test_kinds_are_detected_and_overridable(table_csv):
    splits, _ = fitted(table_csv)
    assert splits.kinds == {
        "customer_id": "id",
        "group": "categorical",
        "income": "numeric",
        "age": "integer",
        "score": "numeric",
        "member": "boolean",
        "joined": "datetime",
        "comment": "text",
        "label": "integer",
    }
    assert splits.target == "label" and len(splits.holdout) == 60 and len(splits.train) == 240
    splits, _ = fitted(table_csv, types="age=categorical,label=categorical")
    assert splits.kinds["age"] == "categorical" and splits.kinds["label"] == "categorical"
    with pytest.raises(UserError, match="not one of"):
        load_table(TableDataConfig(source=str(table_csv), types="age=color"))


def test_schema_round_trip_keeps_bounds_decimals_missing_and_dtypes(table_csv):
    splits, schema = fitted(table_csv)
    again = TableSchema.from_json(schema.to_json())
    assert again == schema
    train = splits.train
    frame = schema.to_frame(schema.from_normal_scores(schema.normal_scores(train)), schema.codes(train))
    assert list(frame.columns) == list(train.columns)
    assert frame["score"].isna().sum() == train["score"].isna().sum()  # missing values come back where they were
    assert frame["age"].dtype == np.int64 and frame["member"].dtype == bool
    assert (frame["group"] == train["group"]).all() and (frame["label"] == train["label"]).all()
    # decimals kept: every income has at most 2 digits after the point; bounds kept
    assert np.allclose(frame["income"], frame["income"].round(2))
    assert frame["income"].min() >= train["income"].min() and frame["income"].max() <= train["income"].max()
    assert frame["customer_id"].is_unique and frame["comment"].isna().all()  # never modelled as values
    assert pd.api.types.is_datetime64_any_dtype(frame["joined"])
    # far from the quantile knots the inverse is exact up to interpolation
    assert np.nanmax(np.abs(frame["income"] - train["income"]) / train["income"]) < 0.05


@pytest.mark.parametrize("encoding", ["quantile", "modes"])
def test_batches_of_each_encoding(table_csv, encoding):
    splits, schema = fitted(table_csv)
    data = TableData(splits, schema, encoding, conditional=encoding == "modes")
    batch = data.get_batch("train", 16, torch.Generator().manual_seed(0))
    if encoding == "quantile":
        scores, codes = batch
        assert scores.shape == (16, schema.n_continuous) and codes.shape == (16, len(schema.cardinalities))
    else:
        x, cond = batch
        width = sum(size for _, size in schema.spans())
        assert x.shape == (16, width) and cond.shape == (16, data.cond_dim)
        assert torch.all(cond.sum(1) == 1)  # one condition per row
        # training-by-sampling: each row has the category its condition names
        offsets = np.cumsum([0] + [s for _, s in schema.spans()])
        starts = [int(offsets[i]) for i, (kind, size) in enumerate(schema.spans())]
        discrete_spans = starts[-len(schema.cardinalities) :]
        for row in range(16):
            hot = int(cond[row].argmax())
            feature = int(np.searchsorted(np.cumsum(schema.cardinalities), hot, side="right"))
            category = hot - int(np.concatenate([[0], np.cumsum(schema.cardinalities)])[feature])
            assert x[row, discrete_spans[feature] + category] == 1


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.csv", "", "empty"),
        ("header.csv", "a,b\n", "empty"),
        ("one.csv", "a,b\n1,2\n", "single row"),
        ("gap.csv", "a,b\n" + "".join(f"{i},\n" for i in range(20)), "column 'b' is missing in every row"),
        ("mixed.csv", "a,b\n" + "".join(f"{i},{i}\n" for i in range(20)) + "3,oops\n", "column 'b' mixes numbers"),
        ("fake.parquet", "not parquet at all", "not a Parquet file"),
        ("table.txt", "a\n1\n", "expected a .csv or .parquet"),
    ],
)
def test_bad_tables_are_refused_in_one_line(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(UserError, match=message) as e:
        load_table(TableDataConfig(source=str(path)))
    assert "\n" not in str(e.value)


def test_as_many_categories_as_rows_is_an_identifier_with_a_note(tmp_path):
    df = mixed_table(50)[["group", "income"]].assign(code=[f"C{i:03d}" for i in range(50)])
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning, match="column 'code': as many categories as rows"):
        splits = load_table(TableDataConfig(source=str(tmp_path / "t.csv")))
    assert splits.kinds["code"] == "id"


def test_parquet_in(tmp_path):
    mixed_table(60).drop(columns=["comment", "customer_id"]).to_parquet(tmp_path / "t.parquet")
    splits = load_table(TableDataConfig(source=str(tmp_path / "t.parquet")))
    assert splits.kinds["joined"] == "datetime" and splits.kinds["member"] == "boolean"
