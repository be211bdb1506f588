"""Answers with citations: retrieve, then answer with [n] markers that resolve to chunks, and check them.

Two modes. *Extractive* (no generator): the sentences of the retrieved chunks that best cover the
question are stitched together, each followed by the [n] of its chunk; every quoted sentence is an exact
substring of its chunk, so the answer is grounded by construction. *Generative*: the chunks go to a
model as numbered sources, with the instruction to cite them as [n]; the model is a genloom text run, a
pretrained model genloom loads (a GGUF file, a Hugging Face directory), or any OpenAI-compatible chat
endpoint (`http://host:port/v1`).

Every generative answer passes the unsupported-claim check: a sentence is supported when at least
`support_threshold` of its content terms (the BM25 analyzer's stems) occur in the chunks it cites (in
all the sources when it cites none); a sentence that is not, or that cites a source that does not
exist, is flagged, and with `strict=True` removed. When no retrieved sentence covers the question
well enough (`min_relevance`), the answer says that the documents do not answer it, and no model is
asked to guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from genloom.documents.text import analyzer, sentences
from genloom.endpoint import Endpoint
from genloom.errors import UserError

if TYPE_CHECKING:
    from genloom.documents.index import Hit, Index

NOT_FOUND = "The indexed documents do not answer this question."
MARKER = re.compile(r"\s*\[(\d+)\]")
SYSTEM = (
    "Answer the question using only the numbered sources. After each sentence, cite the sources it uses "
    "as [1], [2]. If the sources do not contain the answer, say that you do not know."
)
Generator = Callable[[list[dict[str, str]]], str]


@dataclass
class Citation:
    """What [n] stands for: a chunk, its place, and the sentences quoted from it (extractive)."""

    n: int
    doc_id: str
    path: str
    span: str
    heading: list[str]
    text: str  # the whole chunk
    quotes: list[str] = field(default_factory=list)  # exact substrings of `text`


@dataclass
class Sentence:
    """One sentence of the answer and the verdict of the support check."""

    text: str  # without its [n] markers
    cites: list[int]  # the [n] it carries (resolving ones)
    coverage: float  # share of its content terms found in the cited chunks
    supported: bool
    reason: str = ""  # why it is flagged ("" when supported)


@dataclass
class Answer:
    """A grounded answer: `text` with [n] markers, `citations` by n, and each sentence's check."""

    question: str
    text: str
    mode: str  # "extractive" or "generative"
    found: bool  # False: retrieval found nothing relevant enough (text says so)
    citations: list[Citation]
    sentences: list[Sentence]
    removed: list[str] = field(default_factory=list)  # flagged sentences dropped by strict=True

    @property
    def flagged(self) -> list[Sentence]:
        return [s for s in self.sentences if not s.supported]

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self) | {"flagged": len(self.flagged)}


# ---- relevance and support --------------------------------------------------------------------


def _weights(index: Index, terms: set[str]) -> dict[str, float]:
    """IDF of each query term over the index (a term the index lacks weighs as the rarest)."""
    idf = index.idf() if len(index) else np.zeros(0)
    rare = float(np.log1p((len(index) + 0.5) / 0.5))
    ids = index._term_id if len(index) else {}
    return {t: float(idf[ids[t]]) if t in ids else rare for t in terms}


def _candidates(index: Index, question: str, hits: list[Hit]) -> list[tuple[float, int, int, int]]:
    """(relevance, hit number, start, end) of every sentence of the hits: the IDF-weighted share of the
    question's terms it contains, averaged with its cosine to the question when the index has vectors."""
    q_terms = set(analyzer().terms(question))
    weights = _weights(index, q_terms)
    total = sum(weights.values()) or 1.0
    found = []
    for i, hit in enumerate(hits):
        text = hit.chunk.text
        for a, b in sentences(text):
            s_terms = set(analyzer().terms(text[a:b]))
            found.append((sum(weights[t] for t in q_terms & s_terms) / total, i, a, b))
    embedder = index.embedder if index.manifest.get("embedder") else None
    if embedder is not None and found:
        vectors = embedder.encode([question] + [hits[i].chunk.text[a:b] for _, i, a, b in found])
        cosine = vectors[1:] @ vectors[0]
        found = [
            (0.5 * lex + 0.5 * max(float(c), 0.0), i, a, b) for (lex, i, a, b), c in zip(found, cosine, strict=True)
        ]
    return found


def support(sentence: str, evidence: list[str], threshold: float) -> tuple[float, bool]:
    """Share of the sentence's content terms that occur in `evidence`, and whether it reaches `threshold`."""
    terms = set(analyzer().terms(sentence))
    if not terms:
        return 1.0, True  # nothing claimed ("Yes.", a number alone)
    have = set().union(*(analyzer().terms(text) for text in evidence)) if evidence else set()
    coverage = len(terms & have) / len(terms)
    return coverage, coverage >= threshold


# ---- the two modes ------------------------------------------------------------------------------


def _citation(n: int, hit: Hit) -> Citation:
    c = hit.chunk
    return Citation(n, c.doc_id, c.path, c.span, list(c.heading), c.text)


def extractive(hits: list[Hit], chosen: list[tuple[float, int, int, int]], question: str) -> Answer:
    """Stitch the chosen sentences in reading order, each followed by its chunk's [n]."""
    chosen = sorted(chosen, key=lambda c: (c[1], c[2]))
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    parts, checked = [], []
    for _, i, a, b in chosen:
        if i not in numbers:
            numbers[i] = len(numbers) + 1
            citations.append(_citation(numbers[i], hits[i]))
        quote = hits[i].chunk.text[a:b]
        citations[numbers[i] - 1].quotes.append(quote)
        parts.append(f"{quote} [{numbers[i]}]")
        checked.append(Sentence(quote, [numbers[i]], 1.0, True))
    return Answer(question, " ".join(parts), "extractive", True, citations, checked)


def generative(hits: list[Hit], question: str, generate: Generator, threshold: float, strict: bool) -> Answer:
    """Ask the model with numbered sources, then check every sentence against what it cites."""
    sources = "\n\n".join(f"[{n}] ({h.chunk.path}, {h.chunk.span}) {h.chunk.text}" for n, h in enumerate(hits, start=1))
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {question}"},
    ]
    reply = generate(messages).strip()
    citations = [_citation(n, h) for n, h in enumerate(hits, start=1)]
    checked: list[Sentence] = []
    kept: list[str] = []
    removed: list[str] = []
    for a, b in sentences(reply):
        raw = reply[a:b]
        marks = [int(m) for m in MARKER.findall(raw)]
        text = MARKER.sub("", raw).strip()
        valid = [n for n in dict.fromkeys(marks) if 1 <= n <= len(hits)]
        evidence = [hits[n - 1].chunk.text for n in valid] or [h.chunk.text for h in hits]
        coverage, ok = support(text, evidence, threshold)
        reason = "" if ok else f"only {coverage:.0%} of its content is in {'its cited' if valid else 'the'} sources"
        if len(valid) < len(set(marks)):
            ok, reason = False, f"cites a source that does not exist ({sorted(set(marks) - set(valid))})"
        checked.append(Sentence(text, valid, coverage, ok, reason))
        marks_text = "".join(f" [{n}]" for n in valid)
        end = len(text.rstrip(".!?")) if text.rstrip(".!?") else len(text)
        marked = text[:end] + marks_text + text[end:]  # "... days [1]."
        (kept if ok or not strict else removed).append(marked)
    text = " ".join(kept) if kept else NOT_FOUND
    return Answer(question, text, "generative", bool(kept), citations, checked, removed)


# ---- generators ---------------------------------------------------------------------------------


def local_generator(handle: Any, max_new_tokens: int) -> Generator:
    """A loaded genloom text model: its chat template when it has one, else a plain prompt."""

    def generate(messages: list[dict[str, str]]) -> str:
        return str(handle.chat(messages, max_new_tokens=max_new_tokens, temperature=0).text)

    return generate


def endpoint_generator(url: str, model: str | None, max_new_tokens: int, api_key: str | None = None) -> Generator:
    """An OpenAI-compatible chat endpoint at `url` (ending in /v1); `model` defaults to its first model."""
    endpoint = Endpoint(url, api_key, label=f"--model {url}")
    name = model if model is not None else endpoint.first_model()

    def generate(messages: list[dict[str, str]]) -> str:
        body = {"model": name, "messages": messages, "max_tokens": max_new_tokens, "temperature": 0}
        return str(endpoint.chat(body).get("content") or "")

    return generate


def generator_for(
    model: Any, max_new_tokens: int = 200, api_key: str | None = None, model_name: str | None = None
) -> Generator:
    """A generator from what `--model` names: a URL, a path (run, GGUF, HF directory) or a loaded model."""
    if callable(model) and not hasattr(model, "chat"):
        return model  # type: ignore[no-any-return]
    if isinstance(model, str) and re.match(r"^https?://", model):
        return endpoint_generator(model, model_name, max_new_tokens, api_key)
    if isinstance(model, str) and "://" in model:
        raise UserError(f"--model {model}: only http:// and https:// endpoints are supported")
    if hasattr(model, "chat"):
        return local_generator(model, max_new_tokens)
    import genloom as gl

    return local_generator(gl.load_for(model, "chat"), max_new_tokens)


# ---- the entry point ----------------------------------------------------------------------------


def answer(
    index: Index,
    question: str,
    k: int = 5,
    model: Any = None,
    strict: bool = False,
    max_sentences: int = 3,
    min_relevance: float = 0.3,
    support_threshold: float = 0.6,
    max_new_tokens: int = 200,
    retrieve: bool = True,
    api_key: str | None = None,
    model_name: str | None = None,
) -> Answer:
    """Answer `question` from `index` with [n] citations.

    `model`: None for an extractive answer; else a run or model path, a URL of an OpenAI-compatible
    endpoint, a loaded text model, or a function of chat messages returning text. `k`: chunks
    retrieved; `max_sentences`: sentences an extractive answer quotes; `min_relevance`: how well (0-1)
    the best sentence must cover the question for an answer at all; `support_threshold`: share of a
    generated sentence's content terms its sources must hold; `strict`: drop flagged sentences.
    `retrieve=False` asks the model without sources (a baseline: its sentences are checked against
    what retrieval would have given). `api_key` and `model_name`: for an endpoint (default: its first model)."""
    if not question.strip():
        raise UserError("question: empty; ask something")
    if k <= 0 or max_sentences <= 0:
        raise UserError(f"k and max_sentences must be positive, got k={k}, max_sentences={max_sentences}")
    hits = index.search(question, k=k)
    generate = generator_for(model, max_new_tokens, api_key, model_name) if model is not None else None
    candidates = _candidates(index, question, hits)
    best = sorted((c for c in candidates if c[0] >= min_relevance), key=lambda c: -c[0])
    if not best:
        return Answer(question, NOT_FOUND, "extractive" if generate is None else "generative", False, [], [])
    if generate is None:
        return extractive(hits, best[:max_sentences], question)
    if not retrieve:
        reply = generate([{"role": "user", "content": question}]).strip()
        pieces = [MARKER.sub("", reply[a:b]).strip() for a, b in sentences(reply)]
        evidence = [h.chunk.text for h in hits]
        checked = [Sentence(p, [], *support(p, evidence, support_threshold)) for p in pieces]
        return Answer(question, reply, "generative", True, [], checked)
    return generative(hits, question, generate, support_threshold, strict)
