"""Image datasets held in memory as uint8 tensors, with their normalisation.

CIFAR-sized data fits in memory (60,000 images of 32x32 take 184 MB), which
lets training augment whole batches at once instead of decoding every image
again in each epoch. Sources:

- ``cifar10`` and ``cifar100``: torchvision's datasets, downloaded into
  ``data_root`` where the machine is online;
- a folder in ImageFolder layout (``<split>/<class>/<image>``) or a ``.tar.gz``
  of one, such as the CIFAR-10 JPEG set or a user's own images.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

_LOGGER = logging.getLogger(__name__)

# Per-channel RGB mean and standard deviation on the 0..1 scale.
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

SPLITS = ("train", "test")


class ImageFileError(ValueError):
    """An image file that cannot be decoded."""


@dataclass
class ImageSet:
    """Images as an N x 3 x S x S uint8 tensor with their int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor | np.ndarray | list[int]) -> "ImageSet":
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index], self.class_names, self.source, self.skipped)


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one image file as an S x S x 3 uint8 RGB array.

    Grayscale, palette, RGBA and CMYK images are converted to RGB (alpha is
    dropped), and other sizes are resized bilinearly to ``size``.
    """
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise ImageFileError(
            f"cannot decode image {path}: {error}; replace or delete the file, "
            "or skip corrupt files (--skip-corrupt)"
        ) from error

    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def extract_archive(archive: Path, cache_root: Path) -> Path:
    """Extract a ``.tar.gz`` once into ``cache_root`` and return the folder.

    The folder name includes a hash of the archive's size and modification
    time, so a changed archive is extracted again.
    """
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    name = archive.name.removesuffix(".tar.gz").removesuffix(".tgz")
    target = cache_root / f"{name}-{key}"
    marker = target / ".extracted"
    if marker.exists():
        return target

    _LOGGER.info("extracting %s into %s", archive, target)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        # The "data" filter rejects absolute paths, links out of the folder
        # and device files, which a hostile archive could contain.
        tar.extractall(target, filter="data")
    marker.touch()
    return target


def find_split_folder(root: Path, split: str) -> Path:
    """Return ``root/split``, also when an archive wraps everything in one top folder."""
    candidates = [root / split] + [child / split for child in sorted(root.iterdir()) if child.is_dir()]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no {split}/ folder under {root}; an image folder needs train/<class>/ and test/<class>/ subfolders"
    )


def load_image_folder(folder: Path, size: int, skip_corrupt: bool = False, progress: bool = True) -> ImageSet:
    """Decode every image of an ImageFolder split (``folder/<class>/<file>``)."""
    class_dirs = sorted(child for child in folder.iterdir() if child.is_dir())
    if not class_dirs:
        raise FileNotFoundError(f"no class folders in {folder}; expected {folder}/<class>/<image files>")
    class_names = [child.name for child in class_dirs]

    files = []
    for label, class_dir in enumerate(class_dirs):
        for path in sorted(class_dir.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                files.append((path, label))
    if not files:
        raise FileNotFoundError(f"no image files under {folder}; valid suffixes: {', '.join(IMAGE_SUFFIXES)}")

    images, labels, skipped = [], [], []
    for path, label in tqdm(files, desc=f"decoding {folder.name}", unit="img", disable=not progress, leave=False):
        try:
            images.append(load_image(path, size))
        except ImageFileError as error:
            if not skip_corrupt:
                raise
            _LOGGER.warning("skipped %s", error)
            skipped.append(str(path))
            continue
        labels.append(label)
    if not images:
        raise ImageFileError(f"every image under {folder} failed to decode")

    array = np.stack(images).transpose(0, 3, 1, 2).copy()
    return ImageSet(torch.from_numpy(array), torch.tensor(labels, dtype=torch.long), class_names, str(folder), skipped)


def load_torchvision_cifar(name: str, split: str, data_root: Path, download: bool) -> ImageSet:
    """Load CIFAR-10 or CIFAR-100 through torchvision, downloading it if allowed."""
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset_class = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        dataset = dataset_class(str(data_root), train=(split == "train"), download=download)
    except (RuntimeError, OSError) as error:
        raise FileNotFoundError(
            f"cannot load {name} from {data_root}: {error}. Allow the download on a machine with "
            "internet access, or pass an ImageFolder path or .tar.gz with --data"
        ) from error

    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
    labels = torch.tensor(dataset.targets, dtype=torch.long)
    return ImageSet(images, labels, list(dataset.classes), f"torchvision:{name}")


def load_split(
    data: str,
    split: str,
    input_size: int = 32,
    data_root: str | Path = "data",
    download: bool = True,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> ImageSet:
    """Load one split (``train`` or ``test``) of ``data``: a dataset name, a folder or a ``.tar.gz``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    data_root = Path(data_root)

    if data in ("cifar10", "cifar100"):
        image_set = load_torchvision_cifar(data, split, data_root, download)
        if input_size != 32:
            resized = torch.nn.functional.interpolate(
                image_set.images.float(), size=(input_size, input_size), mode="bilinear", align_corners=False
            )
            image_set.images = resized.round().clamp(0, 255).to(torch.uint8)
        return image_set

    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(
            f"data not found: {data!r}; pass cifar10, cifar100, an ImageFolder directory or a .tar.gz of one"
        )
    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise ValueError(f"unsupported data file {path}; pass a .tar.gz of an ImageFolder tree")
        path = extract_archive(path, data_root / "extracted")
    return load_image_folder(find_split_folder(path, split), input_size, skip_corrupt, progress)


def normalization_for(data: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the mean and standard deviation that suit ``data``.

    Named datasets use their own statistics. A path whose name contains
    cifar10 or cifar100 uses CIFAR's, and any other folder uses ImageNet's.
    """
    name = Path(data).name.lower()
    for key in ("cifar100", "cifar10"):
        if key in name:
            return NORMALIZATION[key]
    return NORMALIZATION["imagenet"]


def train_val_indices(count: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(count)`` into training and validation indices with a fixed seed."""
    if not 0 < val_size < count:
        raise ValueError(f"val_size must be between 1 and {count - 1}, got {val_size}")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Convert N x 3 x H x W uint8 images to normalised float32."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return (images.float() - mean_t) / std_t


def augment(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Randomly crop (after zero padding) and horizontally flip each image on its own."""
    count, channels, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))

    dy = torch.randint(0, 2 * padding + 1, (count,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (count,), generator=generator)
    rows = (dy[:, None] + torch.arange(height)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(width)[None, :])[:, None, None, :]
    batch = torch.arange(count)[:, None, None, None]
    channel = torch.arange(channels)[None, :, None, None]
    cropped = padded[batch, channel, rows, cols]

    flip = torch.rand(count, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(-1)
    return cropped
