"""The public API: `train`, `load`, `evaluate`, `families`, `demo`. The CLI is a thin layer over it.

```python
import genloom as gl
result = gl.train("gpt", data="tinyshakespeare", preset="nanogpt-cpu", out="runs/shakespeare")
lm = gl.load("runs/shakespeare")
print(lm.generate("ROMEO:", max_new_tokens=200, temperature=0.8, top_k=40, seed=0))
print(gl.evaluate("runs/shakespeare"))  # exact validation loss and perplexity
```

Configs resolve in this order, later winning: the family's defaults, `preset`, the TOML file
`config`, `data`, then `sets` (`"section.key=value"`). Every input is checked before the run directory
is touched, so a mistake never damages an existing run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
from torch import nn

from genloom import run as rundir
from genloom.config import build, dump_toml, merge, parse_sets, read_toml, to_dict
from genloom.data.images import BUNDLED_IMAGES, ImageData, load_images, to_unit
from genloom.data.masking import MaskedTokenData
from genloom.data.text import (
    BUNDLED,
    CHAR_DOC_SEPARATOR,
    DATA_DIR,
    TokenData,
    build_tokenizer,
    encode_documents,
    load_corpus,
)
from genloom.errors import UserError
from genloom.evaluate import language_model_loss, masked_lm_metrics, plot_loss_curve, write_card
from genloom.evaluate.images import (
    conditional_accuracy,
    feature_classifier,
    frechet_distance,
    kernel_inception_distance,
    save_grid,
)
from genloom.evaluate.images import features as image_features
from genloom.generation import Completion, GenerationConfig, complete, generate, stream
from genloom.masked_lm import MaskedLanguageModel, masked_batches
from genloom.models import FAMILIES, Family, bert, get_family, get_preset
from genloom.tokenizers import CharTokenizer, Tokenizer, WordPieceTokenizer, load_tokenizer
from genloom.train import TrainConfig, Trainer, TrainResult

SECTIONS = ("model", "data", "train")
RESUMABLE_CHANGES = {
    "train.max_iters",
    "train.max_time",
    "train.progress",
    "train.threads",
}  # safe to change on --resume
SUMMARY = "summary.json"  # data statistics, training and evaluation figures, read by card.md
DATA_STAMP = "state/data.json"  # fingerprints of the corpus and tokenizer, checked on --resume


@dataclass
class RunConfig:
    """A run's complete configuration: what `config.toml` holds."""

    family: str
    model: Any  # the family's Config dataclass
    data: Any  # the family's data config dataclass
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **{s: to_dict(getattr(self, s)) for s in SECTIONS}}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def build_run_config(family: Family, raw: dict[str, Any], where: str = "config") -> RunConfig:
    """Check sections and keys of a raw config dict and build the typed `RunConfig`."""
    unknown = set(raw) - set(SECTIONS) - {"family"}
    if unknown:
        raise UserError(f"{where}: unknown section {sorted(unknown)[0]!r}; valid sections: {', '.join(SECTIONS)}")
    if raw.get("family", family.name) != family.name:
        raise UserError(f"{where}: is for family {raw['family']!r}, not {family.name!r}")
    return RunConfig(
        family=family.name,
        model=build(family.config, raw.get("model", {}), "model"),
        data=build(family.data_config, raw.get("data", {}), "data"),
        train=build(TrainConfig, raw.get("train", {}), "train"),
    )


def resolve_config(
    family: str,
    preset: str | None = None,
    config: str | Path | None = None,
    data: str | None = None,
    sets: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults (or `base`) ← preset ← config file ← data ← `--set` overrides, checked field by field."""
    fam = get_family(family)
    raw: dict[str, Any] = dict(base or {})
    if preset is not None:
        raw = merge(raw, get_preset(fam, preset))
    if config is not None:
        raw = merge(raw, read_toml(config))
    if data is not None:
        raw = merge(raw, {"data": {"source": str(data)}})
    raw = merge(raw, parse_sets(list(sets)))
    return build_run_config(fam, raw, str(config) if config else "config")


def read_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / rundir.CONFIG
    if not path.exists():
        raise UserError(f"{run_dir}: not a genloom run directory (no {rundir.CONFIG})")
    raw = read_toml(path)
    if "family" not in raw:
        raise UserError(f"{path}: no 'family' key")
    return build_run_config(get_family(raw["family"]), raw, str(path))


def _fingerprint(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


# ---- text pipeline ----------------------------------------------------------------------------


@dataclass
class TextPipeline:
    """Everything a text run needs besides the model: the tokenizer, token streams and provenance."""

    tokenizer: Tokenizer
    data: TokenData
    stats: dict[str, Any]
    stamp: dict[str, str]


def prepare_text(rc: RunConfig, tokenizer: Tokenizer | None = None) -> TextPipeline:
    """Read and preprocess the corpus, build (or reuse) the tokenizer, encode both splits."""
    corpus = load_corpus(rc.data)
    tokenizer = tokenizer or build_tokenizer(corpus, rc.data)
    train_ids = encode_documents(corpus.train, tokenizer)
    val_ids = encode_documents(corpus.val, tokenizer)
    data = TokenData(train_ids, val_ids, rc.model.block_size, rc.data.source)
    stats = {
        **corpus.stats,
        "train_tokens": len(train_ids),
        "val_tokens": len(val_ids),
        "vocab_size": tokenizer.vocab_size,
    }
    stamp = {"corpus": _fingerprint([*corpus.train, "\x01", *corpus.val])}
    return TextPipeline(tokenizer, data, stats, stamp)


def _prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Prompt ids; an empty prompt starts from the document separator the model was trained with."""
    if prompt:
        return tokenizer.encode(prompt)
    if isinstance(tokenizer, CharTokenizer):
        return tokenizer.encode(CHAR_DOC_SEPARATOR[-1])
    if tokenizer.eos_id is not None:
        return [tokenizer.eos_id]
    raise UserError("an empty prompt needs a tokenizer with an end-of-text token; give a prompt")


def _text_sampler(tokenizer: Tokenizer, n_tokens: int, seed: int) -> Callable[[nn.Module], str]:
    """Sample text during training with its own generator, so training randomness is untouched."""

    def sample(model: nn.Module) -> str:
        ids = torch.tensor([_prompt_ids(tokenizer, "")])
        out = generate(
            model, ids, n_tokens, temperature=0.8, top_k=None, generator=torch.Generator().manual_seed(seed)
        )  # same draw each time: samples compare across steps
        return tokenizer.decode(out[0, ids.shape[1] :].tolist())

    return sample


# ---- train ------------------------------------------------------------------------------------


def _resume_config(
    out: Path, family: str, preset: str | None, config: str | Path | None, data: str | None, sets: Sequence[str]
) -> RunConfig:
    """The saved config, with whatever the user gave on top; only a few fields may change."""
    saved = read_run_config(out)
    if saved.family != family:
        raise UserError(f"--resume {out}: that run is family {saved.family!r}, not {family!r}")
    fresh = resolve_config(family, preset, config, data, sets, base=saved.to_dict())
    a, b = _flatten(saved.to_dict()), _flatten(fresh.to_dict())
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES)
    changed = [k for k in changed if k != "model.vocab_size"]
    if changed:
        key = changed[0]
        raise UserError(
            f"--resume {out}: config does not match the run ({key} is {a.get(key)!r} there, {b.get(key)!r} now); "
            f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume"
        )
    return dataclasses.replace(saved, train=fresh.train)


def train(
    family: str = "gpt",
    *,
    out: str | Path,
    data: str | None = None,
    preset: str | None = None,
    config: str | Path | None = None,
    sets: Sequence[str] = (),
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a model into the run directory `out` (created, resumed or replaced as asked)."""
    out = rundir.check_out_dir(out, overwrite=overwrite, resume=resume)
    fam = get_family(family)
    if resume:
        rc = _resume_config(out, family, preset, config, data, sets)
    else:
        rc = resolve_config(family, preset, config, data, sets)
    if fam.modality == "image":
        return _train_images(fam, rc, out, resume=resume, overwrite=overwrite, log=log)
    if fam.modality != "text":
        raise UserError(f"family {family!r} cannot be trained yet")
    if resume:
        rundir.recover(out)
        stamp_path = out / DATA_STAMP
        saved_stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
        tokenizer = load_tokenizer(out / rundir.TOKENIZER)
        if tokenizer.vocab_size != rc.model.vocab_size or saved_stamp.get("tokenizer") != _file_hash(
            out / rundir.TOKENIZER
        ):
            raise UserError(
                f"--resume {out}: {rundir.TOKENIZER} does not match the run (it was changed after training)"
            )
        pipe = prepare_text(rc, tokenizer)
        if saved_stamp.get("corpus") != pipe.stamp["corpus"]:
            raise UserError(
                f"--resume {out}: the corpus differs from the one this run was trained on; resume with the same data"
            )
    else:
        pipe = prepare_text(rc)
        rc = dataclasses.replace(rc, model=dataclasses.replace(rc.model, vocab_size=pipe.tokenizer.vocab_size))
        if isinstance(pipe.tokenizer, WordPieceTokenizer) and fam.objective == "masked":  # its [PAD] is the model's
            rc = dataclasses.replace(rc, model=dataclasses.replace(rc.model, pad_id=pipe.tokenizer.pad_id))
    torch.manual_seed(rc.train.seed)  # initialization is part of the run's reproducibility
    model = fam.model(rc.model)  # also validates the config against the data before writing
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    if not resume:
        pipe.tokenizer.save(out / rundir.TOKENIZER)
        pipe.stamp["tokenizer"] = _file_hash(out / rundir.TOKENIZER)
        rundir.atomic_write_text(out / DATA_STAMP, json.dumps(pipe.stamp))
    rundir.atomic_write_text(out / rundir.CONFIG, dump_toml(rc.to_dict(), f"genloom run config ({fam.name})"))
    sampler: Callable[[nn.Module], str] | None = _text_sampler(pipe.tokenizer, rc.train.sample_tokens, rc.train.seed)
    batches: TokenData | MaskedTokenData = pipe.data
    if fam.objective == "masked":  # BERT: framed windows masked by the recipe; nothing to sample
        batches = _masked_data(rc, pipe)
        sampler = None
    trainer = Trainer(model, rc.train, batches, out, sampler=sampler, log=log)
    result = trainer.fit(resume=resume)
    summary = _read_summary(out)
    summary["data"] = pipe.stats
    summary["model"] = {"parameters": model.num_params(), "flops_per_token": model.flops_per_token()}
    summary["training"] = _training_summary(result, trainer, "tokens_per_s")
    _write_summary(out, summary)
    plot_loss_curve(out)
    _write_text_card(out, rc, summary)
    return result


def _masked_data(rc: RunConfig, pipe: TextPipeline) -> MaskedTokenData:
    """The masked-LM batch source over the same token streams as `pipe.data`."""
    return masked_batches(
        pipe.tokenizer, pipe.data.splits["train"], pipe.data.splits["val"], rc.model.block_size, rc.data
    )


def _training_summary(result: TrainResult, trainer: Trainer, rate_name: str) -> dict[str, Any]:
    """The card's training figures; `rate_name` says what the loop counted (tokens or images)."""
    return {
        "steps": result.step,
        "train_loss": result.train_loss,
        "val_loss_estimate": result.val_loss,
        "best_val_loss_estimate": result.best_val_loss,
        "ms_per_iter_median": result.ms_per_iter,
        rate_name: result.tokens_per_s,
        "peak_rss_mb": result.peak_rss_mb,
        "train_seconds_total": trainer.elapsed,
        **_machine(),
    }


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    return json.loads(path.read_text()) if path.exists() else {}


def _write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    rundir.atomic_write_text(run_dir / SUMMARY, json.dumps(summary, indent=2))


def _write_text_card(run_dir: Path, rc: RunConfig, summary: dict[str, Any]) -> None:
    source = rc.data.source
    provenance = f"Source: `{source}`."
    if source in BUNDLED:
        provenance = f"Bundled dataset `{source}`; origin and license in `data/{Path(BUNDLED[source]).parent}/SOURCE.md` of genloom."
        src = DATA_DIR / Path(BUNDLED[source]).parent / "SOURCE.md"
        if src.exists():
            provenance += "\n\n" + "\n".join(
                line for line in src.read_text().splitlines() if "license" in line.lower() or "MIT" in line
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
        "Data statistics": summary.get("data", {}),
        "Training": summary.get("training", {}),
    }
    if "evaluation" in summary:
        sections["Evaluation (exact, whole validation split)"] = summary["evaluation"]
    samples = sorted((run_dir / rundir.SAMPLES).glob("step_*.txt"))
    if samples:
        sections[f"Sample ({samples[-1].stem})"] = "```\n" + samples[-1].read_text()[:600] + "\n```"
    sections["Intended use"] = (
        "A small research/teaching model. It imitates its training text; it has no knowledge or safety tuning."
    )
    write_card(run_dir, f"Model card: {run_dir.name}", sections)


# ---- load / evaluate --------------------------------------------------------------------------


class LanguageModel:
    """A loaded text run: model, tokenizer and config joined for generation and evaluation."""

    def __init__(
        self, model: nn.Module, tokenizer: Tokenizer, config: RunConfig, run_dir: Path, bos_id: int | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.run_dir = run_dir
        self.bos_id = bos_id  # prepended to every prompt (Llama checkpoints expect a beginning-of-text token)

    def _ids(self, prompt: str) -> list[int]:
        if self.bos_id is not None:
            return [self.bos_id, *(self.tokenizer.encode(prompt) if prompt else [])]
        return _prompt_ids(self.tokenizer, prompt)

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
        options.update(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
        completions = self.complete(prompt, **options)
        texts = [c.text for c in completions]
        return texts[0] if isinstance(prompt, str) else texts

    def complete(self, prompt: str | Sequence[str] = "", **options: Any) -> list[Completion]:
        """Full results (text, token ids, finish reason, log-probabilities) for one prompt or a batch."""
        cfg = generation_config(**options)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise UserError("no prompts given")
        ids = [self._ids(p) for p in prompts]
        return complete(self.model, ids, cfg, self.tokenizer.decode, self.tokenizer.eos_id)

    def stream(self, prompt: str = "", **options: Any) -> Iterator[str]:
        """Yield the continuation of `prompt` in pieces as they are decided (whole characters only)."""
        cfg = generation_config(**options)
        return stream(self.model, self._ids(prompt), cfg, self.tokenizer.decode, self.tokenizer.eos_id)


def generation_config(**options: Any) -> GenerationConfig:
    """A `GenerationConfig` from keyword options, with one clear line for an unknown name."""
    fields = {f.name for f in dataclasses.fields(GenerationConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UserError(f"unknown generation option {unknown[0]!r}; valid options: {', '.join(sorted(fields))}")
    for key in ("stop", "banned_tokens"):
        if isinstance(options.get(key), str | int):
            options[key] = (options[key],)
        elif options.get(key) is not None:
            options[key] = tuple(options[key])
    return GenerationConfig(**{k: v for k, v in options.items() if v is not None or k in ("top_k", "seed")})


def load(run_dir: str | Path, checkpoint: str = "last") -> LanguageModel | MaskedLanguageModel:
    """Rebuild a trained model from its run directory alone (`checkpoint`: "last" or "best").

    A directory in Hugging Face format (config.json, safetensors weights, tokenizer.json) loads too: GPT-2
    and Llama into the GPT family (docs/generation.md), BERT into the masked LM family (docs/bert.md)."""
    run_dir = Path(run_dir)
    if not (run_dir / rundir.CONFIG).exists() and (run_dir / "config.json").exists():
        if _hf_model_type(run_dir) == "bert":
            return load_hf_bert(run_dir)
        return _load_hf(run_dir)
    rc = read_run_config(run_dir)
    fam = get_family(rc.family)
    if fam.modality == "image":  # an ImageModel handle (image section below)
        return load_image_model(run_dir, checkpoint)  # type: ignore[return-value]
    model = _load_run_model(run_dir, fam, rc, checkpoint)
    tokenizer = load_tokenizer(run_dir / rundir.TOKENIZER)
    if tokenizer.vocab_size != rc.model.vocab_size:
        raise UserError(
            f"{run_dir / rundir.TOKENIZER}: vocabulary of {tokenizer.vocab_size}, the model has {rc.model.vocab_size}"
        )
    if fam.objective == "masked":
        assert isinstance(model, bert.Bert)  # the only masked-objective family in the registry
        return MaskedLanguageModel(model, tokenizer, rc, run_dir)
    return LanguageModel(model, tokenizer, rc, run_dir)


def load_hf_bert(directory: str | Path) -> MaskedLanguageModel:
    """A local Hugging Face BERT directory (config.json + model.safetensors + tokenizer.json) as a
    genloom masked LM; `transformers` is not needed."""
    directory = Path(directory)
    cfg, state = bert.read_hf_dir(directory)
    model = bert.Bert(cfg)
    model.load_state_dict(state, strict=True)
    model.eval()
    tokenizer = load_tokenizer(directory / rundir.TOKENIZER)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise UserError(
            f"{directory / rundir.TOKENIZER}: vocabulary of {tokenizer.vocab_size}, the model has {cfg.vocab_size}"
        )
    return MaskedLanguageModel(model, tokenizer, None, directory)


def export_hf(run_dir: str | Path, out: str | Path, checkpoint: str = "last") -> Path:
    """Write a bert run as a Hugging Face BERT directory that `BertForMaskedLM.from_pretrained` and
    `AutoTokenizer.from_pretrained` read: config.json, model.safetensors, tokenizer.json."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty directory; choose a new one")
    lm = load(run_dir, checkpoint)
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


def evaluate(run_dir: str | Path, checkpoint: str = "last") -> dict[str, float]:
    """Exact validation loss and perplexity over the run's whole validation split; recorded in card.md.
    For a masked LM: masked-token loss and accuracy over every window of the split, masked with seed 0.
    Image runs: FID/KID, conditional accuracy and likelihoods (`evaluate_images`)."""
    if (Path(run_dir) / rundir.CONFIG).exists() and get_family(read_run_config(run_dir).family).modality == "image":
        return evaluate_images(run_dir, checkpoint)
    lm = load(run_dir, checkpoint)
    if lm.config is None:
        raise UserError(f"{run_dir}: a Hugging Face directory has no training data to evaluate on")
    pipe = prepare_text(lm.config, lm.tokenizer)
    if isinstance(lm, MaskedLanguageModel):  # held-out masked-token accuracy, fixed masking seed
        metrics = masked_lm_metrics(lm.model, _masked_data(lm.config, pipe), "val")
    else:
        metrics = language_model_loss(lm.model, pipe.data, "val")
    metrics["checkpoint"] = checkpoint  # type: ignore[assignment]
    summary = _read_summary(lm.run_dir)
    summary["evaluation"] = metrics
    _write_summary(lm.run_dir, summary)
    _write_text_card(lm.run_dir, lm.config, summary)
    return metrics


def families() -> list[dict[str, str]]:
    """What each family is for, and its presets: the "which model for my app" guide."""
    return [
        {"name": f.name, "modality": f.modality, "use_for": f.use_for, "presets": ", ".join(f.presets)}
        for f in FAMILIES.values()
    ]


def demo(
    out: str | Path = "runs/demo", max_iters: int | None = None, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Train the `demo` preset on Tiny Shakespeare (~2 minutes), then sample and evaluate it.

    `max_iters` shortens the run (the preset's 2000 steps take about two minutes on 2 CPU cores)."""
    out = Path(out)
    sets = [f"train.max_iters={max_iters}"] if max_iters is not None else []
    result = train(
        "gpt", out=out, data="tinyshakespeare", preset="demo", sets=sets, overwrite=rundir.is_run(out), log=log
    )
    lm = load(out)
    assert isinstance(lm, LanguageModel)  # the demo trains a GPT
    sample = lm.generate("ROMEO:\n", max_new_tokens=500, temperature=0.8, top_k=40, seed=7)
    metrics = evaluate(out)
    return {"result": result, "sample": "ROMEO:\n" + sample, "metrics": metrics, "run_dir": out}


# ---- Hugging Face checkpoints -----------------------------------------------------------------


def _load_run_model(run_dir: Path, fam: Family, rc: RunConfig, checkpoint: str) -> nn.Module:
    """The family's model with the run's "last" or "best" weights, in eval mode (any family)."""
    weights = {"last": rundir.WEIGHTS, "best": rundir.BEST}.get(checkpoint)
    if weights is None:
        raise UserError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    rundir.recover(run_dir)
    model = fam.model(rc.model)
    rundir.load_weights(model, run_dir / weights)
    model.eval()
    return model


def _hf_model_type(path: Path) -> str | None:
    """The `model_type` of a Hugging Face config.json (None when unreadable; the loader then says why)."""
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _load_hf(path: Path) -> LanguageModel:
    from genloom.data.text import TextDataConfig
    from genloom.hf import load_hf

    model, tokenizer, cfg, bos_id = load_hf(path)
    rc = RunConfig(family="gpt", model=cfg, data=TextDataConfig(), train=TrainConfig())
    return LanguageModel(model, tokenizer, rc, path, bos_id)


def export(run_dir: str | Path, out: str | Path, format: str = "hf", checkpoint: str = "last") -> Path:
    """Write a run in another format; "hf": a directory that `transformers` loads (GPT-2 or Llama)."""
    if format != "hf":
        raise UserError(f"export format must be 'hf', got {format!r}")
    from genloom.hf import save_hf

    if (Path(run_dir) / rundir.CONFIG).exists() and read_run_config(run_dir).family == "bert":
        return export_hf(run_dir, out, checkpoint)
    lm = load(run_dir, checkpoint)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: already exists and is not empty")
    save_hf(lm.model, lm.tokenizer, out)  # type: ignore[arg-type]
    return out


# ---- image families ---------------------------------------------------------------------------
# VAE, GAN, diffusion, flow and PixelCNN train through the same Trainer on `ImageData` batches
# (images in [-1, 1], labels). The model's channels, image_size and num_classes come from the data.

IMAGE_GRID = "samples/latest.png"  # the grid sampled at every evaluation during training
EVAL_GRID = "samples/eval_grid.png"
INTERPOLATION = "samples/interpolation.png"
DENOISING = "samples/denoising.png"


@dataclass
class ImagePipeline:
    """The image data of a run and its provenance."""

    data: ImageData
    stats: dict[str, Any]
    stamp: dict[str, str]


def prepare_images(rc: RunConfig) -> ImagePipeline:
    """Read and split the images of `rc.data` (see genloom.data.images)."""
    images = load_images(rc.data)
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        h.update(images.images[split].numpy().tobytes())
        h.update(images.labels[split].numpy().tobytes())
    data = ImageData(images, rc.data.source)
    if data.height != data.width:
        raise UserError(f"{rc.data.source}: images are {data.width}x{data.height}; set data.image_size to crop squares")
    stats = {**images.stats, "class_names": ", ".join(images.class_names) or "(unlabelled)"}
    return ImagePipeline(data, stats, {"images": h.hexdigest()[:16]})


def _fit_to_data(rc: RunConfig, data: ImageData) -> RunConfig:
    """The model config with the data's channels, side and number of classes."""
    try:
        model = dataclasses.replace(
            rc.model, channels=data.channels, image_size=data.height, num_classes=data.num_classes
        )
    except ValueError as e:  # e.g. a conditional model on unlabelled images, a side the model cannot halve
        raise UserError(f"model (with data {rc.data.source!r}, {data.height}x{data.width}): {e}") from None
    return dataclasses.replace(rc, model=model)


def _grid_labels(model_config: Any, n: int) -> torch.Tensor | None:
    """Labels 0, 1, ..., K-1, 0, 1, ... for a conditional model's grid (None when unconditional)."""
    if not getattr(model_config, "conditional", False):
        return None
    return torch.arange(n) % model_config.num_classes


def _image_sampler(run_dir: Path, rc: RunConfig) -> Callable[[nn.Module], str]:
    """Write a 16-image grid during training with its own generator (training randomness untouched)."""

    def sample(model: nn.Module) -> str:
        generator = torch.Generator().manual_seed(rc.train.seed)
        images = model.sample(16, _grid_labels(rc.model, 16), generator=generator)  # type: ignore[operator]
        save_grid(images, run_dir / IMAGE_GRID, nrow=8)
        return f"16 samples in {IMAGE_GRID}"

    return sample


def _train_images(
    fam: Family,
    rc: RunConfig,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    log: Callable[[str], None] | None,
) -> TrainResult:
    pipe = prepare_images(rc)
    if resume:
        rundir.recover(out)
        stamp_path = out / DATA_STAMP
        saved_stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
        if saved_stamp.get("images") != pipe.stamp["images"]:
            raise UserError(f"--resume {out}: the images differ from those this run was trained on")
    else:
        rc = _fit_to_data(rc, pipe.data)
    torch.manual_seed(rc.train.seed)  # initialization is part of the run's reproducibility
    model = fam.model(rc.model)
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    if not resume:
        rundir.atomic_write_text(out / DATA_STAMP, json.dumps(pipe.stamp))
    rundir.atomic_write_text(out / rundir.CONFIG, dump_toml(rc.to_dict(), f"genloom run config ({fam.name})"))
    trainer = Trainer(model, rc.train, pipe.data, out, sampler=_image_sampler(out, rc), log=log)
    result = trainer.fit(resume=resume)
    summary = _read_summary(out)
    summary["data"] = pipe.stats
    summary["model"] = {"parameters": sum(p.numel() for p in model.parameters())}
    summary["training"] = _training_summary(result, trainer, "images_per_s")
    _write_summary(out, summary)
    plot_loss_curve(out)
    _write_image_card(out, rc, summary)
    return result


def _write_image_card(run_dir: Path, rc: RunConfig, summary: dict[str, Any]) -> None:
    source = rc.data.source
    provenance = f"Source: `{source}` (a folder of images given by the user)."
    if source in BUNDLED_IMAGES:
        folder = BUNDLED_IMAGES[source]
        provenance = (
            f"Bundled dataset `{source}`; origin and license in `data/{folder}/SOURCE.md` of genloom."
            if folder
            else "scikit-learn's bundled `digits` (UCI optical recognition of handwritten digits, 8x8)."
        )
    sections: dict[str, dict[str, Any] | str] = {
        "Model": {"family": rc.family, **to_dict(rc.model), **summary.get("model", {})},
        "Data": provenance,
        "Data statistics": summary.get("data", {}),
        "Training": summary.get("training", {}),
    }
    if "evaluation" in summary:
        sections["Evaluation"] = summary["evaluation"]
        sections["About FID/KID here"] = (
            "Features come from a small classifier genloom trains once per dataset (Inception-v3 weights cannot "
            "be downloaded here), so the scores compare models on this data only; `fid_floor`/`kid_floor` are "
            "the real-vs-real scores (train vs test images, same count): what a perfect model would get."
        )
    for title, rel in (
        ("Samples (training)", IMAGE_GRID),
        ("Samples (evaluation)", EVAL_GRID),
        ("Interpolation", INTERPOLATION),
        ("Denoising", DENOISING),
    ):
        if (run_dir / rel).exists():
            sections[title] = f"![{title}]({rel})"
    sections["Intended use"] = "A small research/teaching model of its training images."
    write_card(run_dir, f"Model card: {run_dir.name}", sections)


class ImageModel:
    """A loaded image run: the model and its config, for sampling and evaluation."""

    def __init__(self, model: nn.Module, config: RunConfig, run_dir: Path) -> None:
        self.model = model
        self.config = config
        self.run_dir = run_dir

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.config.model, "conditional", False))

    def labels_for(self, n: int, label: int | None) -> torch.Tensor | None:
        """The label tensor for `n` samples: all `label`, every class in turn (None given), or None."""
        if label is not None and not self.conditional:
            raise UserError(f"{self.run_dir}: this {self.config.family} run is unconditional; sample without a label")
        if label is not None and not 0 <= label < self.config.model.num_classes:
            raise UserError(f"label must be between 0 and {self.config.model.num_classes - 1}, got {label}")
        if label is None:
            return _grid_labels(self.config.model, n)
        return torch.full((n,), label, dtype=torch.long)

    def sample(
        self,
        n: int = 16,
        label: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        out: str | Path | None = None,
    ) -> torch.Tensor:
        """n images (n, C, S, S) in [-1, 1]; with `out`, also a PNG grid there.

        `label` asks a class-conditional run for one class (default: every class in turn); `steps` and
        `guidance_scale` are for diffusion, `temperature` for flow and PixelCNN.
        """
        if n <= 0:
            raise UserError(f"n must be a positive number of images, got {n}")
        family = self.config.family
        kwargs: dict[str, Any] = {}
        if steps is not None:
            if steps <= 0:
                raise UserError(f"steps must be a positive number of sampling steps, got {steps}")
            if family != "diffusion":
                raise UserError(f"steps applies to diffusion runs; this run is {family}")
            if steps > self.config.model.num_train_timesteps:
                raise UserError(f"steps must be at most {self.config.model.num_train_timesteps}, got {steps}")
            kwargs["steps"] = steps
        if guidance_scale is not None:
            if family != "diffusion" or not self.conditional:
                raise UserError("guidance_scale applies to class-conditional diffusion runs only")
            kwargs["guidance_scale"] = guidance_scale
        if temperature is not None:
            if family not in ("flow", "pixelcnn"):
                raise UserError(f"temperature applies to flow and pixelcnn runs; this run is {family}")
            if temperature <= 0:
                raise UserError(f"temperature must be positive, got {temperature}")
            kwargs["temperature"] = temperature
        labels = self.labels_for(n, label)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        images = self.model.sample(n, labels, generator=generator, **kwargs)  # type: ignore[operator]
        if out is not None:
            save_grid(images, out, nrow=min(n, 8))
        return images


def load_image_model(run_dir: str | Path, checkpoint: str = "last") -> ImageModel:
    """Rebuild an image run from its directory (`checkpoint`: "last" or "best")."""
    run_dir = Path(run_dir)
    rc = read_run_config(run_dir)
    fam = get_family(rc.family)
    model = _load_run_model(run_dir, fam, rc, checkpoint)
    return ImageModel(model, rc, run_dir)


def _sample_in_chunks(handle: ImageModel, labels: torch.Tensor | None, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for i in range(0, n, 250):
        part = None if labels is None else labels[i : i + 250]
        chunks.append(handle.model.sample(min(250, n - i), part, generator=generator))  # type: ignore[operator]
    return torch.cat(chunks)


def evaluate_images(
    run_dir: str | Path,
    checkpoint: str = "last",
    n_samples: int = 500,
    seed: int = 0,
    test_images: int | None = None,
) -> dict[str, float]:
    """FID/KID beside the real-vs-real floor, conditional accuracy, likelihood (bits/dim or ELBO) over the
    test split (its first `test_images` only, if given), and the sample grid, interpolation and denoising
    strips; all recorded in card.md."""
    if n_samples < 0 or n_samples == 1:
        raise UserError(f"n_samples must be 0 (likelihood only, no sampling) or at least 2, got {n_samples}")
    handle = load_image_model(run_dir, checkpoint)
    rc = handle.config
    model: Any = handle.model
    data = prepare_images(rc).data
    classifier, record = feature_classifier(data)
    images = data.data.images
    n = min(n_samples, len(images["test"]), len(images["train"]))
    f_train = image_features(classifier, to_unit(images["train"][: max(n, 2)]))
    f_test = image_features(classifier, to_unit(images["test"][: max(n, 2)]))
    labels = _grid_labels(rc.model, n)
    metrics: dict[str, float] = {"n_samples": n, "classifier_test_accuracy": record["test_accuracy"]}
    samples = None
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the dequantization noise and VAE posterior draws below
        if n > 0:
            samples = _sample_in_chunks(handle, labels, n, seed)
            f_samples = image_features(classifier, samples)
            metrics["fid"] = frechet_distance(f_samples, f_test)
            metrics["fid_floor"] = frechet_distance(f_train, f_test)
            metrics["kid"] = kernel_inception_distance(f_samples, f_test)
            metrics["kid_floor"] = kernel_inception_distance(f_train, f_test)
            if labels is not None:
                metrics["conditional_accuracy"] = conditional_accuracy(classifier, samples, labels)
        with torch.no_grad():
            test = data.batches("test", 250)
            if test_images is not None:  # the first `test_images` only
                test = [(x[: test_images - i * 250], y[: test_images - i * 250]) for i, (x, y) in enumerate(test)]
                test = [(x, y) for x, y in test if len(y) > 0]
            metrics["test_images"] = sum(len(y) for _, y in test)
            if hasattr(model, "bits_per_dim"):
                bits = torch.cat([model.bits_per_dim(x, y) for x, y in test])
                metrics["test_bits_per_dim"] = float(bits.mean())
            if hasattr(model, "elbo_terms"):
                terms = [model.elbo_terms(x, y) for x, y in test]
                elbo = torch.cat([rec - kl for rec, kl in terms])
                metrics["test_elbo_nats"] = float(elbo.mean())
    run_dir = handle.run_dir
    generator = torch.Generator().manual_seed(seed)
    if samples is not None:
        save_grid(samples[:64], run_dir / EVAL_GRID, nrow=8)
    if samples is not None and hasattr(model, "interpolate"):
        rows = [
            model.interpolate(
                10,
                handle.labels_for(10, k % max(1, data.num_classes) if handle.conditional else None),
                generator=generator,
            )
            for k in range(4)
        ]
        save_grid(torch.cat(rows), run_dir / INTERPOLATION, nrow=10)
    if samples is not None and rc.family == "diffusion":
        save_grid(_denoising_strip(handle, generator), run_dir / DENOISING, nrow=10)
    summary = _read_summary(run_dir)
    summary["evaluation"] = {**metrics, "checkpoint": checkpoint}
    _write_summary(run_dir, summary)
    plot_loss_curve(run_dir)
    _write_image_card(run_dir, rc, summary)
    return metrics


def _denoising_strip(handle: ImageModel, generator: torch.Generator) -> torch.Tensor:
    """Rows of 10 x0-estimates along DDIM sampling, for 4 images: (40, C, S, S)."""
    steps = handle.config.model.sample_steps
    keep = {round(i * (steps - 1) / 9) for i in range(10)}
    frames: list[torch.Tensor] = []

    def callback(i: int, x0: torch.Tensor) -> None:
        if i in keep:
            frames.append(x0.clamp(-1, 1))

    handle.model.sample(4, handle.labels_for(4, None), generator=generator, callback=callback)  # type: ignore[operator]
    return torch.stack(frames, dim=1).flatten(0, 1)  # (4 images x 10 frames, C, S, S)
