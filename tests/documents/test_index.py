"""The index stays current: updates score exactly as a fresh build, nothing unchanged is re-embedded, a
crash mid-update leaves the old index readable, and bad files are skipped with one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genloom as gl
from genloom.documents import store
from genloom.errors import UserError

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "keys",
    "rotate",
    "backup",
    "lunch",
    "glacier",
    "volcano",
    "river",
    "ocean",
    "forest",
    "desert",
]
QUERIES = ["alpha keys", "rotate backup river", "glacier", "ocean forest desert lunch", "gamma delta beta"]


def scores(index: gl.Index, mode: str) -> dict[tuple[str, str], float]:
    """Every chunk's score for every query, keyed by query and chunk content (not by row)."""
    out: dict[tuple[str, str], float] = {}
    for q in QUERIES:
        values = index.bm25_scores(q) if mode == "bm25" else index.dense_scores([q])[0].astype(np.float64)
        for chunk, value in zip(index.chunks, values, strict=True):
            out[(q, chunk.path + "\0" + chunk.hash)] = float(value)
    return out


def assert_same(a: dict, b: dict, tolerance: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    assert max((abs(a[k] - b[k]) for k in a), default=0.0) <= tolerance


text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map(" ".join)
operation = st.tuples(st.sampled_from(["add", "edit", "delete"]), st.integers(0, 5), text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=6))
def test_incremental_updates_score_as_a_fresh_build(operations: list, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("prop")
    docs, live, fresh = root / "docs", root / "live", root / "fresh"
    docs.mkdir()
    (docs / "base.txt").write_text("alpha beta keys\n\nriver ocean")
    gl.Index.build(docs, live, config=gl.IndexConfig(chunk_tokens=10, overlap=3))
    for op, n, body in operations:
        path = docs / f"f{n}.md"
        if op == "delete":
            path.unlink(missing_ok=True)
        elif op == "add" or path.exists():
            path.write_text(f"# Title {n}\n\n{body}\n\n{body[::-1]}\n")
        index = gl.Index.build(docs, live)  # the settings are the index's own
        shutil.rmtree(fresh, ignore_errors=True)
        rebuilt = gl.Index.build(docs, fresh, config=gl.IndexConfig(chunk_tokens=10, overlap=3))
        assert [c.hash for c in index.chunks] == [c.hash for c in rebuilt.chunks]
        assert_same(scores(index, "bm25"), scores(rebuilt, "bm25"))
        assert_same(scores(gl.Index(live), "bm25"), scores(rebuilt, "bm25"))  # as read back from disk


def test_dense_updates_embed_only_new_chunks_and_equal_a_rebuild(docs: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    first = gl.Index.build(docs, tmp_path / "live", embedder=embedder)
    assert first.last_update.embedded == len(first) > 0
    cached = {h: v for h, v in zip(first.hashes, first.vectors, strict=True)}
    again = gl.Index.build(docs, tmp_path / "live")
    assert again.last_update.embedded == 0 and again.last_update.unchanged == 6

    (docs / "notes.txt").write_text("The office opens at nine in the morning.\n\nParking is free for visitors.\n")
    (docs / "facts.jsonl").unlink()
    (docs / "new.md").write_text("# Snow\n\nIt snowed in March.\n")
    updated = gl.Index.build(docs, tmp_path / "live")
    report = updated.last_update
    assert (report.added, report.changed, report.removed) == (["new.md"], ["notes.txt"], ["facts.jsonl"])
    assert report.embedded == 2  # the edited file's one chunk and the new file's; nothing else
    kept = [(h, v) for h, v in zip(updated.hashes, updated.vectors, strict=True) if h in cached]
    assert len(kept) == len(updated) - 2 and all(np.array_equal(v, cached[h]) for h, v in kept)  # bit for bit
    rebuilt = gl.Index.build(docs, tmp_path / "fresh", embedder=embedder)
    assert_same(scores(updated, "bm25"), scores(rebuilt, "bm25"))
    # each chunk is encoded alone, so its vector depends on its text only: the update scores as the rebuild
    assert_same(scores(updated, "dense"), scores(rebuilt, "dense"))
    top = updated.search("when does the office open", k=1)[0].chunk
    assert top == rebuilt.search("when does the office open", k=1)[0].chunk and top.path == "notes.txt"
    for query in ["rotating keys and nightly backups", "travel hotels economy flights", "lunch coffee espresso"]:
        per_doc = updated.search(query, k=10, one_per_doc=True)  # a document is fused once, not once per chunk
        assert len({h.chunk.doc_id for h in per_doc}) == len(per_doc) == len({c.doc_id for c in updated.chunks})


def test_a_crash_before_the_commit_leaves_the_old_index(docs: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "index"
    gl.Index.build(docs, out)
    before = [c.text for c in gl.Index(out).chunks]
    (docs / "notes.txt").write_text("Completely different words about submarines.\n")
    real = store.atomic_write

    def crash_at_manifest(path: Path, write) -> None:  # type: ignore[no-untyped-def]
        if path.name == store.MANIFEST:
            raise KeyboardInterrupt  # the process dies after writing the new data files
        real(path, write)

    monkeypatch.setattr(store, "atomic_write", crash_at_manifest)
    with pytest.raises(KeyboardInterrupt):
        gl.Index.build(docs, out)
    monkeypatch.undo()
    assert [c.text for c in gl.Index(out).chunks] == before
    assert gl.Index.build(docs, out).last_update.changed == ["notes.txt"]  # the next run completes the update
    assert any("submarines" in c.text for c in gl.Index(out).chunks)
    generations = {p.name.split("-")[1].split(".")[0] for p in out.iterdir() if p.name.startswith(store.DATA_PREFIXES)}
    assert len(generations) == 1  # the orphaned files of the crashed update are gone


def test_the_format_is_json_and_npy_without_pickle(docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    gl.Index.build(docs, out)
    manifest = json.loads((out / "index.json").read_text())
    assert manifest["genloom_index"] == store.FORMAT and manifest["chunks"] == len(gl.Index(out))
    names = store.data_files(manifest["generation"])
    with np.load(out / names["bm25"], allow_pickle=False) as z:
        assert set(z.files) == {"indptr", "term_ids", "counts", "lengths"}
    manifest["genloom_index"] = 99
    (out / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="index format 99"):
        gl.Index(out)


def test_bad_files_are_skipped_with_one_line_each(docs: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage that is no PDF at all")
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    writer.encrypt("secret")
    with open(docs / "locked.pdf", "wb") as f:
        writer.write(f)
    (docs / "binary.txt").write_bytes(b"\x7fELF\x00\x01\x02 not text")
    (docs / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    (docs / "big.txt").write_text("word " * 20_000)
    (docs / "secret.txt").write_text("no access")
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    warnings: list[str] = []
    index = gl.Index.build(docs, tmp_path / "index", config=gl.IndexConfig(max_file_bytes=60_000), warn=warnings.append)
    reasons = {Path(w.split(": skipped: ")[0]).name: w.split(": skipped: ")[1] for w in warnings}
    assert len(warnings) == 6 and all("\n" not in w for w in warnings)
    assert "corrupt PDF" in reasons["broken.pdf"] and "encrypted" in reasons["locked.pdf"]
    assert "NUL byte" in reasons["binary.txt"] and "not UTF-8" in reasons["latin1.md"]
    assert "over the limit" in reasons["big.txt"] and "Permission denied" in reasons["secret.txt"]
    assert {c.path for c in index.chunks} == {
        "guide.md",
        "team/page.html",
        "notes.txt",
        "facts.jsonl",
        "report.pdf",
        "policy.docx",
    }
    assert index.search("glaciers ice", k=1)[0].chunk.doc_id == "doc-7"


def test_an_empty_folder_gives_an_empty_index_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    warnings: list[str] = []
    index = gl.Index.build(tmp_path / "empty", tmp_path / "index", warn=warnings.append)
    assert len(index) == 0 and index.search("anything") == []
    assert len(warnings) == 1 and "no documents" in warnings[0]


def test_a_foreign_directory_and_another_embedder_are_refused(docs: Path, tmp_path: Path, minilm: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my own file")
    with pytest.raises(UserError, match="not a genloom index"):
        gl.Index.build(docs, foreign)
    assert (foreign / "notes.txt").read_text() == "my own file" and len(list(foreign.iterdir())) == 1
    gl.Index.build(docs, tmp_path / "bm25-only")
    with pytest.raises(UserError, match="built without an embedder"):
        gl.Index(tmp_path / "bm25-only", embedder=minilm)
    with pytest.raises(UserError, match="without an embedder"):
        gl.Index.build(docs, tmp_path / "bm25-only", embedder=minilm)
