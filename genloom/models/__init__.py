"""The registry of model families: one explicit table, checked by a test against the folders.

A new family is a folder (model.py, presets.py) plus one row here; the row names the family's modality,
the object in `genloom.api.modalities.MODALITIES` that says how its runs are trained, loaded, sampled,
evaluated and served (docs/architecture.md, "Adding a family"). The CLI, the API, the server and
`genloom families` pick it up from these tables, with no change elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genloom.data.images import ImageDataConfig
from genloom.data.masking import MaskedTextDataConfig
from genloom.data.pairs import PairDataConfig
from genloom.data.tables import TableDataConfig
from genloom.data.text import TextDataConfig
from genloom.errors import UserError
from genloom.models import bert, copula, ctgan, diffusion, flow, gan, gpt, pixelcnn, seq2seq, tabddpm, tvae, vae


@dataclass(frozen=True)
class Family:
    name: str
    modality: str  # its key in genloom.api.modalities.MODALITIES: "text", "masked-text", "text-pairs", "image", "table"
    use_for: str  # one line for `genloom families`: which model for which app
    config: type  # the model's Config dataclass
    model: type  # the nn.Module built from that config
    data_config: type  # the data section's dataclass
    presets: dict[str, dict[str, dict[str, Any]]]
    loss: str = "cross-entropy (nats/token)"  # what `model.loss` measures: the loss curve's axis


FAMILIES: dict[str, Family] = {
    "gpt": Family(
        name="gpt",
        modality="text",
        use_for="decoder-only transformer LM: text generation, completion, chat after tuning",
        config=gpt.GPTConfig,
        model=gpt.GPT,
        data_config=TextDataConfig,
        presets=gpt.PRESETS,
    ),
    "vae": Family(
        name="vae",
        modality="image",
        use_for="variational autoencoder: fast sampling, a smooth latent space, reconstruction, ELBO",
        config=vae.VAEConfig,
        model=vae.VAE,
        data_config=ImageDataConfig,
        presets=vae.PRESETS,
        loss="negative ELBO (nats/image)",
    ),
    "gan": Family(
        name="gan",
        modality="image",
        use_for="conditional DCGAN: sharp samples in one network pass, no likelihood",
        config=gan.GANConfig,
        model=gan.GAN,
        data_config=ImageDataConfig,
        presets=gan.PRESETS,
        loss="GAN loss (train: generator; validation: discriminator)",
    ),
    "diffusion": Family(
        name="diffusion",
        modality="image",
        use_for="denoising diffusion (DDPM/DDIM, guidance): the best image quality, iterative sampling",
        config=diffusion.DiffusionConfig,
        model=diffusion.Diffusion,
        data_config=ImageDataConfig,
        presets=diffusion.PRESETS,
        loss="noise-prediction MSE",
    ),
    "flow": Family(
        name="flow",
        modality="image",
        use_for="normalizing flow (RealNVP/Glow): exact likelihood and one-pass sampling",
        config=flow.FlowConfig,
        model=flow.Flow,
        data_config=ImageDataConfig,
        presets=flow.PRESETS,
        loss="negative log-likelihood (bits/dim)",
    ),
    "pixelcnn": Family(
        name="pixelcnn",
        modality="image",
        use_for="autoregressive gated PixelCNN: exact likelihood, slow pixel-by-pixel sampling",
        config=pixelcnn.PixelCNNConfig,
        model=pixelcnn.PixelCNN,
        data_config=ImageDataConfig,
        presets=pixelcnn.PRESETS,
        loss="negative log-likelihood (bits/dim)",
    ),
    "bert": Family(
        name="bert",
        modality="masked-text",
        use_for="bidirectional masked LM (encoder): fill-mask, sentence embeddings, a base to fine-tune",
        config=bert.BertConfig,
        model=bert.Bert,
        data_config=MaskedTextDataConfig,
        presets=bert.PRESETS,
        loss="masked-token cross-entropy (nats/token)",
    ),
    "seq2seq": Family(
        name="seq2seq",
        modality="text-pairs",
        use_for="encoder-decoder transformer (Vaswani et al. 2017): translation and other text-to-text pairs",
        config=seq2seq.Seq2SeqConfig,
        model=seq2seq.Seq2Seq,
        data_config=PairDataConfig,
        presets=seq2seq.PRESETS,
        loss="label-smoothed cross-entropy (nats/token)",
    ),
    "copula": Family(
        name="copula",
        modality="table",
        use_for="Gaussian copula over fitted marginals: synthetic tables in seconds, the strong fast baseline",
        config=copula.CopulaConfig,
        model=copula.Copula,
        data_config=TableDataConfig,
        presets=copula.PRESETS,
        loss="none (a closed-form fit)",
    ),
    "tvae": Family(
        name="tvae",
        modality="table",
        use_for="variational autoencoder for tables (Xu et al. 2019): mode-normalized columns, fast to train",
        config=tvae.TVAEConfig,
        model=tvae.TVAE,
        data_config=TableDataConfig,
        presets=tvae.PRESETS,
        loss="negative ELBO (nats/row)",
    ),
    "tabddpm": Family(
        name="tabddpm",
        modality="table",
        use_for="diffusion for tables (Kotelnikov et al. 2023): usually the best quality, slower to sample",
        config=tabddpm.TabDDPMConfig,
        model=tabddpm.TabDDPM,
        data_config=TableDataConfig,
        presets=tabddpm.PRESETS,
        loss="diffusion loss (Gaussian MSE + multinomial KL)",
    ),
    "ctgan": Family(
        name="ctgan",
        modality="table",
        use_for="conditional GAN for tables (Xu et al. 2019): training-by-sampling keeps rare categories",
        config=ctgan.CTGANConfig,
        model=ctgan.CTGAN,
        data_config=TableDataConfig,
        presets=ctgan.PRESETS,
        loss="GAN loss (train: generator; validation: critic)",
    ),
}


def get_family(name: str) -> Family:
    if not isinstance(name, str) or name not in FAMILIES:
        raise UserError(f"unknown family {name!r}; valid families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def get_preset(family: Family, name: str) -> dict[str, dict[str, Any]]:
    if not isinstance(name, str) or name not in family.presets:
        raise UserError(f"unknown preset {name!r} for family {family.name}; valid presets: {', '.join(family.presets)}")
    return family.presets[name]
