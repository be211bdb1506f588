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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from genloom import run as rundir
from genloom.api.images import ImageModel, evaluate_images, load_image_model, train_images
from genloom.api.runs import RunConfig, read_run_config, resolve_config, resume_config
from genloom.api.seq2seq import Translator, evaluate_seq2seq, load_seq2seq_run, train_seq2seq
from genloom.api.text import (
    LanguageModel,
    evaluate_text,
    export_hf,
    hf_model_type,
    load_gguf_file,
    load_hf_bert,
    load_hf_dir,
    load_text_run,
    train_text,
)
from genloom.errors import UserError
from genloom.masked_lm import MaskedLanguageModel
from genloom.models import FAMILIES, get_family
from genloom.train import TrainResult
from genloom.tune import RewardFn, TuneResult
from genloom.tune import tune as tune_run

__all__ = [
    "ImageModel",
    "LanguageModel",
    "MaskedLanguageModel",
    "RunConfig",
    "Translator",
    "demo",
    "evaluate",
    "evaluate_images",
    "export",
    "export_hf",
    "families",
    "load",
    "load_hf_bert",
    "load_image_model",
    "resolve_config",
    "train",
    "tune",
]


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
        rc = resume_config(out, family, preset, config, data, sets)
    else:
        rc = resolve_config(family, preset, config, data, sets)
    if fam.modality == "image":
        return train_images(fam, rc, out, resume=resume, overwrite=overwrite, log=log)
    if fam.modality != "text":
        raise UserError(f"family {family!r} cannot be trained yet")
    if fam.objective == "seq2seq":  # pairs, not a corpus
        return train_seq2seq(fam, rc, out, resume=resume, overwrite=overwrite, log=log)
    return train_text(fam, rc, out, resume=resume, overwrite=overwrite, log=log)


def load(run_dir: str | Path, checkpoint: str = "last") -> LanguageModel | MaskedLanguageModel | Translator:
    """Rebuild a trained model from its run directory alone (`checkpoint`: "last" or "best").

    A directory in Hugging Face format (config.json, safetensors weights, tokenizer.json) loads too: GPT-2
    and Llama into the GPT family (docs/generation.md), BERT into the masked LM family (docs/bert.md). So does
    a GGUF file (`model.gguf`, llama or gpt2 architecture)."""
    run_dir = Path(run_dir)
    if run_dir.suffix.lower() == ".gguf":  # a llama.cpp model file (genloom/gguf.py)
        return load_gguf_file(run_dir)
    if not (run_dir / rundir.CONFIG).exists() and (run_dir / "config.json").exists():
        if hf_model_type(run_dir) == "bert":
            return load_hf_bert(run_dir)
        return load_hf_dir(run_dir)
    rc = read_run_config(run_dir)
    fam = get_family(rc.family)
    if fam.modality == "image":  # an ImageModel handle (image section below)
        return load_image_model(run_dir, checkpoint)  # type: ignore[return-value]
    if fam.objective == "seq2seq":  # a Translator handle (api/seq2seq.py)
        return load_seq2seq_run(run_dir, rc, checkpoint)
    return load_text_run(run_dir, rc, checkpoint)


def evaluate(run_dir: str | Path, checkpoint: str = "last") -> dict[str, float]:
    """Exact validation loss and perplexity over the run's whole validation split; recorded in card.md.
    For a masked LM: masked-token loss and accuracy over every window of the split, masked with seed 0.
    Image runs: FID/KID, conditional accuracy and likelihoods (`evaluate_images`). Seq2seq runs: test-split
    loss, BLEU and chrF (`evaluate_seq2seq`)."""
    if (Path(run_dir) / rundir.CONFIG).exists() and get_family(read_run_config(run_dir).family).modality == "image":
        return evaluate_images(run_dir, checkpoint)
    handle = load(run_dir, checkpoint)
    if isinstance(handle, Translator):
        return evaluate_seq2seq(handle, checkpoint)
    return evaluate_text(handle, checkpoint)


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


def tune(
    method: str,
    run: str | Path,
    *,
    data: str | Path,
    out: str | Path,
    sets: Sequence[str] = (),
    reward: str | RewardFn | None = None,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> TuneResult:
    """Fine-tune the text run `run` with `method` (sft, lora, reward, ppo, dpo) on the JSONL file `data`
    into the run directory `out` (docs/fine-tuning.md). `sets` override the method's config
    (`"train.max_iters=100"`, `"lora.r=4"`, `"beta=0.2"`); `reward` (ppo) is a reward-model run, a name
    of `genloom.tune.REWARDS`, or a function `(prompts, responses) -> scores`."""
    base = load(run)
    if not isinstance(base, LanguageModel):
        raise UserError(f"{run}: tune needs a text-generating run (gpt), not {type(base).__name__}")

    def load_reward_run(path: str) -> LanguageModel:
        lm = load(path)
        if not isinstance(lm, LanguageModel):
            raise UserError(f"--reward {path}: not a reward-model run")
        return lm

    return tune_run(
        method,
        base,
        data=data,
        out=out,
        sets=sets,
        reward=reward,
        load_run=load_reward_run,
        resume=resume,
        overwrite=overwrite,
        log=log,
    )
