"""The modality table: the object each family row's `modality` names (genloom/api/modality.py).

A new modality is a `Modality` subclass in its own module plus one row here; its families name it in
`genloom.models.FAMILIES`.
"""

from __future__ import annotations

from pathlib import Path

from genloom import run as rundir
from genloom.api.images import ImageModality
from genloom.api.modality import Modality
from genloom.api.runs import read_run_config
from genloom.api.seq2seq import PairsModality
from genloom.api.tables import TableModality
from genloom.api.text import MaskedTextModality, TextModality
from genloom.errors import UserError
from genloom.models import FAMILIES, Family, get_family

MODALITIES: dict[str, Modality] = {
    "text": TextModality(
        name="text",
        title="text generation (decoder-only language models)",
        docs="docs/generation.md",
        noun="text-generating run (gpt)",
        commands=frozenset({"chat", "tune"}),
        kind="text",
        sample_file="samples/sample.txt",
        # pass@k and exact_match: code evaluations (genloom/api/code.py); the rates: memorization probes
        directions={
            "val_loss": "lower",
            "val_perplexity": "lower",
            "extractable_rate": "lower",
            "verbatim_rate": "lower",
            "pass@1": "higher",
            "pass@10": "higher",
            "pass@100": "higher",
            "exact_match": "higher",
        },
        headline="val_loss",
        probes=frozenset({"memorization", "bias"}),
    ),
    "masked-text": MaskedTextModality(
        name="masked-text",
        title="masked language models (fill-mask, sentence embeddings)",
        docs="docs/bert.md",
        noun="masked LM (a bert run or a Hugging Face BERT directory)",
        commands=frozenset({"fill-mask", "embed"}),
        probes=frozenset({"bias"}),
        kind="text",
        directions={"val_masked_loss": "lower", "val_masked_accuracy": "higher"},
        headline="val_masked_loss",
    ),
    "text-pairs": PairsModality(
        name="text-pairs",
        title="text to text (encoder-decoder translation)",
        docs="docs/translation.md",
        noun="seq2seq run (genloom train seq2seq ...)",
        commands=frozenset({"translate"}),
        kind="text",
        refuse_serving="a seq2seq run has no OpenAI route to serve it yet; use `genloom translate`",
        directions={
            "bleu": "higher",
            "chrf": "higher",
            "test_loss": "lower",
            "test_perplexity": "lower",
            "val_loss": "lower",
            "val_perplexity": "lower",
        },
        headline="bleu",
    ),
    "image": ImageModality(
        name="image",
        title="images",
        docs="docs/images.md",
        noun="image run",
        kind="image",
        sample_file="samples/sample.png",
        directions={
            "fid": "lower",
            "kid": "lower",
            "conditional_accuracy": "higher",
            "test_bits_per_dim": "lower",
            "test_elbo_nats": "higher",
        },
        headline="fid",
    ),
    "table": TableModality(
        name="table",
        title="synthetic tables (CSV / Parquet rows)",
        docs="docs/tables.md",
        noun="table run (copula, tvae, ctgan, tabddpm)",
        kind="table",
        sample_file="samples/synthetic.csv",
        directions={
            "quality": "higher",
            "column_shapes": "higher",
            "column_pair_trends": "higher",
            "tstr_f1": "higher",
            "tstr_r2": "higher",
            "utility_ratio": "higher",
            "exact_copies": "lower",
            "closer_to_train": "lower",
            "dcr_baseline_protection": "higher",
        },
        headline="quality",
    ),
}


def modality_of(family: Family) -> Modality:
    """The contract object of `family` (its row names it)."""
    if family.modality not in MODALITIES:
        raise UserError(f"family {family.name!r}: its modality {family.modality!r} has no row in MODALITIES")
    return MODALITIES[family.modality]


def run_modality(run_dir: str | Path) -> tuple[Family, Modality]:
    """The family and modality of a genloom run directory."""
    family = get_family(read_run_config(run_dir).family)
    return family, modality_of(family)


def offering(command: str) -> list[str]:
    """The families whose modality offers CLI `command` (for error messages)."""
    return [f.name for f in FAMILIES.values() if command in modality_of(f).commands]


def is_run(path: str | Path) -> bool:
    return (Path(path) / rundir.CONFIG).exists()
