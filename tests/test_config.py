from dataclasses import dataclass
from typing import Literal

import pytest

from genloom.config import build, coerce, dump_toml, merge, parse_sets, read_toml, to_dict
from genloom.errors import UserError


@dataclass
class Inner:
    n: int = 1
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"
    flag: bool = False
    limit: int | None = None
    betas: tuple[float, float] = (0.9, 0.99)

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")


@dataclass
class Outer:
    name: str = "x"
    inner: Inner | None = None


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("6", int, 6),
        (6, int, 6),
        ("3e-4", float, 3e-4),
        (2, float, 2.0),
        ("true", bool, True),
        ("off", bool, False),
        ("b", Literal["a", "b"], "b"),
        ("none", int | None, None),
        ("7", int | None, 7),
        ("0.8,0.9", tuple[float, float], (0.8, 0.9)),
    ],
)
def test_coerce_accepts_matching_values(value, annotation, expected):
    assert coerce(value, annotation, "f") == expected


@pytest.mark.parametrize(
    ("value", "annotation"),
    [("abc", int), (True, int), ("1.5", int), ("maybe", bool), ("c", Literal["a", "b"]), (3, str), ("x", float)],
)
def test_coerce_rejects_mismatches_naming_the_field(value, annotation):
    with pytest.raises(UserError, match=r"^model\.n_layer: expected"):
        coerce(value, annotation, "model.n_layer")


def test_build_reports_unknown_key_with_valid_keys():
    with pytest.raises(UserError) as e:
        build(Inner, {"nn": 3}, "model")
    msg = str(e.value)
    assert "'model.nn'" in msg and "model.n" in msg and "model.rate" in msg


def test_build_wraps_post_init_errors_with_section():
    with pytest.raises(UserError, match=r"^model: n must be >= 0, got -1"):
        build(Inner, {"n": "-1"}, "model")


def test_parse_sets_nests_and_rejects_malformed():
    assert parse_sets(["model.n_layer=6", "train.lr=1e-3"]) == {"model": {"n_layer": "6"}, "train": {"lr": "1e-3"}}
    with pytest.raises(UserError, match=r"expected section\.key=value"):
        parse_sets(["model.n_layer"])


def test_toml_round_trip(tmp_path):
    cfg = Inner(n=3, rate=0.25, kind="b", flag=True, betas=(0.8, 0.95))
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(to_dict(cfg), "header"))
    assert build(Inner, read_toml(path)) == cfg


def test_read_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nx=")
    with pytest.raises(UserError, match=r"bad\.toml: not valid TOML"):
        read_toml(bad)
    with pytest.raises(UserError, match=r"missing\.toml: config file not found"):
        read_toml(tmp_path / "missing.toml")


def test_merge_is_recursive_and_does_not_mutate():
    base = {"model": {"a": 1, "b": 2}}
    out = merge(base, {"model": {"b": 3}, "train": {"c": 4}})
    assert out == {"model": {"a": 1, "b": 3}, "train": {"c": 4}}
    assert base == {"model": {"a": 1, "b": 2}}
