"""Data sets as registry entries that open into :class:`ImageSet` objects.

An :class:`ImageSet` is a torch ``Dataset`` of ``(image tensor, label, error)`` items, where ``error``
is ``""`` or a message naming a file that could not be decoded (the encoder stops on it and caches
nothing). Its ``identity`` (name plus a hash of the sorted file list) keys the feature cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from oodbench.data.spec import DATASETS, FOLDER_PREFIX, DataContext
from oodbench.errors import DataError, OodbenchError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})


class ImageSet(torch.utils.data.Dataset):
    """Base class: images to encode. Subclasses fill ``labels`` and implement ``load_image``."""

    def __init__(self, name: str, labels: np.ndarray, class_names: list[str] | None,
                 identity: dict[str, Any]) -> None:
        self.name = name
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = class_names
        self.identity = {"name": name, "n": int(len(self.labels)), **identity}
        self.transform: Callable[[Image.Image], torch.Tensor] | None = None

    def with_transform(self, transform: Callable[[Image.Image], torch.Tensor]) -> ImageSet:
        self.transform = transform
        return self

    def __len__(self) -> int:
        return int(len(self.labels))

    def describe_item(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def load_image(self, index: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        if self.transform is None:
            raise RuntimeError("ImageSet.with_transform(...) must be called before encoding")
        error = ""
        try:
            image = self.load_image(index).convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            error = f"{self.describe_item(index)} ({type(exc).__name__}: {exc})"
            image = Image.new("RGB", (8, 8))
        return self.transform(image), int(self.labels[index]), error


class FileImageSet(ImageSet):
    """Images from files; identity hashes the sorted relative paths and sizes (plus ``identity``, e.g.
    the image list a set was read through)."""

    def __init__(self, name: str, root: Path, files: Sequence[Path], labels: Sequence[int] | None = None,
                 class_names: list[str] | None = None, identity: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.files = [Path(f) for f in files]
        if labels is None:
            labels = [-1] * len(self.files)
        rel = [str(f.relative_to(self.root)) if f.is_relative_to(self.root) else str(f) for f in self.files]
        h = hashlib.sha256()
        for r, f in sorted(zip(rel, self.files)):
            h.update(f"{r}\t{f.stat().st_size}\n".encode())
        super().__init__(name, np.asarray(labels), class_names,
                         {"files_sha256": h.hexdigest()[:24], **(identity or {})})

    def describe_item(self, index: int) -> str:
        return str(self.files[index])

    def load_image(self, index: int) -> Image.Image:
        with Image.open(self.files[index]) as im:
            im.load()
            return im.copy()


class ArrayImageSet(ImageSet):
    """Images from an in-memory / torchvision-style source of PIL images (CIFAR, SVHN, generated)."""

    def __init__(self, name: str, get_image: Callable[[int], Image.Image], labels: Sequence[int],
                 class_names: list[str] | None, identity: dict[str, Any]) -> None:
        self._get_image = get_image
        super().__init__(name, np.asarray(labels), class_names, identity)

    def load_image(self, index: int) -> Image.Image:
        return self._get_image(index)


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Sorted image files under ``folder`` (hidden files and non-images skipped)."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern)
                  if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def image_folder(name: str, folder: Path, *, with_classes: bool, source: str, layout: str,
                 class_names: list[str] | None = None) -> FileImageSet:
    """Open an ImageFolder-style (``with_classes``) or flat/recursive folder, with clear errors."""
    if not folder.is_dir():
        raise DataError(f"Data set {name!r}: folder {folder} does not exist. Expected layout: {layout}. "
                        f"Where it comes from: {source}.")
    if with_classes:
        class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not class_dirs:
            raise DataError(f"Data set {name!r}: {folder} has no class sub-folders. Expected layout: "
                            f"{layout}. Where it comes from: {source}.")
        files: list[Path] = []
        labels: list[int] = []
        for i, d in enumerate(class_dirs):
            imgs = list_images(d)
            files += imgs
            labels += [i] * len(imgs)
        names = class_names if class_names is not None else [d.name.replace("_", " ") for d in class_dirs]
        if class_names is not None and len(class_names) != len(class_dirs):
            raise DataError(f"Data set {name!r}: {folder} has {len(class_dirs)} class folders, expected "
                            f"{len(class_names)}. Expected layout: {layout}. Where it comes from: {source}.")
    else:
        files = list_images(folder)
        labels = [-1] * len(files)
        names = None
    if not files:
        raise DataError(f"Data set {name!r}: no images found under {folder} (looked for "
                        f"{', '.join(sorted(IMAGE_EXTENSIONS))}). Expected layout: {layout}. "
                        f"Where it comes from: {source}.")
    return FileImageSet(name, folder, files, labels, names)


def open_dataset(name: str, ctx: DataContext) -> ImageSet:
    """Open a registered data set, or ``folder:PATH`` (class sub-folders become class names)."""
    if name.startswith(FOLDER_PREFIX):
        raw = name[len(FOLDER_PREFIX):].strip()
        if not raw:  # Path("") would be the current directory
            raise OodbenchError("folder: needs a path, e.g. folder:/data/my_id_set")
        path = Path(raw).expanduser()
        layout = "PATH/<class>/<images> for an ID set, or images anywhere under PATH for an OOD set"
        if not path.is_dir():
            raise DataError(f"Data set {name!r}: folder {path} does not exist. Expected layout: {layout}.")
        has_subdirs = any(d.is_dir() and not d.name.startswith(".") for d in path.iterdir())
        has_top_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir() if p.is_file())
        return image_folder(name, path, with_classes=has_subdirs and not has_top_images,
                            source="a folder you provided", layout=layout)
    return DATASETS.get(name).open(ctx)
