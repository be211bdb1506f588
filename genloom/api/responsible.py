"""Responsible generation in a run directory (docs/responsible.md): the training text's n-gram index and
the memorization evaluation, the watermark key, binding both to generation options, and detection.

- `write_index` (at training time) puts the training split's n-gram index in `RUN/memorization/`;
  `load_index` reads it back (numpy arrays, no pickle) for `block_verbatim` and `genloom eval memorization`.
- `evaluate_memorization` is the extractable-memorization test of Carlini et al. (2021, 2023): prompt the
  model with prefixes of its training text and count the continuations that repeat the training text
  verbatim for at least `min_chars` characters (exactly, checked against the corpus); it also counts every
  generation holding any verbatim span of that length (the index finds candidates, the corpus confirms).
- `load_key` reads `RUN/watermark.key` (written when the run started, genloom/api/runs.py) and refuses a key
  whose run id is not the run's; the key object never prints its secret.
- `bind_run` attaches the index and the key to a `GenerationConfig` that asks for them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genloom import run as rundir
from genloom.api.runs import DATA_STAMP, fingerprint, read_summary, saved_stamp
from genloom.config import read_json_object
from genloom.errors import UserError
from genloom.generation.config import GenerationConfig
from genloom.generation.constrained.automaton import token_bytes
from genloom.generation.verbatim import BoundIndex, NgramIndex, TokenTable
from genloom.generation.watermark import Detection, WatermarkKey, detect

INDEX_ARRAY = f"{rundir.MEMORIZATION}/ngrams.npy"
INDEX_META = f"{rundir.MEMORIZATION}/index.json"
MEMORIZATION_SECTION = "memorization"  # summary.json key of the last memorization evaluation
BIAS_SECTION = "bias"  # summary.json key of the last CrowS-Pairs evaluation (genloom/evaluate/bias.py)

_indexes: OrderedDict[tuple[str, float], NgramIndex] = OrderedDict()
_tables: OrderedDict[int, tuple[object, TokenTable]] = OrderedDict()


# ---- the training text's index -------------------------------------------------------------------


def corpus_stamp(train: Sequence[str], val: Sequence[str], pii_kinds: Sequence[str]) -> str:
    """The corpus fingerprint of `state/data.json` (the scrub setting is part of it when on)."""
    setting = ["\x02scrub_pii=" + ",".join(pii_kinds)] if pii_kinds else []
    return fingerprint([*train, "\x01", *val, *setting])


def write_index(run_dir: Path, documents: Sequence[str], order: int, corpus: str) -> NgramIndex:
    """Build the n-gram index of `documents` (the training split) into `run_dir/memorization/`."""
    index = NgramIndex.build(documents, order)
    buffer = io.BytesIO()
    np.save(buffer, index.hashes, allow_pickle=False)
    rundir.atomic_write_bytes(run_dir / INDEX_ARRAY, buffer.getvalue())
    meta = {
        "order_bytes": order,
        "ngrams": len(index),
        "documents": len(documents),
        "bytes": sum(len(d.encode("utf-8", "surrogatepass")) for d in documents),
        "corpus": corpus,
        "hash": "polynomial rolling hash mod 2**64 of UTF-8 bytes + 1, base 0x100000001B3 (genloom/generation/verbatim.py)",
    }
    rundir.atomic_write_text(run_dir / INDEX_META, json.dumps(meta, indent=2))
    return index


def index_meta(run_dir: Path) -> dict[str, Any]:
    return read_json_object(run_dir / INDEX_META)


def load_index(run_dir: Path, purpose: str) -> NgramIndex:
    """The run's index, or one line saying it is missing and why that matters for `purpose`."""
    path = run_dir / INDEX_ARRAY
    if not path.exists() or not (run_dir / INDEX_META).exists():
        raise UserError(
            f"{run_dir}: {purpose} needs the training text's n-gram index {path}, which is missing (it is written "
            "when a gpt run trains with data.verbatim_index > 0; train the run again to make one)"
        )
    key = (str(path.resolve()), path.stat().st_mtime)
    hit = _indexes.get(key)
    if hit is not None:
        return hit
    order = index_meta(run_dir).get("order_bytes")
    if not isinstance(order, int) or order < 1:
        raise UserError(f"{run_dir / INDEX_META}: no valid order_bytes")
    try:
        hashes = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable index ({str(e).splitlines()[0]})") from None
    if hashes.dtype != np.uint64 or hashes.ndim != 1:
        raise UserError(f"{path}: expected a 1-D uint64 array, got {hashes.dtype} {hashes.shape}")
    index = NgramIndex(hashes, order)
    _indexes[key] = index
    if len(_indexes) > 4:
        _indexes.popitem(last=False)
    return index


def token_table(tokenizer: object) -> TokenTable:
    """Every token's bytes as a matrix (built once per tokenizer object)."""
    hit = _tables.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    table = TokenTable.from_pieces(token_bytes(tokenizer))
    _tables[id(tokenizer)] = (tokenizer, table)
    if len(_tables) > 4:
        _tables.popitem(last=False)
    return table


# ---- the watermark key ---------------------------------------------------------------------------


def load_key(run_dir: Path) -> WatermarkKey:
    """The run's watermark key, checked to belong to this run."""
    path = run_dir / rundir.WATERMARK_KEY
    if not path.exists():
        raise UserError(
            f"{run_dir}: no watermark key ({path}); it is written when a run starts training, so runs made before "
            "genloom had watermarks, and `genloom tune` outputs, have none"
            if (run_dir / rundir.CONFIG).exists()
            else f"{run_dir}: watermarks need a genloom run directory (its key lives there)"
        )
    record = read_json_object(path, missing_ok=False)
    try:
        secret = bytes.fromhex(str(record["key"]))
    except (KeyError, ValueError):
        raise UserError(f"{path}: not a genloom watermark key (no hexadecimal 'key')") from None
    run_id = str(record.get("run_id", ""))
    own = saved_stamp(run_dir).get("run_id")
    if own is not None and run_id != own:
        raise UserError(
            f"{path}: this key belongs to another run (run id {run_id or 'none'}, this run is {own}); a text or "
            "image can only be checked with the key of the run that marked it"
        )
    return WatermarkKey(secret, run_id)


# ---- generation options --------------------------------------------------------------------------


def bind_run(cfg: GenerationConfig, run_dir: Path, tokenizer: object) -> GenerationConfig:
    """`cfg` with the run's index (block_verbatim) and key (watermark) attached when it asks for them."""
    changes: dict[str, Any] = {}
    if cfg.block_verbatim and cfg.verbatim_index is None:
        index = load_index(run_dir, f"block_verbatim={cfg.block_verbatim}")
        if cfg.block_verbatim < index.order:
            raise UserError(
                f"block_verbatim: {cfg.block_verbatim} characters is below the {index.order}-byte n-grams this run's index "
                f"holds; use block_verbatim >= {index.order}"
            )
        changes["verbatim_index"] = BoundIndex(index, token_table(tokenizer))
    if cfg.watermark and cfg.watermark_key is None:
        changes["watermark_key"] = load_key(run_dir)
    return dataclasses.replace(cfg, **changes) if changes else cfg


def detect_text(run_dir: Path, tokenizer: Any, vocab_size: int, text: str, gamma: float, threshold: float) -> Detection:
    """Kirchenbauer et al.'s z-test of `text` under the run's key."""
    key = load_key(run_dir)
    try:
        ids = tokenizer.encode(text)
    except UserError:  # characters the vocabulary lacks (a character tokenizer): the model never wrote them,
        ids = []  # so they are skipped, and no pair is scored across one (-1 breaks the sequence)
        for char in text:
            try:
                ids.extend(tokenizer.encode(char))
            except UserError:
                ids.append(-1)
    return detect(ids, key, vocab_size, gamma, threshold)


# ---- memorization (Carlini et al.) -------------------------------------------------------------


def evaluate_memorization(
    lm: Any,
    *,
    n_prompts: int = 1000,
    prefix_chars: int = 64,
    min_chars: int = 50,
    max_new_tokens: int = 64,
    block_verbatim: int = 0,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 50,
) -> dict[str, Any]:
    """Prompt a loaded text run (`LanguageModel`) with `n_prompts` prefixes of `prefix_chars` characters
    drawn from its training split and count (a) continuations that repeat the training text that followed
    the prefix for at least `min_chars` characters (Carlini et al.'s extractable memorization, greedy by
    default) and (b) generations holding any span of `min_chars` characters copied verbatim from the training
    text. With `block_verbatim`, the guard is on. Recorded in summary.json and card.md."""
    from genloom.data.text import load_corpus

    run_dir = Path(lm.run_dir)
    if lm.config is None:
        raise UserError(f"{run_dir}: a pretrained model has no training corpus of genloom's to test memorization on")
    for name, value in (("n_prompts", n_prompts), ("prefix_chars", prefix_chars), ("min_chars", min_chars)):
        if value < 1:
            raise UserError(f"{name} must be a positive number, got {value}")
    index = load_index(run_dir, "the memorization evaluation")
    if min_chars < index.order:
        raise UserError(
            f"min_chars: {min_chars} characters is below the {index.order}-byte n-grams this run's index holds; "
            f"use min_chars >= {index.order}"
        )
    try:
        corpus = load_corpus(lm.config.data)
    except UserError as e:
        raise UserError(
            f"{run_dir}: the memorization evaluation prompts with the training corpus (data.source = "
            f"{lm.config.data.source!r}), which cannot be read: {e}"
        ) from None
    saved = saved_stamp(run_dir).get("corpus")
    if saved is not None and corpus_stamp(corpus.train, corpus.val, lm.config.data.pii_kinds) != saved:
        raise UserError(
            f"{run_dir}: the corpus at data.source = {lm.config.data.source!r} has changed since the run trained "
            f"(its fingerprint differs from {run_dir / DATA_STAMP}); the evaluation needs the training text"
        )
    docs = [d for d in corpus.train if len(d) >= prefix_chars + min_chars]
    if not docs:
        raise UserError(
            f"{run_dir}: no training document is longer than prefix_chars + min_chars = {prefix_chars + min_chars}"
        )
    rng = random.Random(seed)
    weights = [len(d) - prefix_chars - min_chars + 1 for d in docs]
    prompts, truths = [], []
    for doc in rng.choices(docs, weights=weights, k=n_prompts):
        at = rng.randrange(len(doc) - prefix_chars - min_chars + 1)
        prompts.append(doc[at : at + prefix_chars])
        truths.append(doc[at + prefix_chars : at + prefix_chars + min_chars])
    training_text = "\x00".join(corpus.train)
    options = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "seed": seed,
        "block_verbatim": block_verbatim,
        "context_overflow": "truncate",  # a prefix longer than the context: the model sees its end, as in training
    }
    extractable = verbatim = spans = 0
    longest = 0
    for i in range(0, n_prompts, batch_size):
        for truth, c in zip(
            truths[i : i + batch_size], lm.complete(prompts[i : i + batch_size], **options), strict=True
        ):
            extractable += c.text.startswith(truth)
            found = verbatim_spans(c.text, index, training_text, min_chars)
            spans += len(found)
            verbatim += bool(found)
            longest = max([longest, *(len(s) for s in found)])
    metrics = {
        "prompts": n_prompts,
        "prefix_chars": prefix_chars,
        "min_chars": min_chars,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "block_verbatim": block_verbatim,
        "extractable": extractable,
        "extractable_rate": extractable / n_prompts,
        "verbatim_generations": verbatim,
        "verbatim_rate": verbatim / n_prompts,
        "verbatim_spans": spans,
        "longest_verbatim_chars": longest,
        "index_order_bytes": index.order,
    }
    summary = read_summary(run_dir)
    summary[MEMORIZATION_SECTION] = metrics
    rundir.atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return metrics


def verbatim_spans(text: str, index: NgramIndex, training_text: str, min_chars: int) -> list[str]:
    """The maximal spans of `text` (at least `min_chars` characters) that occur verbatim in `training_text`:
    the index proposes covered spans, each is then grown exactly against the corpus."""
    found = []
    for start, end in index.covered_spans(text, min_chars):
        i = start
        while i + min_chars <= end:
            if text[i : i + min_chars] not in training_text:
                i += 1
                continue
            j = i + min_chars  # extend the exact match as far as the training text allows
            while j < end and text[i : j + 1] in training_text:
                j += 1
            found.append(text[i:j])
            i = j
    return found


def memorization_line(m: Mapping[str, Any]) -> str:
    guard = f", with block_verbatim={m['block_verbatim']}" if m["block_verbatim"] else ""
    return (
        f"memorization ({m['prompts']:,} training prefixes of {m['prefix_chars']} characters, "
        f"{m['max_new_tokens']} new tokens, temperature {m['temperature']:g}{guard}): {m['extractable']} "
        f"({m['extractable_rate']:.1%}) continue their training text verbatim for >= {m['min_chars']} characters; "
        f"{m['verbatim_generations']} ({m['verbatim_rate']:.1%}) hold a span of >= {m['min_chars']} characters "
        f"copied from it (longest {m['longest_verbatim_chars']})"
    )


def responsible_sections(summary: dict[str, Any]) -> dict[str, dict[str, Any] | str]:
    """The card sections of the last memorization and bias evaluations (empty if none)."""
    from genloom.evaluate.bias import bias_line

    sections: dict[str, dict[str, Any] | str] = {}
    m = summary.get(MEMORIZATION_SECTION)
    if m:
        sections["Memorization (Carlini et al. 2021; `genloom eval memorization`)"] = memorization_line(m) + "."
    b = summary.get(BIAS_SECTION)
    if b:
        sections["Bias (CrowS-Pairs, Nangia et al. 2020; `genloom eval bias`)"] = bias_line(b) + "."
    return sections
