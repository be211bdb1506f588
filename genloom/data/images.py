"""Image ingestion: bundled MNIST / Fashion-MNIST (IDX), scikit-learn's `digits`, or any folder of images.

The pipeline, in order: read uint8 images (N, C, H, W) and integer labels → (folders only) decode each
file with Pillow, convert to grayscale or RGB, resize the short side and center-crop to `image_size`,
label by first-level sub-folder → deterministic train / validation / test split → batches drawn with a
`torch.Generator` the trainer owns (so saving its state saves the data position), scaled to [-1, 1].

Families that model discrete pixels (PixelCNN, the flow's dequantization) recover the exact uint8 levels
with `to_levels`, so one batch format serves every family.

MNIST: LeCun et al. 1998; the 60k train images are reconstructed to within 1/255 (data/mnist/SOURCE.md).
Fashion-MNIST: Xiao et al. 2017 (data/fashion_mnist/SOURCE.md). digits: the UCI optical digits that
scikit-learn ships (8x8, 17 grey levels, rescaled to 0..255).
"""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genloom.data import DATA_DIR
from genloom.errors import UserError

BUNDLED_IMAGES = {"mnist": "mnist", "fashion-mnist": "fashion_mnist", "digits": None}  # CLI name -> folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "val", "test")


@dataclass
class ImageDataConfig:
    source: str = "mnist"  # mnist, fashion-mnist, digits, a folder of IDX files, or a folder of PNG/JPEG
    image_size: int | None = None  # folders: resize + center-crop to this side (None: keep, all must match)
    color: Literal["auto", "grayscale", "rgb"] = "auto"  # folders: auto keeps colour if any image has it
    val_fraction: float = 0.1  # share held out for validation (and for test when the source has none)
    split_seed: int = 0  # seed of the permutation that makes the splits
    limit: int | None = None  # keep only the first `limit` training images (quick runs and tests)
    # training batches only: move each grey level strictly between 0 and 255 by a uniform integer in
    # [-level_jitter, level_jitter]. For data known only to a grey level or so, such as the bundled MNIST
    # train images (reconstructed to within 1 level; 29 of the test set's 256 levels never occur in
    # them), so that a discrete-likelihood model does not learn the reconstruction's gaps
    level_jitter: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.level_jitter <= 8:
            raise ValueError(f"level_jitter must be between 0 and 8 grey levels, got {self.level_jitter}")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be between 0 and 0.5 (exclusive), got {self.val_fraction}")
        if self.image_size is not None and not 4 <= self.image_size <= 512:
            raise ValueError(f"image_size must be between 4 and 512 pixels, got {self.image_size}")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be a positive number of images, got {self.limit}")


@dataclass
class ImageSet:
    """uint8 images (N, C, H, W) and int64 labels (N,) for each split, plus what the labels mean."""

    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    class_names: list[str]  # empty: the data has no labels
    stats: dict[str, int | str] = field(default_factory=dict)


# ---- readers --------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array: (N,) labels or (N, H, W) images."""
    if path.suffix == ".gz":
        with gzip.open(path) as f:
            raw = f.read()
    else:
        raw = path.read_bytes()
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise UserError(f"{path}: not a uint8 IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: truncated IDX file ({data.size} values, header says {int(np.prod(dims))})")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def _read_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(train images, train labels, test images, test labels) of an MNIST-layout folder."""
    test_x, test_y = _find(folder, "t10k-images-idx3-ubyte"), _find(folder, "t10k-labels-idx1-ubyte")
    train_x, train_y = _find(folder, "train-images-idx3-ubyte"), _find(folder, "train-labels-idx1-ubyte")
    # MNIST's reconstructed train images, stored in parts of < 8 MB each (data/mnist/SOURCE.md)
    recon = sorted(folder.glob("mnist_train_recon.part*.npz"))
    if train_x is None and recon:
        parts = [np.load(part) for part in recon]
        xs = np.concatenate([npz["x_train"] for npz in parts])
        ys = np.concatenate([npz["y_train"] for npz in parts])
    elif train_x is not None and train_y is not None:
        xs, ys = read_idx(train_x), read_idx(train_y)
    elif test_x is not None and test_y is not None:  # only a test set: it becomes the whole data
        return read_idx(test_x), read_idx(test_y), None, None
    else:
        raise UserError(f"{folder}: no IDX files (expected train-images-idx3-ubyte[.gz] and labels)")
    if test_x is None or test_y is None:
        return xs, ys, None, None
    return xs, ys, read_idx(test_x), read_idx(test_y)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 grey levels -> 0..255
    return images, d.target.astype(np.uint8)


def _load_image(path: Path, cfg: ImageDataConfig) -> np.ndarray:
    """One file as uint8 (C, H, W): converted, resized on the short side, center-cropped."""
    from PIL import Image

    with Image.open(path) as opened:
        opened.load()  # decode now, so a truncated file fails here
        im = opened.convert("L" if cfg.color == "grayscale" else "RGB")  # auto: decided after reading all
        if cfg.image_size is not None:
            s = cfg.image_size
            w, h = im.size
            scale = s / min(w, h)
            im = im.resize((max(s, round(w * scale)), max(s, round(h * scale))), Image.Resampling.BICUBIC)
            w, h = im.size
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, H, W)


def _read_image_folder(folder: Path, cfg: ImageDataConfig) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """Every PNG/JPEG under `folder`; labels from first-level sub-folders (none: unlabelled)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder}: no images (looked for {', '.join(IMAGE_SUFFIXES)} files, recursively)")
    top = sorted({p.relative_to(folder).parts[0] for p in files if len(p.relative_to(folder).parts) > 1})
    labelled = bool(top) and all(len(p.relative_to(folder).parts) > 1 for p in files)
    class_names = top if labelled else []
    images, labels, skipped = [], [], 0
    first: tuple[Path, tuple[int, ...]] | None = None
    for p in files:
        try:
            arr = _load_image(p, cfg)
        except Exception as e:  # Pillow raises many types for broken files: skip the file, say which
            warnings.warn(f"{p}: unreadable image ({type(e).__name__}: {e}); skipped", stacklevel=2)
            skipped += 1
            continue
        if first is None:
            first = (p, arr.shape)
        elif arr.shape != first[1]:
            raise UserError(
                f"{p}: size {arr.shape[2]}x{arr.shape[1]} differs from {first[0]} ({first[1][2]}x{first[1][1]}); "
                "set data.image_size to resize and center-crop every image"
            )
        images.append(arr)
        labels.append(class_names.index(p.relative_to(folder).parts[0]) if labelled else 0)
    if not images:
        raise UserError(f"{folder}: none of the {len(files)} image files could be read")
    stacked = np.stack(images)
    if cfg.color == "auto" and stacked.shape[1] == 3 and _all_grey(stacked):
        stacked = stacked[:, :1]  # every image is grey: one channel
    return stacked, np.asarray(labels, dtype=np.int64), class_names, skipped


def _all_grey(images: np.ndarray) -> bool:
    """Whether (N, 3, H, W) images have equal red, green and blue everywhere."""
    return bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())


def colour_files(folder: Path, limit: int = 64) -> int:
    """How many of the first `limit` images under `folder` hold colour (for the grayscale warning)."""
    from PIL import Image

    count = 0
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    for p in files:
        try:
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
        except Exception:  # unreadable files are reported by the reader
            continue
        count += not _all_grey(rgb.transpose(2, 0, 1)[None])
    return count


# ---- splits ---------------------------------------------------------------------------------------


def _split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed permutation of range(n), cut into (kept, held out) with `fraction` held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_out = max(1, round(n * fraction))
    return perm[n_out:].sort().values, perm[:n_out].sort().values


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(images))  # a writable copy
    return t[:, None] if t.dim() == 3 else t  # (N, H, W) -> (N, 1, H, W)


def load_images(cfg: ImageDataConfig) -> ImageSet:
    """Read `cfg.source` and split it: train / val / test, each (N, C, H, W) uint8."""
    source = cfg.source
    skipped = made_grey = 0
    test: tuple[np.ndarray, np.ndarray] | None = None
    if source == "digits":
        xs, ys = _read_digits()
        class_names = [str(i) for i in range(10)]
    else:
        bundled = BUNDLED_IMAGES.get(source)
        folder = DATA_DIR / bundled if bundled else Path(source).expanduser()
        if not folder.is_dir():
            raise UserError(f"{source}: no such directory (bundled image datasets: {', '.join(BUNDLED_IMAGES)})")
        if any(folder.glob("*idx*-ubyte*")) or any(folder.glob("mnist_train_recon.part*.npz")):
            xs, ys, tx, ty = _read_idx_folder(folder)
            test = (tx, ty) if tx is not None and ty is not None else None
            class_names = [str(i) for i in range(int(ys.max()) + 1)]
        else:
            xs, ys, class_names, skipped = _read_image_folder(folder, cfg)
            if cfg.color == "grayscale":
                made_grey = colour_files(folder)
    x_all, y_all = _as_tensor(xs), torch.from_numpy(ys.astype(np.int64))
    if test is None:  # no official test set: hold out one val_fraction for test, another for val
        rest, test_idx = _split(len(x_all), cfg.val_fraction, cfg.split_seed)
        x_test, y_test = x_all[test_idx], y_all[test_idx]
        x_all, y_all = x_all[rest], y_all[rest]
    else:
        x_test, y_test = _as_tensor(test[0]), torch.from_numpy(test[1].astype(np.int64))
    train_idx, val_idx = _split(len(x_all), cfg.val_fraction, cfg.split_seed + 1)
    if len(train_idx) == 0:
        raise UserError(f"{source}: too few images ({len(xs)}) to split into train, validation and test")
    if cfg.limit is not None:
        train_idx = train_idx[: cfg.limit]
    images = {"train": x_all[train_idx], "val": x_all[val_idx], "test": x_test}
    labels = {"train": y_all[train_idx], "val": y_all[val_idx], "test": y_test}
    _, c, h, w = images["train"].shape
    stats: dict[str, int | str] = {f"{s}_images": len(images[s]) for s in SPLITS}
    stats.update({"shape": f"{c}x{h}x{w}", "classes": len(class_names), "skipped_files": skipped})
    if made_grey:
        stats["colour_images_made_grey"] = made_grey  # of the first 64 files; data.color=grayscale
    return ImageSet(images, labels, class_names, stats)


# ---- batches --------------------------------------------------------------------------------------


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 levels 0..255 -> float in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> int64 levels 0..255 (exact inverse of `to_unit` on its outputs)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().long()


class ImageData:
    """Batches of (images in [-1, 1] (B, C, H, W), labels (B,)) drawn with the trainer's generator."""

    def __init__(self, data: ImageSet, source: str = "images", level_jitter: int = 0) -> None:
        self.data = data
        self.source = source
        self.level_jitter = level_jitter
        _, self.channels, self.height, self.width = data.images["train"].shape
        self.num_classes = len(data.class_names)

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.data.images[split]
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        batch = images[idx]
        if split == "train" and self.level_jitter > 0:
            j = self.level_jitter
            shift = torch.randint(-j, j + 1, batch.shape, generator=generator)
            inner = (batch > 0) & (batch < 255)  # black background and saturated strokes stay exact
            batch = torch.where(inner, (batch.long() + shift).clamp(1, 254), batch.long()).to(torch.uint8)
        return to_unit(batch), self.data.labels[split][idx]

    def batches(self, split: str, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split in order, for exact evaluation."""
        images, labels = self.data.images[split], self.data.labels[split]
        return [
            (to_unit(images[i : i + batch_size]), labels[i : i + batch_size]) for i in range(0, len(images), batch_size)
        ]
