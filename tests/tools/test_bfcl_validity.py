"""The bar of issue 18: with the constraint on, every output of a randomly initialised model is a valid
call on BFCL simple_python, multiple and parallel items; with it off, almost none is. The test takes
every STRIDE-th item to stay fast; `bench/tools.py validity` runs all of them (figures in bench/RESULTS.md)."""

from __future__ import annotations

import pytest

from genloom.evaluate import bfcl

STRIDE = 8


@pytest.mark.parametrize("category", ["simple_python", "multiple", "parallel"])
def test_every_bfcl_item_gives_a_valid_call_from_a_random_model(random_model, bpe, bfcl_dir, category):
    items = bfcl.load(bfcl_dir, category)[::STRIDE]
    parallel = category == "parallel"
    invalid = []
    for i, item in enumerate(items):
        ok, text = bfcl.validity_trial(random_model, bpe, item, parallel, True, i)
        if not ok:
            invalid.append((item.id, text))
    assert not invalid, invalid[:3]


def test_without_the_constraint_almost_nothing_is_valid(random_model, bpe, bfcl_dir):
    items = bfcl.load(bfcl_dir, "simple_python")[::STRIDE]
    valid = sum(bfcl.validity_trial(random_model, bpe, item, False, False, i)[0] for i, item in enumerate(items))
    assert valid <= len(items) // 50
