"""Image evaluation: FID and KID in the feature space of a small classifier, conditional accuracy, grids.

Why not Inception: FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) are defined on Inception-v3
pool features, whose weights cannot be downloaded here (no network at run time). genloom instead trains a
small CNN classifier once per dataset (a few thousand steps, cached by a fingerprint of the training
images) and uses its 128-d penultimate features. The numbers are therefore *not* comparable with
published FIDs; they compare models on the same data, and every score is reported beside the
real-vs-real floor (test images vs other test images, same number of samples: images the classifier
never trained on, as a model's samples are), the FID a perfect model would get at that sample size.

- FID: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64.
- KID: unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over subsets.
- Conditional accuracy: the classifier's accuracy on samples asked for a given class.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from genloom import run as rundir
from genloom.data.images import ImageData

FEATURES = 128  # width of the classifier's feature layer


def cache_dir() -> Path:
    """Where trained feature classifiers are kept: $GENLOOM_CACHE/classifiers (default ~/.cache/genloom)."""
    root = os.environ.get("GENLOOM_CACHE") or str(Path.home() / ".cache" / "genloom")
    return Path(root) / "classifiers"


class FeatureClassifier(nn.Module):
    """conv(32) -> conv(64) -> pool -> 128-d features -> class logits; works for any image side >= 4."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, FEATURES)
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> (B, 128)."""
        h = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))
        h = F.adaptive_avg_pool2d(h, 4).flatten(1)  # (B, 64 * 16) whatever the image side
        return F.relu(self.fc(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _fingerprint(data: ImageData) -> str:
    h = hashlib.sha256()
    for split in ("train", "test"):
        h.update(data.data.images[split].numpy().tobytes())
        h.update(data.data.labels[split].numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def _accuracy(model: FeatureClassifier, data: ImageData, split: str) -> float:
    correct = total = 0
    for x, y in data.batches(split, 500):
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def feature_classifier(
    data: ImageData, steps: int = 1500, batch_size: int = 64
) -> tuple[FeatureClassifier, dict[str, float]]:
    """The dataset's feature classifier, trained once (Adam, `steps` steps) and cached by data fingerprint.

    Returns the classifier (eval mode) and its record ({"test_accuracy", "steps"}). Unlabelled data get a
    one-class head: features are then those of a randomly initialised network, still a fixed embedding.
    """
    from safetensors.torch import load_model, save_model

    num_classes = max(data.num_classes, 1)
    model = FeatureClassifier(data.channels, num_classes)
    key = f"{_fingerprint(data)}-{steps}"
    path = cache_dir() / f"{key}.safetensors"
    if path.exists():
        load_model(model, str(path))
        model.eval()
        return model, json.loads(path.with_suffix(".json").read_text())
    generator = torch.Generator().manual_seed(0)
    torch_state = torch.get_rng_state()
    torch.manual_seed(0)  # the classifier is the same whoever trains it first
    model = FeatureClassifier(data.channels, num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    bar = tqdm(  # minutes on a CPU, once per dataset: say so rather than sit silent
        range(steps),
        desc="FID features: training the dataset's classifier (once, then cached)",
        unit="step",
        file=sys.stderr,
        leave=False,
        disable=None,
    )
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * (1 - step / steps) + 1e-4  # linear decay
        x, y = data.get_batch("train", batch_size, generator)
        if data.num_classes == 0:
            break  # nothing to learn without labels
        x = x + 0.05 * torch.randn(x.shape, generator=generator)  # mild noise: features robust to sample noise
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.set_rng_state(torch_state)
    model.eval()
    record = {"test_accuracy": _accuracy(model, data, "test") if data.num_classes else 0.0, "steps": steps}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path.with_suffix(".tmp")))
    os.replace(path.with_suffix(".tmp"), path)
    rundir.atomic_write_text(path.with_suffix(".json"), json.dumps(record))
    return model, record


@torch.no_grad()
def features(model: FeatureClassifier, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, 128) float64."""
    return np.concatenate(
        [model.features(images[i : i + batch_size].float()).double().numpy() for i in range(0, len(images), batch_size)]
    )


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N, d), (M, d)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    vals, vecs = np.linalg.eigh(cov_a)
    sqrt_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T  # S_a^1/2
    middle = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)  # eigenvalues of S_a^1/2 S_b S_a^1/2 (symmetric)
    trace_sqrt = np.sqrt(np.clip(middle, 0, None)).sum()  # Tr((S_a S_b)^1/2)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 10, subset_size: int = 200) -> float:
    """KID: the mean over `subsets` random subsets of the unbiased MMD^2 with kernel (x.y / d + 1)^3."""
    rng = np.random.default_rng(0)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        total += (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    return float(total / subsets)


@torch.no_grad()
def conditional_accuracy(model: FeatureClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of `images` the classifier assigns to the class they were asked for."""
    predicted = torch.cat([model(images[i : i + 500].float()).argmax(1) for i in range(0, len(images), 500)])
    return float((predicted == labels).float().mean())


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write (N, C, H, W) images in [-1, 1] as one PNG grid (nrow per row, 2-pixel gaps, upscaled)."""
    from PIL import Image

    n, c, h, w = images.shape
    nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / nrow))
    pad = 2
    canvas = np.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=np.uint8)
    levels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    for i in range(n):
        r, k = divmod(i, nrow)
        canvas[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = (
            levels[i]
        )
    arr = canvas[0] if c == 1 else canvas.transpose(1, 2, 0)
    img = Image.fromarray(arr)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(path)
    return path
