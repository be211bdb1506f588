"""Text runs (GPT and BERT): the corpus pipeline, training, the `LanguageModel` handle, Hugging Face
directories."""

import copy
import dataclasses
import json
import math
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
from torch import nn

from genloom import run as rundir
from genloom.api.code import describe_code, evaluate_code
from genloom.api.modality import Log, Modality, Sampled, timed_rates
from genloom.api.responsible import (
    BIAS_SECTION,
    INDEX_ARRAY,
    bind_run,
    corpus_stamp,
    detect_text,
    evaluate_memorization,
    memorization_line,
    responsible_sections,
    write_index,
)
from genloom.api.runs import (
    RunConfig,
    announce,
    build_model,
    end_summary,
    file_hash,
    load_run_model,
    read_run_config,
    read_summary,
    saved_stamp,
    start_run,
    write_summary,
)
from genloom.chat import AnyChatTemplate, ChatTemplate, RenderedChat, render_messages, stop_sequences
from genloom.data.code import FIMTokenData, fim_ids, load_code_corpus
from genloom.data.masking import MaskedTokenData
from genloom.data.text import (
    BUNDLED,
    CHAR_DOC_SEPARATOR,
    DATA_DIR,
    PYTHON_STDLIB,
    TokenData,
    build_tokenizer,
    encode_documents,
    load_corpus,
    resolve_source,
)
from genloom.errors import UserError
from genloom.evaluate import language_model_loss, masked_lm_metrics, plot_loss_curve, write_card
from genloom.evaluate.bias import bias_line, causal_pair_scorer, crows_pairs, masked_pair_scorer
from genloom.generation import Completion, GenerationConfig, complete, stream
from genloom.generation.constrained import bind
from genloom.masked_lm import MaskedLanguageModel, Pooling, masked_batches
from genloom.models import Family, bert, get_family
from genloom.tokenizers import (
    CharTokenizer,
    CodeTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    load_pretrained_tokenizer,
    load_tokenizer,
)
from genloom.train import TrainConfig, Trainer, TrainResult

# ---- text pipeline ----------------------------------------------------------------------------


@dataclass
class TextPipeline:
    """Everything a text run needs besides the model: the tokenizer, token streams and provenance."""

    tokenizer: Tokenizer
    data: TokenData
    stats: dict[str, Any]
    stamp: dict[str, str]
    documents: list[str]  # the training split's text (for the n-gram index of block_verbatim)


def prepare_text(rc: RunConfig, tokenizer: Tokenizer | None = None) -> TextPipeline:
    """Read and preprocess the corpus (a source tree with `data.code`), build (or reuse) the tokenizer,
    encode both splits; with `data.fim_rate`, training batches are rearranged for fill-in-the-middle."""
    corpus = load_code_corpus(rc.data) if rc.data.code else load_corpus(rc.data)
    tokenizer = tokenizer or build_tokenizer(corpus, rc.data)
    source = str(resolve_source(rc.data.source))
    train_ids = encode_documents(corpus.train, tokenizer, source)
    val_ids = encode_documents(corpus.val, tokenizer, source)
    data: TokenData
    if rc.data.fim_rate > 0:
        if not isinstance(tokenizer, CodeTokenizer):
            raise UserError(f"data.fim_rate: {rc.data.fim_rate} needs a code tokenizer (data.tokenizer=code)")
        fim = (tokenizer, rc.data.fim_rate, rc.data.fim_spm_rate)
        data = FIMTokenData(train_ids, val_ids, rc.model.block_size, *fim, source=rc.data.source)
    else:
        data = TokenData(train_ids, val_ids, rc.model.block_size, rc.data.source)
    stats = {
        **corpus.stats,
        "train_tokens": len(train_ids),
        "val_tokens": len(val_ids),
        "vocab_size": tokenizer.vocab_size,
    }
    # the scrub setting is part of the fingerprint: --resume notices a change
    stamp = {"corpus": corpus_stamp(corpus.train, corpus.val, rc.data.pii_kinds)}
    return TextPipeline(tokenizer, data, stats, stamp, corpus.train)


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Prompt ids; an empty prompt starts from the document separator the model was trained with."""
    if prompt:
        return tokenizer.encode(prompt)
    if isinstance(tokenizer, CharTokenizer):
        return tokenizer.encode(CHAR_DOC_SEPARATOR[-1])
    if tokenizer.eos_id is not None:
        return [tokenizer.eos_id]
    raise UserError("an empty prompt needs a tokenizer with an end-of-text token; give a prompt")


def _text_sampler(tokenizer: Tokenizer, n_tokens: int, seed: int) -> Callable[[nn.Module], str]:
    """Sample text during training through the generation engine, with its own seeded generator (the same
    draw each time, so samples compare across steps; training randomness is untouched)."""
    cfg = GenerationConfig(max_new_tokens=n_tokens, temperature=0.8, seed=seed, stop_at_eos=False)

    def sample(model: nn.Module) -> str:
        return complete(model, [prompt_ids(tokenizer, "")], cfg, tokenizer.decode)[0].text

    return sample


def train_text(
    fam: Family,
    rc: RunConfig,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    log: Callable[[str], None] | None,
    masked: bool = False,
) -> TrainResult:
    """Train a text family on `rc`'s corpus: tokenizer, stamps, trainer, card. `masked`: BERT's objective
    (framed windows masked by the recipe) instead of next-token windows."""
    if resume:
        saved = saved_stamp(out)
        tokenizer = load_tokenizer(out / rundir.TOKENIZER)
        if tokenizer.vocab_size != rc.model.vocab_size or saved.get("tokenizer") != file_hash(out / rundir.TOKENIZER):
            raise UserError(
                f"--resume {out}: {rundir.TOKENIZER} does not match the run (it was changed after training)"
            )
        pipe = prepare_text(rc, tokenizer)
        if saved.get("corpus") != pipe.stamp["corpus"]:
            raise UserError(
                f"--resume {out}: the corpus differs from the one this run was trained on; resume with the same data"
            )
    else:
        pipe = prepare_text(rc)
        rc = dataclasses.replace(rc, model=dataclasses.replace(rc.model, vocab_size=pipe.tokenizer.vocab_size))
        if isinstance(pipe.tokenizer, WordPieceTokenizer) and masked:  # its [PAD] is the model's
            rc = dataclasses.replace(rc, model=dataclasses.replace(rc.model, pad_id=pipe.tokenizer.pad_id))
    announce(ingest_summary(rc, pipe.stats), log)
    torch.manual_seed(rc.train.seed)  # initialization is part of the run's reproducibility
    model = build_model(fam, rc.model)  # also validates the config against the data before writing
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    sampler: Callable[[nn.Module], str] | None = _text_sampler(pipe.tokenizer, rc.train.sample_tokens, rc.train.seed)
    batches: TokenData | MaskedTokenData = pipe.data
    if masked:  # BERT: framed windows masked by the recipe; nothing to sample
        batches = masked_data(rc, pipe)
        sampler = None
    trainer = Trainer(model, rc.train, batches, out, sampler=sampler, log=log)
    start_run(out, rc, pipe.stamp, resume, trainer, pipe.tokenizer)
    if not masked and rc.data.verbatim_index and not (out / INDEX_ARRAY).exists():  # what block_verbatim consults
        write_index(out, pipe.documents, rc.data.verbatim_index, pipe.stamp["corpus"])
    result = trainer.fit(resume=resume)
    model_info = {"parameters": model.num_params(), "flops_per_token": model.flops_per_token()}
    summary = end_summary(out, pipe.stats, model_info, result, trainer, "tokens_per_s")
    write_summary(out, summary)
    plot_loss_curve(out, fam.loss)
    write_text_card(out, rc, summary)
    return result


def ingest_summary(rc: RunConfig, stats: dict[str, Any]) -> list[str]:
    """What a text run read, printed before its first step, and a warning when most of a folder was
    skipped (a folder of .py files read as one .txt file lost a user a whole run)."""
    d = rc.data
    lines = []
    if "skipped_by_reason" in stats:  # a source tree (genloom/data/code.py)
        lines.append(
            f"data: {d.source}: read {stats['files_read']} of {stats['files_matched']} files matching {d.glob!r}"
            f" ({stats['read_by_suffix']})"
        )
        if stats["files_skipped"]:
            lines.append(f"  skipped {stats['files_skipped']}: {stats['skipped_by_reason']}")
    elif "files_matched" in stats:
        lines.append(
            f"data: {d.source}: read {stats['files_read']} of {stats['files_matched']} files matching {d.glob!r}"
            f" ({stats['read_by_suffix']})"
            + (f"; skipped {stats['skipped_by_suffix']}" if stats["files_skipped"] else "")
        )
    else:
        lines.append(f"data: {d.source}")
    tokens = stats["train_tokens"] + stats["val_tokens"]
    lines.append(
        f"  {stats['documents']:,} documents ({stats['duplicates_removed']} duplicates removed), "
        f"{stats['characters']:,} characters -> {tokens:,} tokens ({d.tokenizer} tokenizer, vocabulary "
        f"{stats['vocab_size']:,}); split by {stats['split']}: train {stats['train_tokens']:,}, validation "
        f"{stats['val_tokens']:,} tokens"
    )
    if "pii_scrubbed" in stats:
        counts = ", ".join(f"{kind} {n:,}" for kind, n in stats["pii_scrubbed"].items())
        lines.append(f"  personal data replaced by placeholders (data.scrub_pii): {counts}")
    if d.fim_rate > 0:
        lines.append(
            f"  fill-in-the-middle: {d.fim_rate:.0%} of training documents rearranged "
            f"({d.fim_spm_rate:.0%} of them suffix-prefix-middle); validation stays left-to-right"
        )
    if stats.get("files_skipped", 0) > stats.get("files_read", 0) and "skipped_by_reason" not in stats:
        lines.append(
            f"warning: most files under {d.source} were skipped ({stats['skipped_by_suffix']}): they do not have a "
            "text or code suffix; read every matched file with --set 'data.extensions=[]', or choose with --glob"
        )
    return lines


def masked_data(rc: RunConfig, pipe: TextPipeline) -> MaskedTokenData:
    """The masked-LM batch source over the same token streams as `pipe.data`."""
    return masked_batches(
        pipe.tokenizer, pipe.data.splits["train"], pipe.data.splits["val"], rc.model.block_size, rc.data
    )


def _table_lines(counts: Mapping[str, Any], header: tuple[str, str]) -> str:
    rows = [f"| {header[0]} | {header[1]} |", "|---|---|", *(f"| {k} | {v} |" for k, v in counts.items())]
    return "\n".join(rows)


def write_text_card(run_dir: Path, rc: RunConfig, summary: dict[str, Any]) -> None:
    source = rc.data.source
    provenance = f"Source: `{source}`."
    if source in BUNDLED:
        provenance = f"Bundled dataset `{source}`; origin and license in `data/{Path(BUNDLED[source]).parent}/SOURCE.md` of genloom."
        src = DATA_DIR / Path(BUNDLED[source]).parent / "SOURCE.md"
        if src.exists():
            provenance += "\n\n" + "\n".join(
                line for line in src.read_text().splitlines() if "license" in line.lower() or "MIT" in line
            )
    if source == PYTHON_STDLIB:
        provenance = (
            f"The Python standard library of the interpreter that trained it (Python {platform.python_version()}, "
            f"`{resolve_source(source)}`), read as a source tree. License: the Python Software Foundation "
            "License (PSF-2.0); the library is Copyright (c) 2001 Python Software Foundation, all rights reserved."
        )
    if rc.data.fim_rate > 0:
        provenance += (
            f"\n\nTrained for fill-in-the-middle (Bavarian et al. 2022): {rc.data.fim_rate:.0%} of training "
            f"documents rearranged, {rc.data.fim_spm_rate:.0%} of those in SPM order."
        )
    m = rc.model
    sections: dict[str, dict[str, Any] | str] = {
        "Model": {
            "family": rc.family,
            "layers × heads × width": f"{m.n_layer} × {m.n_head} × {m.n_embd}",
            "context (block_size)": m.block_size,
            "positions / MLP / norm": f"{m.pos_encoding} / {m.mlp} / {m.norm}"
            if rc.family == "gpt"
            else f"learned / gelu / layernorm ({m.norm_position}-norm)",
            "parameters": summary.get("model", {}).get("parameters"),
            "training FLOPs per token": summary.get("model", {}).get("flops_per_token"),
            "tokenizer": f"{rc.data.tokenizer} (vocab {m.vocab_size})",
        },
        "Data": provenance,
        "Data statistics": {k: v for k, v in summary.get("data", {}).items() if k != "pii_scrubbed"},
        "Training": summary.get("training", {}),
    }
    scrubbed = summary.get("data", {}).get("pii_scrubbed")
    if scrubbed is not None:
        sections["Personal data"] = (
            "Scrubbed before training (`data.scrub_pii`, genloom/data/pii.py): each item became a typed placeholder "
            "such as `<EMAIL>`.\n\n" + _table_lines(scrubbed, ("kind", "replaced"))
        )
    if "evaluation" in summary:
        sections["Evaluation (exact, whole validation split)"] = summary["evaluation"]
    for heading, body in responsible_sections(summary).items():
        sections[heading] = body
    for kind, figures in sorted(summary.get("code_evaluation", {}).items()):
        sections[f"Evaluation: {kind}"] = figures
    samples = sorted((run_dir / rundir.SAMPLES).glob("step_*.txt"))
    if samples:
        sections[f"Sample ({samples[-1].stem})"] = "```\n" + samples[-1].read_text()[:600] + "\n```"
    sections["Intended use"] = (
        "A small research/teaching model. It imitates its training text; it has no knowledge or safety tuning."
    )
    run = str(run_dir)
    if rc.family == "gpt" and rc.data.fim_rate > 0:
        usage = (
            f'lm = gl.load("{run}")\nprint(lm.infill("def add(a, b):\\n    return ", "\\n", max_new_tokens=32))',
            f"genloom eval {run} --humaneval single-line\ngenloom serve {run}  # POST /infill, /v1/completions with suffix",
        )
    elif rc.family == "gpt":
        usage = (
            f'lm = gl.load("{run}")\nprint(lm.generate("", max_new_tokens=100, temperature=0.8, seed=0))\n'
            f'print(lm.score("some text of yours"))  # log-likelihood and perplexity',
            f"genloom sample {run} --max-new-tokens 100 --seed 0\ngenloom chat {run}\ngenloom serve {run}",
        )
    else:
        usage = (
            f'lm = gl.load("{run}")\nprint(lm.fill_mask("To be or not to [MASK]."))\nvectors = lm.embed(["a text", "another"])',
            f'genloom fill-mask {run} "To be or not to [MASK]."',
        )
    write_card(run_dir, f"Model card: {run_dir.name}", sections, usage)


# ---- load / evaluate --------------------------------------------------------------------------


class LanguageModel:
    """A loaded text run: model, tokenizer and config joined for generation and evaluation."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        config: RunConfig,
        run_dir: Path,
        bos_id: int | None = None,
        chat_template: AnyChatTemplate | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.run_dir = run_dir
        self.bos_id = bos_id  # what an empty prompt starts from (a pretrained checkpoint's beginning-of-text)
        # None: a base run, chats in plain role lines; a pretrained checkpoint's own Jinja template if it has one
        self.chat_template: AnyChatTemplate | None = chat_template or ChatTemplate.load(run_dir)
        self.quantized: dict[str, Any] | None = None  # what `gl.load(..., quantize=)` did to the weights

    def _ids(self, prompt: str) -> list[int]:
        """A prompt's ids as the model's own tokenizer gives them: a pretrained tokenizer adds the start
        token its post-processor adds (none for a genloom run); a rendered chat already holds its tokens."""
        tok = self.tokenizer
        if isinstance(prompt, RenderedChat) or isinstance(tok, CharTokenizer):
            ids = tok.encode(prompt) if prompt else []
        else:
            ids = tok.encode_framed(prompt)
        if ids:
            return ids
        if self.bos_id is not None:
            return [self.bos_id]
        return prompt_ids(tok, prompt)

    def prompt_ids(self, prompt: str) -> list[int]:
        """The token ids the model is given for `prompt` (what `complete` decodes from)."""
        return self._ids(prompt)

    @overload
    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        **options: Any,
    ) -> str: ...

    @overload
    def generate(
        self,
        prompt: Sequence[str],
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        **options: Any,
    ) -> list[str]: ...

    def generate(
        self,
        prompt: str | Sequence[str] = "",
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        **options: Any,
    ) -> str | list[str]:
        """The continuation of `prompt` (without the prompt); a list of prompts gives a list, generated
        as one batch. temperature 0 is greedy; `options` are any other `GenerationConfig` fields
        (top_p, min_p, stop, num_beams, repetition_penalty, ...)."""
        options.update(temperature=temperature, top_k=top_k, seed=seed)
        if "max_length" not in options:
            options["max_new_tokens"] = max_new_tokens
        completions = self.complete(prompt, **options)
        texts = [c.text for c in completions]
        one = isinstance(prompt, str) and int(options.get("num_return_sequences") or 1) == 1
        return texts[0] if one else texts

    def complete(self, prompt: str | Sequence[str] = "", **options: Any) -> list[Completion]:
        """Full results (text, token ids, finish reason, log-probabilities) for one prompt or a batch.
        Hugging Face's `num_return_sequences` (k samples per prompt, in prompt order) and `max_length`
        (prompt + new tokens) work too."""
        copies = int(options.pop("num_return_sequences", 1) or 1)
        max_length = options.pop("max_length", None)
        if copies < 1:
            raise UserError(f"num_return_sequences must be at least 1, got {copies}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise UserError("no prompts given")
        ids = [self._ids(p) for p in prompts for _ in range(copies)]
        if max_length is not None:
            if "max_new_tokens" in options and options["max_new_tokens"] is not None:
                raise UserError("give max_new_tokens or max_length (prompt included), not both")
            options["max_new_tokens"] = max(0, int(max_length) - max(len(i) for i in ids))
        cfg = self.responsible(bind(generation_config(**options), self.tokenizer))
        return complete(self.model, ids, cfg, self.tokenizer.decode, self.tokenizer.eos_id)

    def stream(self, prompt: str = "", **options: Any) -> Iterator[str]:
        """Yield the continuation of `prompt` in pieces as they are decided (whole characters only)."""
        cfg = self.responsible(bind(generation_config(**options), self.tokenizer))
        return stream(self.model, self._ids(prompt), cfg, self.tokenizer.decode, self.tokenizer.eos_id)

    def responsible(self, cfg: GenerationConfig) -> GenerationConfig:
        """`cfg` with this run's training-text index (block_verbatim) and watermark key (watermark)
        attached when it asks for them (docs/responsible.md)."""
        return bind_run(cfg, self.run_dir, self.tokenizer)

    def detect(self, text: str, gamma: float = 0.25, threshold: float = 4.0) -> dict[str, Any]:
        """Whether `text` carries this run's text watermark: z-score, p-value, green and scored tokens."""
        vocab = int(self.model.config.vocab_size)  # type: ignore[union-attr,arg-type]
        return detect_text(self.run_dir, self.tokenizer, vocab, text, gamma, threshold).to_json()

    # ---- fill-in-the-middle (docs/code.md) ----

    def fim_tokenizer(self, param: str = "suffix") -> CodeTokenizer:
        """The code tokenizer of a run trained for fill-in-the-middle; for any other run, one line naming
        `param` (the field that asked for a middle)."""
        tok = self.tokenizer
        trained = self.config is not None and getattr(self.config.data, "fim_rate", 0.0) > 0
        if not isinstance(tok, CodeTokenizer) or not trained:
            raise UserError(
                f"{param}: {self.run_dir.name} was trained without fill-in-the-middle (data.fim_rate=0), so it "
                "cannot fill a gap; leave out the suffix, or train with --preset code-cpu (data.fim_rate=0.5)"
            )
        return tok

    def infill_ids(
        self, prefix: str, suffix: str, max_new_tokens: int, mode: str = "psm", param: str = "suffix"
    ) -> list[int]:
        """The prompt that asks for the middle between `prefix` and `suffix` (PSM or SPM order)."""
        return self.fit_infill(prefix, suffix, max_new_tokens, mode, param)[0]

    def fit_infill(
        self, prefix: str, suffix: str, max_new_tokens: int, mode: str = "psm", param: str = "suffix", started: str = ""
    ) -> tuple[list[int], bool]:
        """`infill_ids`, and whether the code had to be cut: code that does not fit the context with
        `max_new_tokens` to spare is cut where it is farthest from the gap, at the prefix's start and the
        suffix's end (the suffix keeps at least a quarter of the room). `started`: the start of the middle,
        already written (it follows `<fim_middle>`)."""
        tok = self.fim_tokenizer(param)
        if mode not in ("psm", "spm"):
            raise UserError(f"mode must be 'psm' or 'spm', got {mode!r}")
        block = int(self.model.config.block_size)  # type: ignore[union-attr,arg-type]
        try:
            head = tok.encode(started) if started else []
        except UserError as e:
            raise UserError(f"prompt: {e}") from None
        room = block - max_new_tokens - len(head) - 3  # the three sentinel tokens
        if room < 2:
            raise UserError(
                f"max_new_tokens: {max_new_tokens} (and {len(head)} tokens of the middle's start) leave no room "
                f"for the code around the gap in the model's context of {block} tokens"
            )
        try:
            pre = tok.encode(prefix)
        except UserError as e:
            raise UserError(f"prefix: {e}") from None
        try:
            suf = tok.encode(suffix)
        except UserError as e:
            raise UserError(f"{param}: {e}") from None
        truncated = len(pre) + len(suf) > room
        if truncated:
            keep_suffix = min(len(suf), max(room // 4, room - len(pre)))
            suf = suf[:keep_suffix]
            pre = pre[len(pre) - (room - keep_suffix) :]
        return fim_ids(tok, pre, suf, None, spm=mode == "spm") + head, truncated

    def fim_banned(self) -> tuple[int, ...]:
        """The sentinel tokens a middle never contains (generation bans them)."""
        tok = self.fim_tokenizer()
        return (tok.fim_prefix_id, tok.fim_suffix_id, tok.fim_middle_id, tok.fim_pad_id)

    def _infill_config(self, options: dict[str, Any]) -> GenerationConfig:
        options.setdefault("max_new_tokens", 128)
        cfg = generation_config(**options)
        return dataclasses.replace(cfg, banned_tokens=(*cfg.banned_tokens, *self.fim_banned()), stop_at_eos=True)

    def infill(self, prefix: str, suffix: str = "", mode: str = "psm", **options: Any) -> str:
        """The code between `prefix` and `suffix` (fill-in-the-middle): generation ends where the model ends
        the middle (its end-of-text token), a stop string, or `max_new_tokens` (default 128). `options` are
        `generate`'s (temperature, top_k, seed, stop, ...); `mode` "spm" asks in suffix-prefix-middle order."""
        return self.complete_infill([prefix], [suffix], mode, **options)[0].text

    def complete_infill(
        self, prefixes: Sequence[str], suffixes: Sequence[str], mode: str = "psm", **options: Any
    ) -> list[Completion]:
        """`infill` for a batch of gaps at once, with the full results (token ids, finish reason)."""
        if len(prefixes) != len(suffixes):
            raise UserError(f"give one suffix per prefix: {len(prefixes)} prefixes, {len(suffixes)} suffixes")
        cfg = self._infill_config(options)
        ids = [self.infill_ids(p, s, cfg.max_new_tokens, mode) for p, s in zip(prefixes, suffixes, strict=True)]
        return complete(self.model, ids, cfg, self.tokenizer.decode, self.tokenizer.eos_id)

    def stream_infill(self, prefix: str, suffix: str = "", mode: str = "psm", **options: Any) -> Iterator[str]:
        """`infill`, yielded in pieces as they are decided."""
        cfg = self._infill_config(options)
        ids = self.infill_ids(prefix, suffix, cfg.max_new_tokens, mode)
        return stream(self.model, ids, cfg, self.tokenizer.decode, self.tokenizer.eos_id)

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The text the model continues for `messages` (the run's chat template, or plain role lines)."""
        return render_messages(messages, self.chat_template)

    def _chat_options(self, options: dict[str, Any]) -> dict[str, Any]:
        stops = tuple(options.pop("stop", None) or ())
        if isinstance(stops, str):
            stops = (stops,)
        return {**options, "stop": (*stop_sequences(self.chat_template), *stops)}

    def chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Completion:
        """The assistant's next turn for `messages`; it ends at the template's end-of-turn marker."""
        return self.complete(self.chat_prompt(messages), **self._chat_options(options))[0]

    def stream_chat(self, messages: Sequence[Mapping[str, str]], **options: Any) -> Iterator[str]:
        """`chat`, yielded in pieces as they are decided."""
        return self.stream(self.chat_prompt(messages), **self._chat_options(options))

    def apply_adapters(self, path: str | Path) -> "LanguageModel":
        """Attach the LoRA adapters of a `genloom tune lora` run (its directory) to this base run's model,
        in place: the vocabulary grows as the adapters' run did (new rows are rebuilt exactly), and that
        run's tokenizer and chat template are used. Adapters trained on another base run are refused."""
        from genloom.tune.lora import load_adapters, read_adapter_meta
        from genloom.tune.runner import weights_sha256

        path = Path(path)
        vocab = int(read_adapter_meta(path)["base"].get("vocab_size", self.config.model.vocab_size))
        if vocab != self.config.model.vocab_size and not (path / rundir.TOKENIZER).exists():
            raise UserError(f"{path}: adapters for a grown vocabulary need that run's {rundir.TOKENIZER}")
        candidate = copy.deepcopy(self.model)
        candidate.resize_token_embeddings(vocab)  # type: ignore[operator]
        load_adapters(candidate, path, weights_sha256(self.run_dir))
        candidate.eval()
        self.model = candidate
        if (path / rundir.TOKENIZER).exists():
            self.tokenizer = load_tokenizer(path / rundir.TOKENIZER)
            self.chat_template = ChatTemplate.load(path)
        return self

    def merge_peft_adapter(self, path: str | Path) -> "LanguageModel":
        """Fold a Hugging Face PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`, made for
        this model's transformers export or the checkpoint it was loaded from) into the weights, in place."""
        from genloom.tune.peft_format import merge_peft

        merge_peft(self.model, path)  # type: ignore[arg-type]
        return self

    def merge_adapters(self) -> "LanguageModel":
        """Fold attached LoRA adapters into the weights (W + B·A·alpha/r): a plain model, same outputs."""
        from genloom.tune.lora import merge_lora

        merge_lora(self.model)
        return self

    @torch.inference_mode()
    def score(self, text: str, stride: int | None = None) -> dict[str, float]:
        """How likely the model finds `text`, read as the start of a document: total log-likelihood
        (nats), the mean per token and the perplexity, over every token of the text. A text longer than
        the context is scored with a sliding window (each new window overlaps the last by the context
        minus `stride`, default half of it), as Hugging Face's perplexity guide does."""
        if not text:
            raise UserError("score: give a non-empty text")
        start = self._ids("")  # the document start the model was trained with (separator, BOS or EOS)
        ids = torch.tensor([[*start, *self.tokenizer.encode(text)]])
        block = int(self.model.config.block_size)  # type: ignore[union-attr,arg-type]
        stride = stride or max(1, block // 2)
        if not 0 < stride <= block:
            raise UserError(f"stride must be between 1 and the context ({block}), got {stride}")
        self.model.eval()
        total, scored, end = 0.0, 0, len(start)  # tokens before `end` are scored already (or context only)
        n = ids.shape[1]
        begin = 0
        while end < n:
            stop = min(begin + block, n)
            logits = self.model(ids[:, begin:stop]).float()  # (1, T, V)
            logp = logits.log_softmax(-1)[0, :-1].gather(1, ids[0, begin + 1 : stop, None])[:, 0]
            new = logp[end - begin - 1 :]  # only the tokens no earlier window predicted
            total += float(new.sum())
            scored += len(new)
            end = stop
            begin = min(begin + stride, max(0, n - block))
        mean = total / scored
        return {"tokens": scored, "log_likelihood": total, "nats_per_token": -mean, "perplexity": math.exp(-mean)}


HF_ALIASES = {"stop_strings": "stop"}  # Hugging Face `generate` names of genloom's options


def generation_config(**options: Any) -> GenerationConfig:
    """A `GenerationConfig` from keyword options, with one clear line for an unknown name. Hugging Face's
    `generate` spellings work too: `do_sample=False` is greedy, `stop_strings` is `stop`."""
    for alias, name in HF_ALIASES.items():
        if alias in options:
            if options.get(name) is not None:
                raise UserError(f"give {name} or {alias}, not both")
            options[name] = options.pop(alias)
    sample = options.pop("do_sample", True)
    if not sample and int(options.get("num_beams") or 1) == 1:
        options["temperature"] = 0.0  # greedy, as in transformers
    fields = {f.name for f in dataclasses.fields(GenerationConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UserError(f"unknown generation option {unknown[0]!r}; valid options: {', '.join(sorted(fields))}")
    for key in ("stop", "banned_tokens"):
        if isinstance(options.get(key), str | int):
            options[key] = (options[key],)
        elif options.get(key) is not None:
            options[key] = tuple(options[key])
    if options.get("choice") is not None and not isinstance(options["choice"], str):
        options["choice"] = tuple(options["choice"])
    return GenerationConfig(**{k: v for k, v in options.items() if v is not None or k in ("top_k", "seed")})


def load_hf_bert(directory: str | Path) -> MaskedLanguageModel:
    """A local Hugging Face BERT directory (config.json + model.safetensors + a tokenizer) as a genloom
    masked LM; `transformers` is not needed. A sentence-transformers directory (bare `BertModel`,
    `modules.json`) brings its pooling, normalisation and truncation for `embed()`."""
    directory = Path(directory)
    cfg, state, has_head = bert.read_hf_dir(directory)
    model = bert.Bert(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    head_only = all(k.startswith("head.") for k in missing)  # an encoder-only checkpoint lacks just the head
    assert not unexpected and (not missing if has_head else head_only), (missing, unexpected)
    model.eval()
    tokenizer = load_pretrained_tokenizer(directory, masked=True)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise UserError(
            f"{directory}: the tokenizer has a vocabulary of {tokenizer.vocab_size}, the model's embedding "
            f"{cfg.vocab_size} rows (expected at most {cfg.vocab_size})"
        )
    pipeline = bert.read_sentence_pipeline(directory)
    pooling = Pooling(*pipeline) if pipeline else None  # type: ignore[arg-type]
    return MaskedLanguageModel(model, tokenizer, None, directory, pooling, has_mlm_head=has_head)


def export_hf(run_dir: str | Path, out: str | Path, checkpoint: str = "last") -> Path:
    """Write a bert run as a Hugging Face BERT directory that `BertForMaskedLM.from_pretrained` and
    `AutoTokenizer.from_pretrained` read: config.json, model.safetensors, tokenizer.json."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty directory; choose a new one")
    rundir.check_writable(out)
    lm = load_text_run(Path(run_dir), read_run_config(run_dir), checkpoint)
    if not isinstance(lm, MaskedLanguageModel):
        raise UserError(f"{run_dir}: Hugging Face export is implemented for bert runs; this run is not one")
    bert.write_hf_dir(lm.model, out)
    lm.tokenizer.save(out / rundir.TOKENIZER)
    tokenizer_config = {
        "tokenizer_class": "BertTokenizerFast",
        "do_lower_case": True,
        "model_max_length": lm.model.config.block_size,
        **{f"{name}_token": f"[{name.upper()}]" for name in ("pad", "unk", "cls", "sep", "mask")},
    }
    rundir.atomic_write_text(out / "tokenizer_config.json", json.dumps(tokenizer_config, indent=2) + "\n")
    return out


def hf_model_type(path: Path) -> str | None:
    """The `model_type` of a Hugging Face config.json (None when unreadable; the loader then says why)."""
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return model_type if isinstance(model_type, str) else None


def is_pretrained(path: Path) -> bool:
    """Whether `path` is a pretrained model of another tool (a GGUF file, a Hugging Face directory)
    rather than a genloom run."""
    return path.suffix.lower() == ".gguf" or (not (path / rundir.CONFIG).exists() and (path / "config.json").exists())


def load_hf_directory(path: Path) -> tuple[str, LanguageModel | MaskedLanguageModel]:
    """A pretrained model that is not a genloom run, and the family it loads into: a GGUF file (llama,
    gpt2) and Hugging Face GPT-2 and Llama directories into the GPT family (docs/generation.md), BERT
    directories into the masked LM family (docs/bert.md)."""
    if path.suffix.lower() == ".gguf":  # a llama.cpp model file (genloom/gguf.py)
        return "gpt", load_gguf_file(path)
    if hf_model_type(path) == "bert":
        return "bert", load_hf_bert(path)
    return "gpt", load_hf_dir(path)


def load_hf_dir(path: Path) -> LanguageModel:
    """A Hugging Face GPT-2 / Llama-shaped directory, with its tokenizer and its own chat template."""
    from genloom.chat import pretrained_template
    from genloom.data.text import TextDataConfig
    from genloom.hf import load_hf
    from genloom.tokenizers import read_tokenizer_config, token_text

    model, tokenizer, cfg, bos_id = load_hf(path)
    rc = RunConfig(family="gpt", model=cfg, data=TextDataConfig(), train=TrainConfig())
    config = read_tokenizer_config(path)
    names = ("bos_token", "eos_token", "unk_token", "pad_token")
    tokens = {name: text for name in names if (text := token_text(config.get(name)))}
    template = pretrained_template(path, config, tokens)
    return LanguageModel(model, tokenizer, rc, path, bos_id, template)


def load_gguf_file(path: Path) -> LanguageModel:
    """A llama.cpp GGUF file (llama or gpt2 architecture) with the tokenizer and chat template it carries."""
    from genloom.data.text import TextDataConfig
    from genloom.gguf import load_gguf

    model, tokenizer, cfg, bos_id, template = load_gguf(path)
    rc = RunConfig(family="gpt", model=cfg, data=TextDataConfig(), train=TrainConfig())
    return LanguageModel(model, tokenizer, rc, path, bos_id, template)


def load_text_run(run_dir: Path, rc: RunConfig, checkpoint: str) -> LanguageModel | MaskedLanguageModel:
    """A GPT or BERT run with its tokenizer, checked against each other."""
    model = load_run_model(run_dir, get_family(rc.family), rc, checkpoint)
    tokenizer = load_tokenizer(run_dir / rundir.TOKENIZER)
    if tokenizer.vocab_size != rc.model.vocab_size:
        raise UserError(
            f"{run_dir / rundir.TOKENIZER}: vocabulary of {tokenizer.vocab_size}, the model has {rc.model.vocab_size}"
        )
    if isinstance(model, bert.Bert):  # the masked-objective family
        return MaskedLanguageModel(model, tokenizer, rc, run_dir)
    return LanguageModel(model, tokenizer, rc, run_dir)


def evaluate_text(lm: LanguageModel | MaskedLanguageModel, checkpoint: str) -> dict[str, float]:
    """Exact validation loss (GPT) or masked-token accuracy with masking seed 0 (BERT); into card.md."""
    if lm.config is None:
        raise UserError(f"{lm.run_dir}: a Hugging Face directory has no training data to evaluate on")
    pipe = prepare_text(lm.config, lm.tokenizer)
    if isinstance(lm, MaskedLanguageModel):
        metrics = masked_lm_metrics(lm.model, masked_data(lm.config, pipe), "val")
    else:
        metrics = language_model_loss(lm.model, pipe.data, "val")
    metrics["checkpoint"] = checkpoint  # type: ignore[assignment]
    summary = read_summary(lm.run_dir)
    summary["evaluation"] = metrics
    write_summary(lm.run_dir, summary)
    write_text_card(lm.run_dir, lm.config, summary)
    return metrics


# ---- the contract (genloom.api.modality) ------------------------------------------------------


MEMORIZATION_OPTIONS = (
    "n_prompts",
    "prefix_chars",
    "min_chars",
    "max_new_tokens",
    "block_verbatim",
    "temperature",
    "seed",
)


def evaluate_bias(run_dir: Path, score: Any, method: str, options: dict[str, Any]) -> dict[str, Any]:
    """CrowS-Pairs with `score` (genloom/evaluate/bias.py), recorded in summary.json and card.md."""
    metrics = crows_pairs(score, limit=options.get("limit"))
    metrics["method"] = method
    summary = read_summary(run_dir)
    summary[BIAS_SECTION] = metrics
    write_summary(run_dir, summary)
    write_text_card(run_dir, read_run_config(run_dir), summary)
    return metrics


class TextModality(Modality):
    """Decoder-only language models (GPT): text in, text out, served as completions and chat."""

    def data(self, rc: Any) -> Any:
        return prepare_text(rc)

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        return train_text(family, rc, out, resume=resume, overwrite=overwrite, log=log)

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> Any:
        return load_text_run(run_dir, rc, checkpoint)

    def quantize(self, handle: Any, kind: str) -> None:
        from genloom.generation.quantize import quantize

        handle.quantized = quantize(handle.model, kind, where=f"--quantize {kind}")

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        """Continue `prompt` (or each of `prompts`, as one batch, one JSON line each) with the `generation`
        options; with `stream`, piece by piece; `out` receives the text instead of `echo`."""
        lm: LanguageModel = handle
        generation = dict(options.get("generation") or {})
        lines: list[str] = []
        prompts = options.get("prompts")
        suffix = options.get("suffix")
        if suffix is not None:  # fill in the middle: the code with the middle in place
            if prompts:
                raise UserError("--suffix fills one gap: give --prompt, not --prompts-file")
            prompt = options.get("prompt") or ""
            if options.get("stream") and out is None and echo is not None:
                echo(prompt)
                for piece in lm.stream_infill(prompt, suffix, **generation):
                    echo(piece)
                echo(suffix + "\n")
                return Sampled(None, 1, "")
            lines.append(prompt + lm.infill(prompt, suffix, **generation) + suffix)
        elif prompts:
            for p, c in zip(prompts, lm.complete(prompts, **generation), strict=True):
                lines.append(
                    json.dumps({"prompt": p, "text": c.text, "finish_reason": c.finish_reason}, ensure_ascii=False)
                )
        elif options.get("stream") and out is None and echo is not None:
            prompt = options.get("prompt") or ""
            echo(prompt)
            for piece in lm.stream(prompt, **generation):
                echo(piece)
            echo("\n")
            return Sampled(None, 1, "")
        else:
            prompt = options.get("prompt") or ""
            (completion,) = lm.complete(prompt, **generation)
            lines.append(prompt + completion.text)
            if completion.logprobs is not None:
                lines.append("--- logprobs (token, log p, alternatives) ---")
                for t in completion.logprobs:
                    alternatives = "  ".join(f"{alt!r} {lp:.3f}" for _, alt, lp in t.top)
                    lines.append(f"{t.text!r:>16} {t.logprob:8.3f}   {alternatives}")
        text = "\n".join(lines) + "\n"
        count = len(prompts) if prompts else 1
        if out is None:
            if echo is not None:
                echo(text)
            return Sampled(None, count, "")
        rundir.atomic_write_text(out, text)
        return Sampled(out, count, f"{count} sample(s) written to {out}")

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        """Exact validation loss; with `probe="memorization"`, extractable memorization (docs/responsible.md);
        with `humaneval` (a set) or `middle_lines` (a count), a code evaluation (genloom/api/code.py)."""
        rc = read_run_config(run_dir)
        lm = self.load(run_dir, rc, checkpoint)
        if options.get("probe") == "memorization":
            settings = {k: options[k] for k in MEMORIZATION_OPTIONS if options.get(k) is not None}
            metrics = evaluate_memorization(lm, **settings)
        elif options.get("probe") == "bias":
            return evaluate_bias(run_dir, causal_pair_scorer(lm), "total log-likelihood", options)
        elif options.get("humaneval") or options.get("middle_lines"):
            metrics = evaluate_code(lm, checkpoint, options)
        else:
            return evaluate_text(lm, checkpoint)
        write_text_card(run_dir, rc, read_summary(run_dir))
        return metrics

    def describe(self, metrics: Mapping[str, Any]) -> str:
        m = metrics
        if "extractable" in m:
            return memorization_line(m)
        if "stereotype_share" in m:
            return bias_line(dict(m))
        if "humaneval" in m or "middle_lines" in m:
            return describe_code(dict(m))
        return f"val loss {m['val_loss']:.4f} nats/token, perplexity {m['val_perplexity']:.3f} over {m['val_tokens']:,} tokens"

    def detect(self, run_dir: Path, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text (byte offset {e.start})") from None
        lm = self.load(run_dir, read_run_config(run_dir), "last")
        found = lm.detect(text, float(options.get("gamma") or 0.25), float(options.get("threshold") or 4.0))
        verdict = "watermarked by this run" if found["watermarked"] else "no watermark of this run"
        found["line"] = (
            f"{path}: {verdict} (z = {found['z']:.2f}, p = {found['p_value']:.3g}; {found['green']} of "
            f"{found['scored']} distinct token pairs green, threshold z = {found['threshold']:g})"
        )
        return found

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        write_text_card(run_dir, rc, summary)

    def export(self, run_dir: Path, out: Path, format: str, checkpoint: str) -> Path:
        from genloom.hf import save_hf

        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UserError(f"--out {out}: already exists and is not an empty directory")
        rundir.check_writable(out)
        lm = self.load(run_dir, read_run_config(run_dir), checkpoint)
        if format == "peft":  # a LoRA run: the adapter in PEFT's format, and the transformers base it applies to
            from genloom.tune.peft_format import export_peft

            if checkpoint != "last":
                raise UserError("--format peft exports the adapters as training ended; use --checkpoint last")
            return export_peft(lm.model, lm.tokenizer, lm.chat_template, run_dir, out)
        save_hf(lm.model, lm.tokenizer, out, lm.chat_template)
        return out

    def routes(self) -> str | None:
        return "genloom.serve.text:add_routes"

    def model_card(self, handle: Any) -> dict[str, Any]:
        return {"context_length": int(handle.model.config.block_size)}

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        lm: LanguageModel = handle
        n = min(128, int(lm.model.config.block_size) - 1)  # type: ignore[union-attr,arg-type]

        def work() -> int:
            (c,) = lm.complete("", max_new_tokens=n, temperature=0.8, seed=0, stop_at_eos=False)
            return len(c.token_ids)

        return timed_rates(work, rounds), "tokens/s"

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        lm: LanguageModel = handle
        n = min(300, int(lm.model.config.block_size) - 1)  # type: ignore[union-attr,arg-type]
        text = lm.generate("", max_new_tokens=n, temperature=0.8, top_k=40, seed=seed)
        return "text/plain", text.encode()


class MaskedTextModality(Modality):
    """Masked language models (BERT): fill-mask and sentence embeddings; they do not continue text."""

    def routes(self) -> str | None:
        return "genloom.serve.indexes:add_routes"  # POST /v1/embeddings

    def model_card(self, handle: Any) -> dict[str, Any]:
        return {"context_length": int(handle.model.config.block_size)}

    def data(self, rc: Any) -> Any:
        return prepare_text(rc)

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        return train_text(family, rc, out, resume=resume, overwrite=overwrite, log=log, masked=True)

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> Any:
        return load_text_run(run_dir, rc, checkpoint)

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        raise UserError(f"{handle.run_dir}: a masked LM (bert) does not generate text; use `genloom fill-mask`")

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        rc = read_run_config(run_dir)
        mlm = self.load(run_dir, rc, checkpoint)
        if options.get("probe") == "bias":
            return evaluate_bias(run_dir, masked_pair_scorer(mlm), "pseudo-log-likelihood of shared tokens", options)
        return evaluate_text(mlm, checkpoint)

    def describe(self, metrics: Mapping[str, Any]) -> str:
        m = metrics
        if "stereotype_share" in m:
            return bias_line(dict(m))
        return (
            f"masked-token accuracy {m['val_masked_accuracy']:.4f}, loss {m['val_masked_loss']:.4f} nats "
            f"over {m['val_masked_targets']:,} masked tokens of the validation split"
        )

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        write_text_card(run_dir, rc, summary)

    def export(self, run_dir: Path, out: Path, format: str, checkpoint: str) -> Path:
        if format != "hf":
            raise UserError(f"{run_dir}: --format {format} is for LoRA runs of the gpt family; bert runs export as hf")
        return export_hf(run_dir, out, checkpoint)

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        lm: MaskedLanguageModel = handle
        texts = ["To be or not to [MASK]."] * 16
        return timed_rates(lambda: len(lm.embed(texts)), rounds), "texts/s"

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        lm: MaskedLanguageModel = handle
        text = "To be or not to [MASK], that is the [MASK]."
        fills = lm.fill_mask(text, 3)
        lines = [text] + [f"[MASK] #{i}: " + ", ".join(f"{t} {p:.3f}" for t, p in f) for i, f in enumerate(fills, 1)]
        return "text/plain", "\n".join(lines).encode()
