"""The public API: `train`, `load`, `sample`, `evaluate`, `export`, `compare`, `families`, `demo`. The CLI
is a thin layer over it; each call goes through the run's modality (genloom/api/modality.py), so this
module names no family or modality.

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

import torch

from genloom import run as rundir
from genloom.api.comparison import compare
from genloom.api.images import ImageModel, evaluate_images, load_image_model
from genloom.api.modalities import MODALITIES, modality_of, offering, run_modality
from genloom.api.modality import Budget, Metrics, Modality, Sampled
from genloom.api.quickstart import demo
from genloom.api.runs import RunConfig, read_run_config, resolve_config, resume_config
from genloom.api.seq2seq import Translator
from genloom.api.text import LanguageModel, export_hf, is_pretrained, load_hf_bert, load_hf_directory
from genloom.data.pii import Scrubber, scrub
from genloom.errors import UserError
from genloom.masked_lm import MaskedLanguageModel
from genloom.models import FAMILIES, get_family
from genloom.train import TrainResult
from genloom.tune.ppo import RewardFn
from genloom.tune.runner import TuneResult
from genloom.tune.runner import tune as tune_run

__all__ = [
    "MODALITIES",
    "Budget",
    "ImageModel",
    "LanguageModel",
    "MaskedLanguageModel",
    "Metrics",
    "Modality",
    "RunConfig",
    "Sampled",
    "Scrubber",
    "Translator",
    "compare",
    "demo",
    "detect",
    "evaluate",
    "evaluate_images",
    "export",
    "export_hf",
    "families",
    "load",
    "load_for",
    "load_hf_bert",
    "load_image_model",
    "open_run",
    "resolve_config",
    "sample",
    "scrub",
    "train",
    "tune",
]


def train(
    family: str,
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
    with rundir.writer_lock(out, create=False):  # an existing run: no other process writes it meanwhile
        fam = get_family(family)
        if resume:
            rc = resume_config(out, family, preset, config, data, sets)
        else:
            rc = resolve_config(family, preset, config, data, sets)
        return modality_of(fam).train(fam, rc, out, resume=resume, overwrite=overwrite, log=log)


def open_run(
    run_dir: str | Path, checkpoint: str = "last", device: str | None = None, quantize: str | None = None
) -> tuple[Modality, Any]:
    """The modality of a run (or Hugging Face directory) and its loaded handle (on `device`, if given;
    with its weights quantized for decoding, if `quantize` says so)."""
    run_dir = Path(run_dir)
    if is_pretrained(run_dir):  # a Hugging Face directory or a GGUF file, not a genloom run
        family, handle = load_hf_directory(run_dir)
        modality = modality_of(get_family(family))
    else:
        rc = read_run_config(run_dir)
        modality = modality_of(get_family(rc.family))
        handle = modality.load(run_dir, rc, checkpoint)
    if device is not None:
        try:
            handle.model.to(torch.device(device))
        except (RuntimeError, ValueError, AssertionError) as e:  # torch asserts "not compiled with CUDA"
            raise UserError(f"device {device!r}: {str(e).splitlines()[0]}") from None
    if quantize is not None:
        modality.quantize(handle, quantize)
    return modality, handle


def load(run_dir: str | Path, checkpoint: str = "last", device: str | None = None, quantize: str | None = None) -> Any:
    """Rebuild a trained model from its run directory alone (`checkpoint`: "last" or "best"); the handle
    is its modality's: `LanguageModel`, `MaskedLanguageModel`, `Translator`, `ImageModel`, ...

    A directory in Hugging Face format (config.json, safetensors weights, tokenizer.json) loads too: GPT-2
    and Llama into the GPT family (docs/generation.md), BERT into the masked LM family (docs/bert.md). So does
    a GGUF file (`model.gguf`, llama or gpt2 architecture). `device` ("cpu", "cuda", "cuda:1", "mps") moves
    the model there. `quantize` ("int8" or "int4") stores a GPT/Llama model's block weights in 8 or 4 bits
    for faster decoding on CPU (docs/generation.md, "Quantized decoding")."""
    return open_run(run_dir, checkpoint, device, quantize)[1]


def load_for(run_dir: str | Path, command: str, checkpoint: str = "last", quantize: str | None = None) -> Any:
    """`load`, for a CLI command that only some modalities offer (chat, translate, fill-mask, tune):
    a run of another modality gets one line naming the runs that do."""
    modality, handle = open_run(run_dir, checkpoint, quantize=quantize)
    if command not in modality.commands:
        nouns = [modality_of(get_family(f)).noun for f in offering(command)]
        raise UserError(f"{run_dir}: {command} needs a {' or '.join(dict.fromkeys(nouns))}")
    return handle


def sample(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    checkpoint: str = "last",
    echo: Callable[[str], None] | None = None,
    quantize: str | None = None,
    **options: Any,
) -> Sampled:
    """Draw samples from a run and write them to `out` in its modality's format (PNG grid, text, ...);
    without `out`, to its default place in the run or, for text, to `echo`. `options` are the
    modality's sampling options (`n`, `seed`, `label`, `prompt`, `generation={...}`, ...); `quantize` as
    in `load`."""
    modality, handle = open_run(run_dir, checkpoint, quantize=quantize)
    return modality.sample(handle, Path(out) if out is not None else None, options, echo)


def evaluate(run_dir: str | Path, checkpoint: str = "last", **options: Any) -> Metrics:
    """The run's held-out figures, by its modality, recorded in card.md; each quality metric has its
    direction (`metrics.directions`). Text: exact validation loss and perplexity over the whole split;
    masked LM: masked-token loss and accuracy (masking seed 0); images: FID/KID beside the real-vs-real
    floor, conditional accuracy, likelihoods (`n_samples=`); seq2seq: test loss, BLEU and chrF."""
    run_dir = Path(run_dir)
    if is_pretrained(run_dir):
        raise UserError(f"{run_dir}: a pretrained model has no training data of genloom's to evaluate on")
    _, modality = run_modality(run_dir)
    probe = options.get("probe")
    if probe is not None and probe not in modality.probes:
        offered = ", ".join(sorted(modality.probes)) or "none"
        raise UserError(f"{run_dir}: no evaluation {probe!r} for this {modality.noun} (its evaluations: {offered})")
    values = modality.evaluate(run_dir, checkpoint, options)
    return Metrics(values, modality.directions, modality.describe(values))


def detect(run_dir: str | Path, path: str | Path, **options: Any) -> dict[str, Any]:
    """Whether the file at `path` (a text, or an image or grid of images) carries the watermark of the run
    `run_dir`, whose key is in the run (docs/responsible.md): the run's modality's figures (text: z-score and
    p-value; images: bit accuracy and p-value) and `line`, a sentence for the user. `options`: text's `gamma`
    and `threshold` (z)."""
    run_dir, path = Path(run_dir), Path(path)
    if is_pretrained(run_dir):
        raise UserError(f"{run_dir}: watermarks need a genloom run directory (its key lives there)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    _, modality = run_modality(run_dir)
    return modality.detect(run_dir, path, options)


def families() -> list[dict[str, str]]:
    """What each family is for, and its presets: the "which model for my app" guide."""
    return [
        {
            "name": f.name,
            "modality": f.modality,
            "modality_title": modality_of(f).title,
            "docs": modality_of(f).docs,
            "use_for": f.use_for,
            "presets": ", ".join(f.presets),
        }
        for f in sorted(FAMILIES.values(), key=lambda f: list(MODALITIES).index(f.modality))
    ]


def export(run_dir: str | Path, out: str | Path, format: str = "hf", checkpoint: str = "last") -> Path:
    """Write a run in another format. "hf": a directory that `transformers` loads (GPT-2, GPT-NeoX, Llama,
    BERT); "peft": a `tune lora` run's adapter as Hugging Face PEFT writes it, beside its base model."""
    if format not in ("hf", "peft"):
        raise UserError(f"export format must be 'hf' or 'peft', got {format!r}")
    _, modality = run_modality(run_dir)
    return modality.export(Path(run_dir), Path(out), format, checkpoint)


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
    base = load_for(run, "tune")

    def load_reward_run(path: str) -> Any:
        try:
            return load_for(path, "tune")
        except UserError:
            raise UserError(f"--reward {path}: not a reward-model run") from None

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
