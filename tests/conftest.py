"""Shared fixtures: the CIFAR-10 JPEG archive and a tiny ImageFolder tree."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

# Layout of the tiny ImageFolder tree: images per class in each split.
TINY_CLASSES = ("ant", "bee", "cow")
TINY_IMAGES_PER_CLASS = {"train": 8, "test": 2}


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    """Return the CIFAR-10 JPEG archive, or skip when it is not on this machine.

    SPARSE_SPLIT_DATA overrides the default location. `make test` sets it to
    an empty string when it finds no archive, so an empty value also means
    the default.
    """
    archive = Path(os.environ.get("SPARSE_SPLIT_DATA") or DEFAULT_ARCHIVE)
    if not archive.is_file():
        pytest.skip(
            f"CIFAR-10 JPEG archive not found at {archive}; set SPARSE_SPLIT_DATA to the path of "
            "cifar10-jpeg.tar.gz (an ImageFolder tree with train/ and test/)"
        )
    return archive


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build an ImageFolder tree of 32x32 PNG images and return its root.

    The root contains train/<class>/ and test/<class>/ for the classes in
    TINY_CLASSES. Each class has its own random 4x4 color pattern, scaled up
    to 32x32, and each image adds uniform noise to it. The classes differ in
    their spatial pattern, not only in their mean color, which batch
    normalization over a small batch would remove. A fixed seed makes the
    files identical in every run.
    """
    root = tmp_path_factory.mktemp("tiny_image_folder")
    rng = np.random.default_rng(0)
    patterns = [np.kron(rng.integers(0, 256, size=(4, 4, 3)), np.ones((8, 8, 1))) for _ in TINY_CLASSES]

    for split, count in TINY_IMAGES_PER_CLASS.items():
        for label, class_name in enumerate(TINY_CLASSES):
            class_dir = root / split / class_name
            class_dir.mkdir(parents=True)
            for index in range(count):
                noise = rng.integers(-40, 41, size=(32, 32, 3))
                pixels = np.clip(patterns[label] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(class_dir / f"{index:03d}.png")
    return root
