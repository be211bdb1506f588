"""The index directory on disk: a versioned manifest naming one generation of data files.

```
INDEX_DIR/
  index.json             the manifest: {"genloom_index": 1, "generation": g, "config", "embedder", "files",
                         "skipped", "chunks"}; written last, atomically: it is the commit
  chunks-<g>.jsonl       one chunk per line: hash, path, doc_id, heading, unit, start, end, meta, text
  terms-<g>.json         the BM25 vocabulary: a JSON list of terms (stems); term id = position
  bm25-<g>.npz           raw BM25 statistics: per chunk its terms' ids and counts in CSR form (indptr
                         int64, term_ids int32, counts int32) and its length in terms; no IDF, no averages
  vectors-<g>.npy        (n_chunks, dim) float32 unit vectors, row i for chunk i (only with an embedder)
  writer.lock            flock held by the process updating the index
```
An update writes generation g+1 beside g (each file to a temp name, fsynced, renamed), then replaces
`index.json`, then deletes generation g. A crash at any point leaves a manifest naming complete files,
so the old index stays readable. Nothing is pickled: JSON, and `.npy`/`.npz` read with
`allow_pickle=False`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genloom.errors import UserError
from genloom.run import TEMP_SUFFIX, atomic_write

FORMAT = 1  # the `genloom_index` version this code reads and writes
MANIFEST = "index.json"
LOCK = "writer.lock"
DATA_PREFIXES = ("chunks-", "terms-", "bm25-", "vectors-")


def data_files(generation: int) -> dict[str, str]:
    """The file names of one generation."""
    g = f"{generation:06d}"
    return {
        "chunks": f"chunks-{g}.jsonl",
        "terms": f"terms-{g}.json",
        "bm25": f"bm25-{g}.npz",
        "vectors": f"vectors-{g}.npy",
    }


def read_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest, or a `UserError` saying what `index_dir` is instead."""
    manifest = index_dir / MANIFEST
    if not index_dir.exists():
        raise UserError(f"{index_dir}: no such index (build one with `genloom index DOCS_DIR --out {index_dir}`)")
    if not index_dir.is_dir():
        raise UserError(f"{index_dir}: not a directory, so not a genloom index")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{index_dir}: not a genloom index (no {MANIFEST})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{manifest}: unreadable manifest ({e})") from None
    if not isinstance(data, dict) or "genloom_index" not in data:
        raise UserError(f"{index_dir}: not a genloom index ({MANIFEST} has no 'genloom_index' version)")
    if data["genloom_index"] != FORMAT:
        raise UserError(f"{index_dir}: index format {data['genloom_index']}, this genloom reads {FORMAT}; rebuild it")
    return data


def check_out(index_dir: Path) -> dict[str, Any] | None:
    """The manifest of an existing index at `index_dir`, None for a new or empty directory; a directory
    holding anything else is refused (genloom never writes into a folder it did not make)."""
    if index_dir.exists() and (not index_dir.is_dir() or any(index_dir.iterdir())):
        if not (index_dir / MANIFEST).exists():
            raise UserError(f"{index_dir}: exists and is not a genloom index; give a new or empty directory as --out")
        return read_manifest(index_dir)
    return None


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's writer lock: a second `genloom index` on it is refused, not interleaved."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{index_dir}: another genloom process is updating this index") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def write_generation(
    index_dir: Path,
    manifest: dict[str, Any],
    chunks: list[dict[str, Any]],
    terms: list[str],
    bm25: dict[str, np.ndarray],
    vectors: np.ndarray | None,
) -> None:
    """Write a new generation's files, commit the manifest naming them, delete the older ones."""
    generation = int(manifest["generation"])
    names = data_files(generation)

    def write_chunks(f: Any) -> None:
        for row in chunks:
            f.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")

    atomic_write(index_dir / names["chunks"], write_chunks)
    atomic_write(index_dir / names["terms"], lambda f: f.write(json.dumps(terms, ensure_ascii=False).encode()))
    atomic_write(index_dir / names["bm25"], lambda f: np.savez(f, **bm25))  # type: ignore[arg-type]
    if vectors is not None:
        atomic_write(index_dir / names["vectors"], lambda f: np.save(f, vectors, allow_pickle=False))
    text = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
    atomic_write(index_dir / MANIFEST, lambda f: f.write(text))
    keep = set(names.values())
    for path in index_dir.iterdir():  # older generations and temp files a crash left
        if (path.name.startswith(DATA_PREFIXES) and path.name not in keep) or path.name.endswith(TEMP_SUFFIX):
            path.unlink(missing_ok=True)


def read_generation(
    index_dir: Path, manifest: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str], dict[str, np.ndarray], np.ndarray | None]:
    """The chunks, vocabulary, BM25 statistics and vectors the manifest names."""
    names = data_files(int(manifest["generation"]))
    try:
        with open(index_dir / names["chunks"], encoding="utf-8") as f:
            chunks = [json.loads(line) for line in f]
        terms = json.loads((index_dir / names["terms"]).read_text(encoding="utf-8"))
        with np.load(index_dir / names["bm25"], allow_pickle=False) as z:
            bm25 = {k: z[k] for k in z.files}
        vectors = None
        if manifest.get("embedder"):
            vectors = np.load(index_dir / names["vectors"], allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise UserError(f"{index_dir}: a data file of the index is missing or damaged ({e}); rebuild it") from None
    if len(chunks) != len(bm25["lengths"]) or (vectors is not None and len(vectors) != len(chunks)):
        raise UserError(f"{index_dir}: the index's data files disagree on the number of chunks; rebuild it")
    return chunks, terms, bm25, vectors
