"""Encoder-decoder runs (`seq2seq`): the parallel-text pipeline, training, the `Translator` handle and
evaluation (held-out loss, sacrebleu BLEU and chrF).

```python
import genloom as gl
gl.train("seq2seq", data="tatoeba-eng-fra", preset="tatoeba-cpu", out="runs/en-fr")
tr = gl.load("runs/en-fr")
tr.translate(["I am hungry.", "Where is the station?"], num_beams=4)
gl.evaluate("runs/en-fr")  # test-split loss, BLEU and chrF
```

Translation decodes through the generation engine (`genloom.generation.complete`): the model encodes a
batch of sources once (`Seq2Seq.bind`) and the engine drives the bound decoder with the same
processors, KV cache and beam search as a decoder-only model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
from torch import nn

from genloom import run as rundir
from genloom.api.modality import Log, Modality, Sampled, timed_rates
from genloom.api.runs import (
    RunConfig,
    build_model,
    end_summary,
    file_hash,
    fingerprint,
    load_run_model,
    read_run_config,
    read_summary,
    saved_stamp,
    start_run,
    write_summary,
)
from genloom.api.text import generation_config
from genloom.data.pairs import PairData, PairDataConfig, encode_pairs, load_pair_splits, train_pair_tokenizer
from genloom.data.parallel import BUNDLED_PAIRS, DATA_DIR, PairSplits
from genloom.errors import UserError
from genloom.evaluate import plot_loss_curve, write_card
from genloom.evaluate.translation import bleu_chrf
from genloom.generation import Completion, complete
from genloom.models import Family, get_family
from genloom.models.seq2seq import Seq2Seq
from genloom.tokenizers import BPETokenizer, Tokenizer, load_tokenizer
from genloom.train import Trainer, TrainResult

TRANSLATE_BATCH = 64  # sources encoded and decoded together (greedy and sampling)


# ---- pipeline and training --------------------------------------------------------------------


@dataclass
class PairPipeline:
    """What a seq2seq run needs besides the model: the splits, the shared tokenizer, encoded batches."""

    splits: PairSplits
    tokenizer: BPETokenizer
    data: PairData
    stats: dict[str, Any]
    stamp: dict[str, str]


def prepare_pairs(rc: RunConfig, tokenizer: Tokenizer | None = None) -> PairPipeline:
    """Read, split and tokenize the pairs; the tokenizer is learned on the training split unless given."""
    cfg: PairDataConfig = rc.data
    splits = load_pair_splits(cfg)
    if tokenizer is None:
        tokenizer = train_pair_tokenizer(splits.train, cfg.vocab_size)
    if not isinstance(tokenizer, BPETokenizer) or tokenizer.eos_id is None:
        raise UserError("a seq2seq run needs a byte-level BPE tokenizer with an end-of-text token")
    block = rc.model.block_size
    encoded = {
        name: encode_pairs(getattr(splits, name), tokenizer, block, cfg.truncate, name)
        for name in ("train", "val", "test")
    }
    data = PairData(encoded, tokenizer.eos_id, block)
    stats = {
        **{f"{name}_pairs": len(pairs) for name, pairs in encoded.items()},
        "train_source_tokens": sum(len(p.source) for p in encoded["train"]),
        "train_target_tokens": sum(len(p.target) for p in encoded["train"]),
        "vocab_size": tokenizer.vocab_size,
    }
    texts = [t for p in splits.train + splits.val + splits.test for t in (p.source, p.target)]
    return PairPipeline(splits, tokenizer, data, stats, {"pairs": fingerprint(texts)})


def _with_tokenizer(rc: RunConfig, tokenizer: BPETokenizer) -> RunConfig:
    """The model config filled in from the tokenizer: vocabulary and the start/end token."""
    eos = tokenizer.eos_id
    model = dataclasses.replace(rc.model, vocab_size=tokenizer.vocab_size, start_id=eos, eos_id=eos)
    return dataclasses.replace(rc, model=model)


def train_seq2seq(
    fam: Family, rc: RunConfig, out: Path, *, resume: bool, overwrite: bool, log: Callable[[str], None] | None
) -> TrainResult:
    """Train an encoder-decoder on `rc`'s pairs: tokenizer, stamps, trainer, card."""
    if resume:
        saved = saved_stamp(out)
        if saved.get("tokenizer") != file_hash(out / rundir.TOKENIZER):
            raise UserError(f"--resume {out}: {rundir.TOKENIZER} does not match the run (changed after training)")
        pipe = prepare_pairs(rc, load_tokenizer(out / rundir.TOKENIZER))
        if saved.get("pairs") != pipe.stamp["pairs"]:
            raise UserError(f"--resume {out}: the pairs differ from the ones this run was trained on")
    else:
        pipe = prepare_pairs(rc)
        rc = _with_tokenizer(rc, pipe.tokenizer)
    torch.manual_seed(rc.train.seed)
    model = build_model(fam, rc.model)  # validates the config before anything is written
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    sampler = _translation_sampler(rc, pipe, out)
    trainer = Trainer(model, rc.train, pipe.data, out, sampler=sampler, log=log)
    start_run(out, rc, pipe.stamp, resume, trainer, pipe.tokenizer)
    result = trainer.fit(resume=resume)
    model_info = {"parameters": model.num_params(), "flops_per_token": model.flops_per_token()}
    summary = end_summary(out, pipe.stats, model_info, result, trainer, "tokens_per_s")
    if result.ms_per_iter:  # the loop counts block_size tokens per row; a pair holds far fewer
        rows = rc.train.batch_size * rc.train.grad_accum
        summary["training"]["tokens_per_s"] = rows * pipe.data.tokens_per_sequence / (result.ms_per_iter / 1000)
    write_summary(out, summary)
    plot_loss_curve(out, fam.loss)
    write_seq2seq_card(out, rc, summary)
    return result


def _translation_sampler(rc: RunConfig, pipe: PairPipeline, out: Path) -> Callable[[nn.Module], str]:
    """At each evaluation, greedy translations of the first three validation sources (up to
    `train.sample_tokens` tokens each), so the log shows the model learning."""
    sources = list(dict.fromkeys(p.source for p in pipe.splits.val))[:3]
    max_new = min(rc.train.sample_tokens, rc.model.block_size - 1)

    def sample(model: nn.Module) -> str:
        assert isinstance(model, Seq2Seq)
        hyps = Translator(model, pipe.tokenizer, rc, out).translate(sources, max_new_tokens=max_new)
        return "\n".join(f"{s} → {h}" for s, h in zip(sources, hyps, strict=True))

    return sample


def write_seq2seq_card(run_dir: Path, rc: RunConfig, summary: dict[str, Any]) -> None:
    source = rc.data.source
    provenance = f"Source: `{source}`."
    if source in BUNDLED_PAIRS:
        src = DATA_DIR / Path(BUNDLED_PAIRS[source]).parent / "SOURCE.md"
        provenance = f"Bundled dataset `{source}`; origin and license in `data/{src.parent.name}/SOURCE.md` of genloom."
        if src.exists():  # the paragraph under "## License / attribution"
            _, _, rest = src.read_text().partition("## License")
            paragraph = rest.split("\n\n")[0].split("\n")[1:]
            provenance += "\n\n" + " ".join(line.strip() for line in paragraph)
    m = rc.model
    sections: dict[str, dict[str, Any] | str] = {
        "Model": {
            "family": rc.family,
            "encoder × decoder layers × heads × width": f"{m.n_layer} × {m.n_decoder_layer or m.n_layer} × {m.n_head} × {m.n_embd}",
            "context per side (block_size)": m.block_size,
            "positions / norm": f"{m.pos_encoding} / {m.norm_position}-norm",
            "label smoothing": m.label_smoothing,
            "parameters": summary.get("model", {}).get("parameters"),
            "tokenizer": f"shared byte-level BPE (vocab {m.vocab_size})",
        },
        "Data": provenance,
        "Data statistics": summary.get("data", {}),
        "Training": summary.get("training", {}),
    }
    if "evaluation" in summary:
        sections["Evaluation (test split)"] = summary["evaluation"]
    sections["Intended use"] = "A small research/teaching translation model; expect short, simple sentences only."
    run = str(run_dir)
    usage = (
        f'tr = gl.load("{run}")\nprint(tr.translate(["I am hungry.", "Where is the station?"], num_beams=4))',
        f'genloom translate {run} "I am hungry." --num-beams 4\ngenloom eval {run}',
    )
    write_card(run_dir, f"Model card: {run_dir.name}", sections, usage)


# ---- the handle -------------------------------------------------------------------------------


class Translator:
    """A loaded seq2seq run: the model and its shared tokenizer, text in, translations out."""

    def __init__(self, model: Seq2Seq, tokenizer: BPETokenizer, config: RunConfig, run_dir: Path) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.run_dir = run_dir

    def _source_ids(self, texts: Sequence[str], truncate: bool) -> list[list[int]]:
        """Each source with its end-of-text; longer than the context: an error, or its first tokens."""
        block, eos = self.model.config.block_size, self.model.config.eos_id
        rows = []
        for i, ids in enumerate(self.tokenizer.encode_batch(list(texts))):
            if not ids:
                raise UserError(f"text {i} is empty: nothing to translate")
            if len(ids) + 1 > block and not truncate:
                raise UserError(
                    f"text {i} has {len(ids) + 1} tokens (end-of-text included), more than the model's context of "
                    f"{block}: {texts[i][:40]!r}...; shorten it or pass context_overflow='truncate' (--truncate)"
                )
            rows.append([*ids[: block - 1], eos])
        return rows

    def _encode_batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        S = max(len(r) for r in rows)
        src = torch.full((len(rows), S), self.model.config.eos_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(rows), S), dtype=torch.bool, device=device)
        for i, r in enumerate(rows):
            src[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        return src, mask

    @torch.inference_mode()
    def complete(self, texts: str | Sequence[str], **options: Any) -> list[Completion]:
        """Full results (text, token ids, finish reason) for one source or a batch; `options` are
        `GenerationConfig` fields. Greedy by default (temperature 0); max_new_tokens defaults to the
        decoder's context."""
        block = self.model.config.block_size
        options = {"temperature": 0.0, "max_new_tokens": block - 1, **options}
        cfg = generation_config(**options)
        if cfg.max_new_tokens > block - 1:
            raise UserError(f"max_new_tokens must be at most {block - 1} (the decoder's context minus its start token)")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise UserError("no texts given")
        rows = self._source_ids(texts, cfg.context_overflow == "truncate")
        start = [self.model.config.start_id]
        decode, eos = self.tokenizer.decode, self.model.config.eos_id
        results: dict[int, Completion] = {}
        # beam search runs one source at a time; otherwise batches of sources of similar length (little
        # padding) decode together
        step = 1 if cfg.num_beams > 1 else TRANSLATE_BATCH
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for s in range(0, len(rows), step):
            chunk = order[s : s + step]
            decoder = self.model.bind(*self._encode_batch([rows[i] for i in chunk]))
            results.update(zip(chunk, complete(decoder, [start] * len(chunk), cfg, decode, eos), strict=True))
        return [results[i] for i in range(len(rows))]

    @overload
    def translate(self, texts: str, **options: Any) -> str: ...

    @overload
    def translate(self, texts: Sequence[str], **options: Any) -> list[str]: ...

    def translate(self, texts: str | Sequence[str], **options: Any) -> str | list[str]:
        """The translation of `texts` (one string, or a list translated in batches). Greedy unless
        `num_beams` > 1 or a `temperature` > 0 is given; any other `GenerationConfig` field works too."""
        results = [c.text for c in self.complete(texts, **options)]
        return results[0] if isinstance(texts, str) else results


def load_seq2seq_run(run_dir: Path, rc: RunConfig, checkpoint: str) -> Translator:
    """A seq2seq run with its tokenizer, checked against each other."""
    model = load_run_model(run_dir, get_family(rc.family), rc, checkpoint)
    tokenizer = load_tokenizer(run_dir / rundir.TOKENIZER)
    if not isinstance(tokenizer, BPETokenizer) or tokenizer.vocab_size != rc.model.vocab_size:
        raise UserError(
            f"{run_dir / rundir.TOKENIZER}: not the byte-level BPE of {rc.model.vocab_size} tokens the model has"
        )
    assert isinstance(model, Seq2Seq)
    return Translator(model, tokenizer, rc, run_dir)


# ---- evaluation -------------------------------------------------------------------------------


@torch.inference_mode()
def pair_loss(model: Seq2Seq, data: PairData, split: str) -> dict[str, float]:
    """Exact mean cross-entropy (nats per target token, no label smoothing) over a whole split."""
    model.eval()
    total, count = 0.0, 0
    for batch in data.batches(split, 64):
        _, terms = model.loss(batch)
        n = int((batch[3] != -100).sum())
        total += float(terms["nll"]) * n
        count += n
    mean = total / count
    return {f"{split}_loss": mean, f"{split}_perplexity": math.exp(mean), f"{split}_target_tokens": count}


def evaluate_seq2seq(
    tr: Translator, checkpoint: str = "last", split: str = "test", max_sentences: int | None = None, num_beams: int = 1
) -> dict[str, Any]:
    """Held-out loss over every pair of `split`, and BLEU/chrF of greedy (or beam) translations of its
    distinct source sentences, each scored against all its references; recorded in card.md."""
    if split not in ("val", "test"):
        raise UserError(f"split must be 'val' or 'test', got {split!r}")
    rc = tr.config
    rc = dataclasses.replace(rc, data=dataclasses.replace(rc.data, truncate=True))  # score long pairs too
    pipe = prepare_pairs(rc, tr.tokenizer)
    metrics: dict[str, Any] = pair_loss(tr.model, pipe.data, split)
    references: dict[str, list[str]] = {}
    for p in getattr(pipe.splits, split):
        references.setdefault(p.source, []).append(p.target)
    sources = list(references)[:max_sentences]
    hypotheses = tr.translate(sources, num_beams=num_beams, context_overflow="truncate")
    metrics.update(bleu_chrf(hypotheses, [references[s] for s in sources]))
    metrics.update({f"{split}_sentences": len(sources), "num_beams": num_beams, "checkpoint": checkpoint})
    summary = read_summary(tr.run_dir)
    summary["evaluation"] = metrics
    write_summary(tr.run_dir, summary)
    write_seq2seq_card(tr.run_dir, tr.config, summary)
    return metrics


# ---- the contract (genloom.api.modality) ------------------------------------------------------


class PairsModality(Modality):
    """Text-to-text pairs (the encoder-decoder): translation, scored by BLEU and chrF."""

    def data(self, rc: Any) -> Any:
        return prepare_pairs(rc)

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        return train_seq2seq(family, rc, out, resume=resume, overwrite=overwrite, log=log)

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> Any:
        return load_seq2seq_run(run_dir, rc, checkpoint)

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        raise UserError(
            f"{handle.run_dir}: a seq2seq run translates rather than continues text; use `genloom translate`"
        )

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        tr = self.load(run_dir, read_run_config(run_dir), checkpoint)
        return evaluate_seq2seq(tr, checkpoint, max_sentences=options.get("max_sentences"))

    def describe(self, metrics: Mapping[str, Any]) -> str:
        m = metrics
        return (
            f"BLEU {m['bleu']:.2f}, chrF {m['chrf']:.2f} over {m['test_sentences']:,} test sentences; "
            f"test loss {m['test_loss']:.4f} nats/token ({m['bleu_signature']})"
        )

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        write_seq2seq_card(run_dir, rc, summary)

    def compare_evaluation(self) -> dict[str, Any]:
        return {"max_sentences": 500}

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        tr: Translator = handle
        sources = list(dict.fromkeys(p.source for p in prepare_pairs(tr.config, tr.tokenizer).splits.val))[:16]
        return timed_rates(lambda: len(tr.translate(sources)), rounds), "sentences/s"

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        tr: Translator = handle
        sources = list(dict.fromkeys(p.source for p in prepare_pairs(tr.config, tr.tokenizer).splits.test))[:6]
        lines = [f"{s} → {t}" for s, t in zip(sources, tr.translate(sources), strict=True)]
        return "text/plain", "\n".join(lines).encode()
