"""Parallel-pair reading and the hash split (genloom/data/parallel.py)."""

import json

import pytest

from genloom.data.parallel import Pair, read_pairs, split_pairs
from genloom.errors import UserError


def test_bundled_tatoeba_reads_and_splits_by_source():
    pairs = read_pairs("tatoeba-eng-fra")
    assert len(pairs) == 76_037  # the cut-off last line is dropped (SOURCE.md)
    assert pairs[0].source and pairs[0].target and "\t" not in pairs[0].target
    splits = split_pairs(pairs)
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(pairs)
    assert 0.03 < len(splits.test) / len(pairs) < 0.07
    sources = [{p.source for p in s} for s in (splits.train, splits.val, splits.test)]
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])


def test_tsv_and_jsonl(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("Hello.\tBonjour.\tattribution\n\nCafe\u0301\tCaf\u00e9\n")
    assert read_pairs(str(tsv)) == [Pair("Hello.", "Bonjour."), Pair("Caf\u00e9", "Caf\u00e9")]  # NFC
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"source": "a", "target": "b"}) + "\n")
    assert read_pairs(str(jl)) == [Pair("a", "b")]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("p.tsv", "good\tbon\nno tab here\n", "p.tsv:2: no tab"),
        ("p.tsv", "good\t  \n", "p.tsv:1: empty target"),
        ("p.jsonl", '{"source": "a", "target": "b"}\n{"source": "a"}\n', "p.jsonl:2: field 'target' missing"),
        ("p.jsonl", "{oops\n", "p.jsonl:1: not valid JSON"),
        ("p.tsv", "\n\n", "no pairs found"),
    ],
)
def test_bad_pairs_name_file_and_line(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as e:
        read_pairs(str(path))
    assert fragment in str(e.value)


def test_missing_file_and_bad_fractions(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_pairs(str(tmp_path / "nope.tsv"))
    with pytest.raises(UserError, match="val_fraction"):
        split_pairs([Pair("a", "b")], 0.6, 0.5)
