"""Every table family on its debug preset: a finite loss that trains (or a closed-form fit), rows of the
table's shape from `sample`, and the same rows from the same seed after a save and load."""

import json
import warnings

import numpy as np
import pytest
import torch

from genloom.api.runs import resolve_config
from genloom.api.tables import TableModel, build_model, prepare_table
from genloom.data.tables import TableData
from genloom.models import FAMILIES

TABLE_FAMILIES = [name for name, f in FAMILIES.items() if f.modality == "table"]


@pytest.fixture(scope="module")
def pipes():
    cache = {}

    def get(family, source):
        key = (FAMILIES[family].model.encoding, source)
        if key not in cache:
            rc = resolve_config(family, "debug", data=source)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[key] = prepare_table(rc)
        return resolve_config(family, "debug", data=source), cache[key]

    return get


@pytest.mark.parametrize("family", TABLE_FAMILIES)
def test_family_trains_and_samples(family, pipes, table_csv):
    rc, pipe = pipes(family, str(table_csv))
    torch.manual_seed(0)
    model = build_model(FAMILIES[family], rc, pipe.schema)
    data = TableData(pipe.splits, pipe.schema, model.encoding, conditional=getattr(model, "conditional_batches", False))
    generator = torch.Generator().manual_seed(0)
    if hasattr(model, "loss"):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batch = data.get_batch("train", 20, generator)
        if hasattr(model, "train_step"):
            loss, _ = model.train_step(batch, optimizer)
        else:
            loss, _ = model.loss(batch)
            loss.backward()
            assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        assert np.isfinite(float(loss.detach()))
    else:
        model.fit(*data.tensors["train"], generator=generator)
    model.eval()
    rows = TableModel(model, pipe.schema, rc, table_csv.parent).sample(30, seed=3)
    assert rows.shape == (30, len(pipe.splits.train.columns)) and list(rows.columns) == list(pipe.splits.train.columns)
    assert set(rows["group"]) <= {"north", "south", "east"}
    assert rows["income"].between(pipe.splits.train["income"].min(), pipe.splits.train["income"].max()).all()
    again = TableModel(model, pipe.schema, rc, table_csv.parent).sample(30, seed=3)
    assert rows.astype(str).equals(again.astype(str))


def test_dp_sgd_clips_per_row_and_reports_epsilon(tmp_path, table_csv):
    """DP-SGD (tvae): each row's gradient is clipped to C before the noise, so with no noise the update's
    gradient norm is at most C; a trained run records the accountant's ε."""
    pytest.importorskip("opacus")
    import genloom as gl

    rc = resolve_config(
        "tvae", "debug", data=str(table_csv), sets=["model.dp_noise_multiplier=1e-9", "model.dp_max_grad_norm=0.5"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = prepare_table(rc)
    model = build_model(FAMILIES["tvae"], rc, pipe.schema)
    data = TableData(pipe.splits, pipe.schema, "modes")
    batch = data.get_batch("train", 16, torch.Generator().manual_seed(0))

    class Keep(torch.optim.SGD):
        def step(self, closure=None):  # record the privatized gradient instead of stepping
            self.norm = torch.sqrt(sum(p.grad.pow(2).sum() for g in self.param_groups for p in g["params"]))

    optimizer = Keep(model.parameters(), lr=0.0)
    _, terms = model.train_step(batch, optimizer)
    assert optimizer.norm <= 0.5 + 1e-4 and terms["clipped_share"] > 0  # the raw per-row norms exceed C
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gl.train(
            "tvae",
            out=tmp_path / "dp",
            data=str(table_csv),
            preset="debug",
            sets=["model.dp_noise_multiplier=1.0", "train.progress=false"],
        )
    training = json.loads((tmp_path / "dp" / "summary.json").read_text())["training"]
    assert 0 < training["dp_epsilon"] < 100 and training["dp_delta"] == 1e-5
