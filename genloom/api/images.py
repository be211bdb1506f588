"""Image runs (VAE, GAN, diffusion, flow, PixelCNN) train through the same Trainer on `ImageData`
batches (images in [-1, 1], labels). The model's channels, image_size and num_classes come from the data."""

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genloom import run as rundir
from genloom.api.modality import Log, Modality, Sampled, timed_rates
from genloom.api.responsible import load_key
from genloom.api.runs import (
    RunConfig,
    announce,
    build_model,
    end_summary,
    load_run_model,
    read_run_config,
    read_summary,
    saved_stamp,
    start_run,
    write_summary,
)
from genloom.config import to_dict
from genloom.data.images import BUNDLED_IMAGES, ImageData, load_images, to_unit
from genloom.errors import UserError
from genloom.evaluate import plot_loss_curve, write_card
from genloom.evaluate.images import (
    conditional_accuracy,
    feature_classifier,
    frechet_distance,
    kernel_inception_distance,
    save_grid,
)
from genloom.evaluate.images import features as image_features
from genloom.generation.config import MIN_SCALE
from genloom.image_watermark import P_THRESHOLD, ImageWatermark, binomial_tail
from genloom.models import Family, get_family
from genloom.train import Trainer, TrainResult

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
    data = ImageData(images, rc.data.source, rc.data.level_jitter)
    if data.height != data.width:
        raise UserError(f"{rc.data.source}: images are {data.width}x{data.height}; set data.image_size to crop squares")
    stats = {**images.stats, "class_names": ", ".join(images.class_names) or "(unlabelled)"}
    return ImagePipeline(data, stats, {"images": h.hexdigest()[:16]})


def ingest_summary(rc: RunConfig, pipe: ImagePipeline) -> list[str]:
    """What an image run read, printed before its first step, with a warning for colour made grey."""
    st, data = pipe.stats, pipe.data
    colour = "colour" if data.channels == 3 else "grey"
    lines = [
        f"data: {rc.data.source}: {st['train_images']:,} train / {st['val_images']:,} validation / "
        f"{st['test_images']:,} test images, {data.width}x{data.height} {colour} ({data.channels} channel(s)), "
        + (f"{data.num_classes} classes ({st['class_names']})" if data.num_classes else "unlabelled")
        + (f"; {st['skipped_files']} unreadable files skipped" if st.get("skipped_files") else "")
    ]
    if st.get("colour_images_made_grey"):
        lines.append(
            f"warning: {rc.data.source}: colour images are being made grey (data.color=grayscale; "
            f"{st['colour_images_made_grey']} of the first 64 files have colour); keep colour with data.color=auto or rgb"
        )
    return lines


def _fit_to_data(rc: RunConfig, data: ImageData) -> RunConfig:
    """The model config with the data's channels, side and number of classes."""
    try:
        model = dataclasses.replace(
            rc.model, channels=data.channels, image_size=data.height, num_classes=data.num_classes
        )
    except ValueError as e:  # e.g. a conditional model on unlabelled images, a side the model cannot halve
        raise UserError(f"model (with data {rc.data.source!r}, {data.height}x{data.width}): {e}") from None
    return dataclasses.replace(rc, model=model)


def grid_labels(model_config: Any, n: int) -> torch.Tensor | None:
    """Labels 0, 1, ..., K-1, 0, 1, ... for a conditional model's grid (None when unconditional)."""
    if not getattr(model_config, "conditional", False):
        return None
    return torch.arange(n) % model_config.num_classes


def _image_sampler(run_dir: Path, rc: RunConfig) -> Callable[[nn.Module], str]:
    """Write a 16-image grid during training with its own generator (training randomness untouched)."""

    def sample(model: nn.Module) -> str:
        generator = torch.Generator().manual_seed(rc.train.seed)
        images = model.sample(16, grid_labels(rc.model, 16), generator=generator)  # type: ignore[operator]
        save_grid(images, run_dir / IMAGE_GRID, nrow=8)
        return f"16 samples in {IMAGE_GRID}"

    return sample


def train_images(
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
        if saved_stamp(out).get("images") != pipe.stamp["images"]:
            raise UserError(f"--resume {out}: the images differ from those this run was trained on")
    else:
        rc = _fit_to_data(rc, pipe.data)
    announce(ingest_summary(rc, pipe), log)
    torch.manual_seed(rc.train.seed)  # initialization is part of the run's reproducibility
    model = build_model(fam, rc.model)
    out = rundir.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    trainer = Trainer(model, rc.train, pipe.data, out, sampler=_image_sampler(out, rc), log=log, unit="img")
    start_run(out, rc, pipe.stamp, resume, trainer)
    result = trainer.fit(resume=resume)
    model_info = {"parameters": sum(p.numel() for p in model.parameters())}
    summary = end_summary(out, pipe.stats, model_info, result, trainer, "images_per_s")
    write_summary(out, summary)
    plot_loss_curve(out, fam.loss)
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
            "the real-vs-real scores (two disjoint sets of test images, same count; train images when the test "
            "split is too small): what a perfect model would get. `fid_floor_train`/`kid_floor_train` compare "
            "train with test images instead; the classifier trained on those, so it reads them as more alike "
            "than any new images and that floor is higher."
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
    run = str(run_dir)
    label = ", label=0" if getattr(rc.model, "conditional", False) else ""
    usage = (
        f'im = gl.load("{run}")\nimages = im.sample(16, seed=0{label}, out="samples.png")  # (16, C, H, W) in [-1, 1]',
        f"genloom sample {run} --n 16 --seed 0 --out samples.png\ngenloom eval {run}\ngenloom serve {run}",
    )
    write_card(run_dir, f"Model card: {run_dir.name}", sections, usage)


class ImageModel:
    """A loaded image run: the model and its config, for sampling and evaluation."""

    def __init__(self, model: nn.Module, config: RunConfig, run_dir: Path) -> None:
        self.model = model
        self.config = config
        self.run_dir = run_dir

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.config.model, "conditional", False))

    @property
    def class_names(self) -> list[str]:
        """The names of a class-conditional run's labels 0..K-1 (from its data), else []."""
        if not self.conditional:
            return []
        k = int(self.config.model.num_classes)
        names = str(read_summary(self.run_dir).get("data", {}).get("class_names", "")).split(", ")
        return names if len(names) == k else [str(i) for i in range(k)]

    def labels_for(self, n: int, label: int | None) -> torch.Tensor | None:
        """The label tensor for `n` samples: all `label`, every class in turn (None given), or None."""
        if label is not None and not self.conditional:
            raise UserError(f"{self.run_dir}: this {self.config.family} run is unconditional; sample without a label")
        if label is not None and not 0 <= label < self.config.model.num_classes:
            raise UserError(f"label must be between 0 and {self.config.model.num_classes - 1}, got {label}")
        if label is None:
            return grid_labels(self.config.model, n)
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
        watermark: bool = False,
    ) -> torch.Tensor:
        """n images (n, C, S, S) in [-1, 1]; with `out`, also a PNG grid there.

        `label` asks a class-conditional run for one class (default: every class in turn); `steps` and
        `guidance_scale` are for diffusion, `temperature` for flow and PixelCNN; `watermark` marks every
        image with the run's invisible watermark (genloom/image_watermark.py; `genloom detect` reads it).
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
            if not (MIN_SCALE <= temperature <= 1 / MIN_SCALE):  # 1e-300 or NaN would sample inf/NaN pixels
                raise UserError(f"temperature must be in [{MIN_SCALE}, {1 / MIN_SCALE:g}], got {temperature}")
            kwargs["temperature"] = temperature
        labels = self.labels_for(n, label)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        mark = self.watermarker() if watermark else None  # a missing key fails before sampling
        images = self.model.sample(n, labels, generator=generator, **kwargs)  # type: ignore[operator]
        if mark is not None:
            levels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().numpy()  # the PNG's levels
            marked = np.stack([mark.embed(x) for x in levels])
            images = torch.from_numpy(marked / 127.5 - 1.0).to(images.dtype)
        if out is not None:
            save_grid(images, out, nrow=min(n, 8))
        return images

    def watermarker(self) -> ImageWatermark:
        """The run's image watermark (its key is in the run directory)."""
        return ImageWatermark(load_key(self.run_dir).image_seed(), int(self.config.model.image_size))

    def detect(self, path: str | Path) -> dict[str, Any]:
        """Whether the image (or `genloom sample` grid) at `path` carries this run's watermark: per image,
        bit accuracy and p-value; a grid is marked when the bits voted over its images match the message
        (one binomial test of the voted bits)."""
        mark = self.watermarker()
        cells = image_cells(path, mark.size)
        found = [mark.detect(cell) for cell in cells]
        # one test of the bits voted over the images, not one per image summed: the images of one model can
        # be alike (an untrained or collapsed one draws near-copies), and near-copies of a plain image that
        # happens to read close to the message would count as independent evidence (measured: 6 identical
        # plain images were called marked under 13% of keys, near-identical ones 7%; voting: the 0.1% a
        # single image gets). A real mark survives the vote: each image's errors are its own.
        votes = np.mean([f.reading for f in found], axis=0)
        voted = (votes > 0.5).astype(int)  # a tie counts against the message
        matches = int((voted == np.asarray(mark.message)).sum())
        p = binomial_tail(matches, len(voted))
        return {
            "watermarked": p < P_THRESHOLD,
            "images": len(found),
            "bit_accuracy": float(np.mean([f.bit_accuracy for f in found])),
            "voted_bit_accuracy": matches / len(voted),
            "p_value": p,
            "per_image": [f.to_json() for f in found],
        }


def image_cells(path: str | Path, size: int) -> list[np.ndarray]:
    """The images in a file as (C, H, W) levels: a `genloom sample` grid (cells of `size` × 2 pixels between
    2-pixel gaps, the layout `save_grid` writes) is cut into its cells; any other image is one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB" if img.mode not in ("L", "1", "I;16") else "L"), dtype=np.float64)
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path}: not an image file ({str(e).splitlines()[0]})") from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (C, H, W)
    _, H, W = array.shape
    scale, pad = 2, 2  # save_grid's defaults
    cell = size + pad
    if H % scale == 0 and W % scale == 0 and (H // scale - pad) % cell == 0 and (W // scale - pad) % cell == 0:
        rows, cols = (H // scale - pad) // cell, (W // scale - pad) // cell
        small = array[:, ::scale, ::scale]  # undo the nearest-neighbour upscale
        blank = small[:, :pad, :].max() >= 250 and small[:, :, :pad].max() >= 250
        if rows * cols > 1 or blank:
            cells = []
            for r in range(rows):
                for k in range(cols):
                    y, x = pad + r * cell, pad + k * cell
                    piece = small[:, y : y + size, x : x + size]
                    if piece.min() < 255:  # an empty cell at the end of the last row is all white
                        cells.append(piece)
            if cells:
                return cells
    return [array]


def load_image_model(run_dir: str | Path, checkpoint: str = "last") -> ImageModel:
    """Rebuild an image run from its directory (`checkpoint`: "last" or "best")."""
    run_dir = Path(run_dir)
    rc = read_run_config(run_dir)
    fam = get_family(rc.family)
    model = load_run_model(run_dir, fam, rc, checkpoint)
    return ImageModel(model, rc, run_dir)


FID_MIN_SAMPLES = 500  # fewer samples bias FID upward and make it noisy: a warning says so


def _sample_in_chunks(handle: ImageModel, labels: torch.Tensor | None, n: int, seed: int) -> torch.Tensor:
    from tqdm import tqdm

    generator = torch.Generator().manual_seed(seed)
    chunks = []
    bar = tqdm(range(0, n, 250), desc=f"sampling {n} images for FID/KID", unit="chunk", leave=False, disable=None)
    for i in bar:
        part = None if labels is None else labels[i : i + 250]
        chunks.append(handle.model.sample(min(250, n - i), part, generator=generator))  # type: ignore[operator]
    return torch.cat(chunks)


COMPARE_TEST_IMAGES = 2000  # test images compare scores likelihoods on (all of them in `genloom eval`)


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
    if test_images is not None and test_images < 1:
        raise UserError(f"test_images must be at least 1, got {test_images}")
    handle = load_image_model(run_dir, checkpoint)
    rc = handle.config
    model: Any = handle.model
    data = prepare_images(rc).data
    classifier, record = feature_classifier(data)
    images = data.data.images
    n = min(n_samples, len(images["test"]), len(images["train"]))
    m = max(n, 2)
    f_test = image_features(classifier, to_unit(images["test"][:m]))
    # the floor's other real images must be new to the feature classifier, as a model's samples are: it
    # trained on the train split and fits those images more tightly (measured: a GAN's FID of 30 under a
    # train-vs-test "floor" of 67). A disjoint slice of the test split, or the train split if too small.
    unseen = images["test"][m : 2 * m] if len(images["test"]) >= 2 * m else images["train"][:m]
    f_train = image_features(classifier, to_unit(unseen))
    labels = grid_labels(rc.model, n)
    if 0 < n < FID_MIN_SAMPLES:
        why = f"n_samples={n_samples}" if n == n_samples else f"the data has {len(images['test'])} test images"
        announce(
            [
                f"warning: FID/KID on {n} samples ({why}): under {FID_MIN_SAMPLES} they read high and vary from "
                "draw to draw; compare runs only at the same count, against the floor reported beside them"
            ],
            None,
        )
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
            if len(images["train"]) >= m:  # the floor as train-vs-test, the classifier's own train images
                f_seen = image_features(classifier, to_unit(images["train"][:m]))
                metrics["fid_floor_train"] = frechet_distance(f_seen, f_test)
                metrics["kid_floor_train"] = kernel_inception_distance(f_seen, f_test)
            if labels is not None:
                metrics["conditional_accuracy"] = conditional_accuracy(classifier, samples, labels)
        with torch.no_grad():
            test = data.batches("test", 250)
            if test_images is not None:  # the first `test_images` only
                kept = test[: -(-test_images // 250)]  # the batches up to the one holding the last image
                test = [(x[: test_images - i * 250], y[: test_images - i * 250]) for i, (x, y) in enumerate(kept)]
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
    summary = read_summary(run_dir)
    summary["evaluation"] = {**metrics, "checkpoint": checkpoint}
    write_summary(run_dir, summary)
    plot_loss_curve(run_dir, get_family(rc.family).loss)
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


# ---- the contract (genloom.api.modality) ------------------------------------------------------


def label_index(handle: ImageModel, label: str | int | None) -> int | None:
    """The class a label names: a class name (any case) or its number; None or "" = every class in turn."""
    if label is None or (isinstance(label, str) and not label.strip()):
        return None
    if isinstance(label, int):
        return label
    text = label.strip()
    names = handle.class_names
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isascii() and text.isdigit():
        return int(text)
    if not handle.conditional:
        raise UserError(f"{handle.run_dir}: this {handle.config.family} run is unconditional; sample without a label")
    raise UserError(f"label: {text!r} is not a class of this model; one of: {', '.join(names)}")


class ImageModality(Modality):
    """Image generators (VAE, GAN, diffusion, flow, PixelCNN): PNG grids, FID/KID, likelihoods."""

    def data(self, rc: Any) -> Any:
        return prepare_images(rc)

    def train(self, family: Family, rc: Any, out: Path, *, resume: bool, overwrite: bool, log: Log) -> TrainResult:
        return train_images(family, rc, out, resume=resume, overwrite=overwrite, log=log)

    def load(self, run_dir: Path, rc: Any, checkpoint: str) -> Any:
        return load_image_model(run_dir, checkpoint)

    def sample(self, handle: Any, out: Path | None, options: dict[str, Any], echo: Log = None) -> Sampled:
        im: ImageModel = handle
        n = int(options.get("n") or 16)
        out = out or im.run_dir / self.sample_file
        im.sample(
            n,
            label_index(im, options.get("label")),
            options.get("seed"),
            options.get("steps"),
            options.get("guidance_scale"),
            options.get("temperature"),
            out=out,
            watermark=bool(options.get("watermark")),
        )
        return Sampled(out, n, f"{n} samples written to {out}")

    def detect(self, run_dir: Path, path: Path, options: dict[str, Any]) -> dict[str, Any]:
        found = self.load(run_dir, read_run_config(run_dir), "last").detect(path)
        verdict = "watermarked by this run" if found["watermarked"] else "no watermark of this run"
        found["line"] = (
            f"{path}: {verdict} ({found['images']} image(s), bit accuracy {found['bit_accuracy']:.3f}, "
            f"p = {found['p_value']:.3g})"
        )
        return found

    def evaluate(self, run_dir: Path, checkpoint: str, options: dict[str, Any]) -> dict[str, Any]:
        test_images = options.get("test_images")
        return evaluate_images(
            run_dir,
            checkpoint,
            n_samples=int(options.get("n_samples", 500)),
            test_images=None if test_images is None else int(test_images),
        )

    def card(self, run_dir: Path, rc: Any, summary: dict[str, Any]) -> None:
        _write_image_card(run_dir, rc, summary)

    def routes(self) -> str | None:
        return "genloom.serve.images:add_routes"

    def model_card(self, handle: Any) -> dict[str, Any]:
        return {"labels": handle.class_names or None}

    def compare_evaluation(self) -> dict[str, Any]:
        # the exact likelihood of an autoregressive model is one full forward pass per test image: over
        # MNIST's 10,000 that alone took PixelCNN past compare's time bar; 2,000 keep the estimate's standard
        # error near 0.005 bits/dim (card.md records the count as `test_images`)
        return {"n_samples": 250, "test_images": COMPARE_TEST_IMAGES}

    def speed(self, handle: Any, rounds: int) -> tuple[list[float], str]:
        im: ImageModel = handle
        with torch.inference_mode():
            return timed_rates(lambda: len(im.sample(16, seed=0)), rounds), "images/s"

    def preview(self, handle: Any, seed: int) -> tuple[str, bytes]:
        import tempfile

        im: ImageModel = handle
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            return "image/png", save_grid(im.sample(32, seed=seed), Path(tmp) / "grid.png", nrow=8).read_bytes()
