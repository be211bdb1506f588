"""Image data: bundled sets, folders of PNG/JPEG, deterministic splits, batches, and every bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genloom.data.images import ImageData, ImageDataConfig, load_images, read_idx, to_levels, to_unit
from genloom.errors import UserError


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_mnist_exact_test_set_and_fixed_validation():
    ds = load_images(ImageDataConfig(source="mnist"))
    assert ds.images["test"].shape == (10_000, 1, 28, 28)
    assert len(ds.images["train"]) + len(ds.images["val"]) == 60_000
    assert len(ds.images["val"]) == 6_000
    assert ds.images["train"].dtype == torch.uint8
    test = read_idx(Path(__file__).resolve().parents[2] / "data/mnist/t10k-images-idx3-ubyte.gz")
    assert torch.equal(ds.images["test"][:, 0], torch.from_numpy(test.copy()))  # the exact official test set
    assert ds.labels["test"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # its well-known first labels
    again = load_images(ImageDataConfig(source="mnist"))
    assert torch.equal(ds.labels["val"], again.labels["val"])


def test_fashion_mnist_and_digits():
    fm = load_images(ImageDataConfig(source="fashion-mnist"))
    assert sum(len(fm.images[s]) for s in ("train", "val", "test")) == 10_000
    assert len(fm.class_names) == 10
    digits = load_images(ImageDataConfig(source="digits"))
    assert digits.images["train"].shape[1:] == (1, 8, 8)
    assert int(digits.images["train"].max()) == 255  # 16 grey levels rescaled to the full range
    assert sum(len(digits.images[s]) for s in ("train", "val", "test")) == 1797


def test_folder_labels_resize_and_color(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        for i in range(10):
            write_png(tmp_path / cls / f"{i}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    ds = load_images(ImageDataConfig(source=str(tmp_path), image_size=16, color="rgb", val_fraction=0.2))
    assert ds.class_names == ["cats", "dogs"]
    assert ds.images["train"].shape[1:] == (3, 16, 16)
    assert sum(len(ds.images[s]) for s in ("train", "val", "test")) == 20
    assert set(torch.cat([ds.labels[s] for s in ("train", "val", "test")]).tolist()) == {0, 1}
    gray = load_images(ImageDataConfig(source=str(tmp_path), image_size=8, color="grayscale"))
    assert gray.images["train"].shape[1:] == (1, 8, 8)
    assert gray.stats["colour_images_made_grey"] == 20  # said, not silent
    auto = load_images(ImageDataConfig(source=str(tmp_path), image_size=8))  # the default keeps colour
    assert auto.images["train"].shape[1:] == (3, 8, 8) and "colour_images_made_grey" not in auto.stats


def test_grey_images_in_colour_files_become_one_channel(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        write_png(tmp_path / f"{i}.png", np.stack([grey] * 3, axis=-1))  # RGB files of grey pictures
    ds = load_images(ImageDataConfig(source=str(tmp_path)))
    assert ds.images["train"].shape[1:] == (1, 8, 8)


def test_center_crop_keeps_the_middle(tmp_path):
    img = np.zeros((10, 30), dtype=np.uint8)
    img[:, 10:20] = 255  # a white middle third: after cropping to 10x10 all of it is white
    for i in range(10):
        write_png(tmp_path / f"{i}.png", img)
    ds = load_images(ImageDataConfig(source=str(tmp_path), image_size=10))
    assert ds.class_names == []  # no sub-folders: unlabelled
    assert int(ds.images["train"].min()) >= 250


def test_batches_are_in_range_and_levels_round_trip():
    ds = load_images(ImageDataConfig(source="digits"))
    data = ImageData(ds)
    x, y = data.get_batch("train", 32, torch.Generator().manual_seed(0))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    assert x.min() >= -1 and x.max() <= 1
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_levels(to_unit(levels)), levels.long())
    x2, _ = data.get_batch("train", 32, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(UserError, match="no images"):
        load_images(ImageDataConfig(source=str(tmp_path)))


def test_mixed_sizes_name_the_file(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((8, 8), dtype=np.uint8))
    write_png(tmp_path / "b.png", np.zeros((9, 8), dtype=np.uint8))
    with pytest.raises(UserError, match=r"b\.png.*differs.*image_size"):
        load_images(ImageDataConfig(source=str(tmp_path)))


def test_corrupt_file_is_skipped_with_a_warning(tmp_path):
    for i in range(10):
        write_png(tmp_path / f"{i}.png", np.full((8, 8), i, dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.warns(UserWarning, match=r"broken\.png"):
        ds = load_images(ImageDataConfig(source=str(tmp_path)))
    assert sum(len(ds.images[s]) for s in ("train", "val", "test")) == 10
    assert ds.stats["skipped_files"] == 1


def test_only_corrupt_files_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(UserError, match="none of the 2 image files could be read"):
        load_images(ImageDataConfig(source=str(tmp_path)))


def test_unknown_source():
    with pytest.raises(UserError, match="bundled image datasets"):
        load_images(ImageDataConfig(source="no-such-dataset"))


def test_level_jitter_moves_inner_levels_of_training_batches_only():
    data = ImageData(load_images(ImageDataConfig(source="digits")), level_jitter=1)
    images = data.data.images["train"]
    x, _ = data.get_batch("train", 256, torch.Generator().manual_seed(0))
    idx = torch.randint(len(images), (256,), generator=torch.Generator().manual_seed(0))  # the same draw
    original, got = images[idx].long(), to_levels(x)
    inner = (original > 0) & (original < 255)
    assert torch.equal(got[~inner], original[~inner])  # background and saturated pixels stay exact
    moved = (got - original)[inner]
    assert moved.abs().max() == 1 and (moved != 0).any() and (moved == 0).any()
    assert set(got[inner].unique().tolist()) <= set(range(1, 255))
    val, _ = data.get_batch("val", 64, torch.Generator().manual_seed(0))  # evaluation data is untouched
    vidx = torch.randint(len(data.data.images["val"]), (64,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(to_levels(val), data.data.images["val"][vidx].long())
    with pytest.raises(ValueError, match="level_jitter"):
        ImageDataConfig(level_jitter=-1)
