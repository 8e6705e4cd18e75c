"""Image loading, the train/validation split, augmentation and normalisation."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from splitnet.data import (
    NORMALIZATION,
    ImageFileError,
    augment,
    extract_archive,
    load_image,
    load_split,
    normalization_for,
    normalize,
    train_val_indices,
)


def random_pixels(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


def image_files(split_folder: Path) -> list[Path]:
    """List the image files of an ImageFolder split in the loader's order: by class, then by name."""
    return [path for class_dir in sorted(split_folder.iterdir()) for path in sorted(class_dir.iterdir())]


def make_archive(folder: Path, archive: Path, top_folder: str | None) -> Path:
    """Pack train/ and test/ of ``folder`` into a .tar.gz, optionally under one top folder."""
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            arcname = f"{top_folder}/{split}" if top_folder else split
            tar.add(folder / split, arcname=arcname)
    return archive


@pytest.fixture(params=["directory", "archive", "archive_with_top_folder"])
def tiny_source(request, tiny_image_folder: Path, tmp_path: Path) -> Path:
    """Return the tiny ImageFolder tree as a directory or as a .tar.gz of it."""
    if request.param == "directory":
        return tiny_image_folder
    top_folder = "tiny" if request.param == "archive_with_top_folder" else None
    return make_archive(tiny_image_folder, tmp_path / "tiny.tar.gz", top_folder)


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_split_tiny(tiny_source: Path, tiny_image_folder: Path, tmp_path: Path, split: str) -> None:
    files = image_files(tiny_image_folder / split)
    expected_classes = sorted(child.name for child in (tiny_image_folder / split).iterdir())
    expected_labels = [expected_classes.index(path.parent.name) for path in files]
    first_pixels = np.asarray(Image.open(files[0])).transpose(2, 0, 1)

    image_set = load_split(str(tiny_source), split, data_root=tmp_path / "cache", progress=False)

    assert tuple(image_set.images.shape) == (len(files), 3, 32, 32)
    assert image_set.images.dtype == torch.uint8
    assert image_set.labels.dtype == torch.int64
    assert image_set.labels.tolist() == expected_labels
    assert image_set.class_names == expected_classes
    assert image_set.skipped == []
    # PNG is lossless, so the loader must return the file's pixels unchanged.
    assert np.array_equal(image_set.images[0].numpy(), first_pixels)


def save_cmyk_jpeg(path: Path) -> None:
    Image.fromarray(random_pixels(32, 32)).convert("CMYK").save(path, "JPEG")


def save_grayscale_png(path: Path) -> None:
    Image.fromarray(random_pixels(32, 32, channels=1)[:, :, 0], "L").save(path, "PNG")


def save_rgba_png(path: Path) -> None:
    Image.fromarray(random_pixels(32, 32, channels=4), "RGBA").save(path, "PNG")


def save_palette_png(path: Path) -> None:
    Image.fromarray(random_pixels(32, 32)).convert("P").save(path, "PNG")


def save_other_size_png(path: Path) -> None:
    Image.fromarray(random_pixels(40, 50)).save(path, "PNG")


@pytest.mark.parametrize(
    ("name", "save", "expected_mode", "expected_size"),
    [
        ("cmyk.jpg", save_cmyk_jpeg, "CMYK", (32, 32)),
        ("gray.png", save_grayscale_png, "L", (32, 32)),
        ("rgba.png", save_rgba_png, "RGBA", (32, 32)),
        ("palette.png", save_palette_png, "P", (32, 32)),
        ("50x40.png", save_other_size_png, "RGB", (50, 40)),
    ],
)
def test_load_image_odd_file(
    tmp_path: Path,
    name: str,
    save: Callable[[Path], None],
    expected_mode: str,
    expected_size: tuple[int, int],
) -> None:
    path = tmp_path / name
    save(path)
    with Image.open(path) as image:
        mode, size = image.mode, image.size

    pixels = load_image(path, 32)

    # The first two checks confirm that the file really is the odd case.
    assert mode == expected_mode
    assert size == expected_size
    assert pixels.shape == (32, 32, 3)
    assert pixels.dtype == np.uint8


def test_load_image_grayscale_values(tmp_path: Path) -> None:
    gray = random_pixels(32, 32, channels=1)[:, :, 0]
    path = tmp_path / "gray.png"
    Image.fromarray(gray, "L").save(path)

    pixels = load_image(path, 32)

    for channel in range(3):
        assert np.array_equal(pixels[:, :, channel], gray)


def test_load_image_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = random_pixels(32, 32, channels=4)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)

    pixels = load_image(path, 32)

    assert np.array_equal(pixels, rgba[:, :, :3])


@pytest.fixture
def folder_with_truncated_jpeg(tmp_path: Path) -> tuple[Path, Path]:
    """Build an ImageFolder tree whose train split has a JPEG cut off halfway.

    Returns the root and the truncated file.
    """
    root = tmp_path / "images"
    for split in ("train", "test"):
        class_dir = root / split / "cat"
        class_dir.mkdir(parents=True)
        Image.fromarray(random_pixels(32, 32)).save(class_dir / "good.png")

    encoded = io.BytesIO()
    Image.fromarray(random_pixels(32, 32, seed=1)).save(encoded, "JPEG")
    truncated = root / "train" / "cat" / "truncated.jpg"
    truncated.write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    return root, truncated


def test_load_split_truncated_jpeg(folder_with_truncated_jpeg: tuple[Path, Path]) -> None:
    root, truncated = folder_with_truncated_jpeg

    with pytest.raises(ImageFileError, match=re.escape(str(truncated))):
        load_split(str(root), "train", progress=False)


def test_load_split_skip_corrupt(folder_with_truncated_jpeg: tuple[Path, Path]) -> None:
    root, truncated = folder_with_truncated_jpeg

    image_set = load_split(str(root), "train", skip_corrupt=True, progress=False)

    assert len(image_set) == 1
    assert image_set.skipped == [str(truncated)]
    assert image_set.labels.tolist() == [0]


def test_load_split_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"

    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_split(str(missing), "train", progress=False)


def test_load_split_invalid_split(tiny_image_folder: Path) -> None:
    with pytest.raises(ValueError, match="'val'"):
        load_split(str(tiny_image_folder), "val", progress=False)


def test_extract_archive_once(tiny_image_folder: Path, tmp_path: Path) -> None:
    archive = make_archive(tiny_image_folder, tmp_path / "tiny.tar.gz", top_folder=None)
    cache = tmp_path / "cache"

    first = extract_archive(archive, cache)
    (first / "train" / "added.txt").write_text("kept unless the archive is extracted again")
    second = extract_archive(archive, cache)

    assert second == first
    assert (second / "train" / "added.txt").exists()
    assert [child.name for child in cache.iterdir()] == [first.name]


def test_extract_archive_path_traversal(tmp_path: Path) -> None:
    archive = tmp_path / "hostile.tar.gz"
    payload = b"outside"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    cache = tmp_path / "cache"

    with pytest.raises(tarfile.FilterError):
        extract_archive(archive, cache)
    assert not (tmp_path / "escaped.txt").exists()


def test_train_val_indices_partition() -> None:
    train, val = train_val_indices(100, 10, seed=0)

    assert len(val) == 10
    assert len(train) == 90
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(100))


def test_train_val_indices_seed() -> None:
    train, val = train_val_indices(100, 10, seed=0)
    train_again, val_again = train_val_indices(100, 10, seed=0)
    _, val_other_seed = train_val_indices(100, 10, seed=1)

    assert torch.equal(train, train_again)
    assert torch.equal(val, val_again)
    assert not torch.equal(val, val_other_seed)


@pytest.mark.parametrize("val_size", [0, 100, -1])
def test_train_val_indices_invalid_size(val_size: int) -> None:
    with pytest.raises(ValueError, match=f"got {val_size}"):
        train_val_indices(100, val_size, seed=0)


def random_images(count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)


def test_augment_shape() -> None:
    images = random_images(8)

    augmented = augment(images, torch.Generator().manual_seed(0))

    assert augmented.shape == images.shape
    assert augmented.dtype == torch.uint8


def test_augment_flip_only() -> None:
    images = random_images(16)

    augmented = augment(images, torch.Generator().manual_seed(0), padding=0)

    unchanged = [torch.equal(out, image) for out, image in zip(augmented, images)]
    flipped = [torch.equal(out, image.flip(-1)) for out, image in zip(augmented, images)]
    # Without padding the crop is the whole image, so each output is its
    # input with the columns either kept or reversed.
    assert all(keep or flip for keep, flip in zip(unchanged, flipped))
    assert any(unchanged)
    assert any(flipped)


def test_normalize_known_pixel() -> None:
    mean, std = NORMALIZATION["cifar10"]
    pixel = torch.tensor([255, 0, 128], dtype=torch.uint8).view(1, 3, 1, 1)
    expected = torch.tensor(
        [(1.0 - mean[0]) / std[0], (0.0 - mean[1]) / std[1], (128 / 255 - mean[2]) / std[2]]
    ).view(1, 3, 1, 1)

    normalized = normalize(pixel, mean, std)

    assert normalized.dtype == torch.float32
    torch.testing.assert_close(normalized, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("cifar10", "cifar10"),
        ("cifar100", "cifar100"),
        ("/data/cifar10-jpeg.tar.gz", "cifar10"),
        ("/data/cifar100_images", "cifar100"),
        ("/data/my_photos", "imagenet"),
    ],
)
def test_normalization_for(data: str, expected: str) -> None:
    assert normalization_for(data) == NORMALIZATION[expected]
