"""`genloom index`, `search` and `ask` end to end, and their bad input: one line, exit 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

from genloom.cli import main
from tests.test_cli import assert_user_error, run_cli


def test_index_search_and_ask(docs: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02")
    index = str(tmp_path / "index")
    code, out, err = run_cli(capsys, "index", str(docs), "--out", index)
    assert code == 0 and "6 files" in out and "1 skipped" in out
    assert err.count("genloom: warning:") == 1 and "binary.txt: skipped" in err and "Traceback" not in err

    code, out, _ = run_cli(capsys, "search", index, "hotel rooms reimbursed", "--k", "2")
    assert code == 0 and out.startswith("1. policy.docx (paragraph 4) > Travel policy / Hotels  score ")

    code, out, _ = run_cli(capsys, "search", index, "glaciers ice alps", "--k", "3", "--json")
    hits = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(hits) == 1  # BM25 returns matching chunks only
    assert hits[0]["doc_id"] == "doc-7" and hits[0]["path"] == "facts.jsonl"
    assert set(hits[0]) >= {"doc_id", "path", "span", "score", "text"}

    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"id": "q1", "text": "volcanic systems"}\n{"id": 2, "text": "espresso machine"}\n')
    code, out, _ = run_cli(capsys, "search", index, "--queries", str(queries), "--k", "2")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["id"] for r in rows] == ["q1", 2]
    assert rows[0]["hits"][0]["doc_id"] == "doc-9" and rows[1]["hits"][0]["path"] == "team/page.html"
    assert set(rows[0]["hits"][0]) == {"doc_id", "path", "span", "heading", "score"}

    code, out, _ = run_cli(capsys, "ask", index, "When does the office open?")
    assert code == 0 and "nine in the morning" in out and "[1] notes.txt (lines 1-3)" in out

    code, out, _ = run_cli(capsys, "index", str(docs), "--out", index)
    assert code == 0 and "6 unchanged" in out


def test_bad_input_gives_one_line_and_exit_2(docs: Path, tmp_path: Path, capsys, minilm: Path) -> None:  # type: ignore[no-untyped-def]
    index = str(tmp_path / "index")
    assert main(["index", str(docs), "--out", index]) == 0
    capsys.readouterr()
    assert_user_error(*run_cli(capsys, "search", str(tmp_path / "nowhere"), "q")[::2], "no such index")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("x")
    assert_user_error(*run_cli(capsys, "search", str(foreign), "q")[::2], "not a genloom index")
    assert_user_error(*run_cli(capsys, "index", str(docs), "--out", str(foreign))[::2], "not a genloom index")
    code, _, err = run_cli(capsys, "search", index, "q", "--embedder", str(minilm))
    assert_user_error(code, err, "built without an embedder")
    code, _, err = run_cli(capsys, "ask", index, "When does the office open?", "--model", "http://127.0.0.1:9/v1")
    assert_user_error(code, err, "--model http://127.0.0.1:9/v1", "cannot reach")
    code, _, err = run_cli(capsys, "ask", index, "When does the office open?", "--model", "ftp://example/v1")
    assert_user_error(code, err, "only http:// and https://")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{"id": 2}\n')
    assert_user_error(*run_cli(capsys, "search", index, "--queries", str(bad))[::2], f"{bad}:2")
    assert_user_error(*run_cli(capsys, "index", str(tmp_path / "missing"), "--out", index)[::2], "no such folder")
