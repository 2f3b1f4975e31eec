"""Data sets as registry entries that open into :class:`ImageSet` objects.

An :class:`ImageSet` is a torch ``Dataset`` of ``(image tensor, label, error)`` items, where ``error``
is ``""`` or a message naming a file that could not be decoded (the encoder stops on it and caches
nothing). Images are decoded by :func:`oodbench.data.decode.to_rgb` (high-bit-depth images scaled, not
clipped). Its ``identity`` keys the feature cache:

- files (:class:`FileImageSet`): the name, the image count and ``files_sha256``, a hash of every file's
  path relative to the root, size in bytes and modification time in nanoseconds (what ``make`` and
  ``rsync`` compare), so a file replaced in place is noticed even at the same size; with
  ``--verify-content`` also ``content_sha256``, a hash of every file's bytes (:meth:`ImageSet.add_content_hash`);
- torchvision sets (CIFAR, SVHN): the split and the md5 and size of each file torchvision reads, whose
  md5 torchvision verifies whenever the set is opened (their content is always covered);
- generated toyworld sets are folders, so they have the file identity.

Listing a folder fails with a :class:`DataError` (before anything is encoded) when a sub-folder cannot be
read, a file is not readable, a name is not valid UTF-8, or a class folder holds no image.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from oodbench.data.decode import apply_pixel_limit, bomb_hint, pixel_limit, to_rgb
from oodbench.data.spec import DATASETS, FOLDER_PREFIX, DataContext
from oodbench.errors import DataError, OodbenchError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})
#: What ``files_sha256`` covers, recorded with it.
FILE_IDENTITY = "relative path, size, mtime_ns"


class ImageSet(torch.utils.data.Dataset):
    """Base class: images to encode. Subclasses fill ``labels`` and implement ``load_image``."""

    def __init__(self, name: str, labels: np.ndarray, class_names: list[str] | None,
                 identity: dict[str, Any]) -> None:
        self.name = name
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = class_names
        self.identity = {"name": name, "n": int(len(self.labels)), **identity}
        self.transform: Callable[[Image.Image], torch.Tensor] | None = None
        self.max_pixels = pixel_limit()  # read here, so that DataLoader workers get it under any start method

    def with_transform(self, transform: Callable[[Image.Image], torch.Tensor]) -> ImageSet:
        self.transform = transform
        return self

    def __len__(self) -> int:
        return int(len(self.labels))

    def describe_item(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def load_image(self, index: int) -> Image.Image:
        raise NotImplementedError

    def add_content_hash(self) -> None:
        """Make the identity cover the images' bytes too (``--verify-content``); a no-op where it already does."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        if self.transform is None:
            raise RuntimeError("ImageSet.with_transform(...) must be called before encoding")
        error = ""
        try:
            apply_pixel_limit(self.max_pixels)
            image = to_rgb(self.load_image(index))
        except Image.DecompressionBombError as exc:
            error = f"{self.describe_item(index)} ({exc}): {bomb_hint()}"
            image = Image.new("RGB", (8, 8))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            error = f"{self.describe_item(index)} ({type(exc).__name__}: {exc})"
            image = Image.new("RGB", (8, 8))
        return self.transform(image), int(self.labels[index]), error


class FileImageSet(ImageSet):
    """Images from files; identity hashes the sorted relative paths, sizes and modification times (plus
    ``identity``, e.g. the image list a set was read through)."""

    def __init__(self, name: str, root: Path, files: Sequence[Path], labels: Sequence[int] | None = None,
                 class_names: list[str] | None = None, identity: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.files = [Path(f) for f in files]
        if labels is None:
            labels = [-1] * len(self.files)
        rel = [str(f.relative_to(self.root)) if f.is_relative_to(self.root) else str(f) for f in self.files]
        stats = [_stat(name, f) for f in self.files]
        #: (device, inode) of every file: what tells that two sets share a file (links included).
        self.file_ids = frozenset((st.st_dev, st.st_ino) for st in stats)
        h = hashlib.sha256()
        for r, st in sorted(zip(rel, stats), key=lambda pair: pair[0]):
            h.update(f"{r}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        super().__init__(name, np.asarray(labels), class_names,
                         {"files_sha256": h.hexdigest()[:24], "covers": FILE_IDENTITY, **(identity or {})})
        self._rel = rel

    def describe_item(self, index: int) -> str:
        return str(self.files[index])

    def load_image(self, index: int) -> Image.Image:
        with Image.open(self.files[index]) as im:
            im.load()
            return im.copy()

    def add_content_hash(self) -> None:
        """Add ``content_sha256`` (sha256 of every file's sha256, in relative-path order) to the identity."""
        if "content_sha256" in self.identity:
            return
        from oodbench.hashing import sha256_files

        order = sorted(range(len(self.files)), key=lambda i: self._rel[i])
        try:
            digest = sha256_files([self.files[i] for i in order], desc=f"hashing {self.name}")
        except OSError as exc:
            raise DataError(f"Data set {self.name!r}: cannot read {exc.filename} ({exc.strerror}) to hash "
                            "its content (--verify-content).") from None
        self.identity["content_sha256"] = digest[:24]
        self.identity["covers"] = f"{FILE_IDENTITY}, content"


class ArrayImageSet(ImageSet):
    """Images from an in-memory / torchvision-style source of PIL images (CIFAR, SVHN, generated)."""

    def __init__(self, name: str, get_image: Callable[[int], Image.Image], labels: Sequence[int],
                 class_names: list[str] | None, identity: dict[str, Any]) -> None:
        self._get_image = get_image
        super().__init__(name, np.asarray(labels), class_names, identity)

    def load_image(self, index: int) -> Image.Image:
        return self._get_image(index)


def _stat(name: str, path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise DataError(f"Data set {name!r}: cannot read {path} ({exc.strerror}). Check that it exists and "
                        "that you may read it.") from None


def _check_utf8(name: str, path: Path, root: Path) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path)
        raise DataError(
            f"Data set {name!r}: the name {shown!r} under {os.fsencode(root)!r} is not valid UTF-8, so it "
            "cannot be recorded in the cache key and the results. Rename it (e.g. `convmv -f latin1 -t utf-8 "
            "-r --notest FOLDER` shows what would change; drop --notest to rename).") from None


def list_images(folder: Path, recursive: bool = True, name: str | None = None) -> list[Path]:
    """Sorted image files under ``folder`` (hidden files and folders and non-images skipped).

    A sub-folder that cannot be listed, an image that cannot be read, or a name that is not valid UTF-8
    is a :class:`DataError` (named ``name``, default the folder), never silently skipped.
    """
    name = name or str(folder)
    _check_utf8(name, folder, folder)

    def refuse(exc: OSError) -> None:
        raise DataError(f"Data set {name!r}: cannot read the folder {exc.filename} ({exc.strerror}). Give "
                        "yourself read access to it (and to everything under it) or move it out of the "
                        "data set.") from None

    found: list[Path] = []
    unreadable: list[Path] = []
    for top, dirs, files in os.walk(folder, onerror=refuse):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not recursive:
            dirs[:] = []
        for f in files:
            path = Path(top) / f
            if f.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            _check_utf8(name, path, folder)
            if not path.is_file():
                continue
            if not os.access(path, os.R_OK):
                unreadable.append(path)
            found.append(path)
    if unreadable:
        raise DataError(f"Data set {name!r}: {len(unreadable)} image(s) under {folder} cannot be read by you, "
                        f"e.g. {unreadable[0]}. Give yourself read access or move them out of the data set.")
    return sorted(found)


def _class_dirs(name: str, folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"Data set {name!r}: cannot read the folder {folder} ({exc.strerror}).") from None
    dirs = sorted(d for d in entries if d.is_dir() and not d.name.startswith("."))
    for d in dirs:
        _check_utf8(name, d, folder)
    return dirs


def image_folder(name: str, folder: Path, *, with_classes: bool, source: str, layout: str,
                 class_names: list[str] | None = None) -> FileImageSet:
    """Open an ImageFolder-style (``with_classes``) or flat/recursive folder, with clear errors."""
    if not folder.is_dir():
        raise DataError(f"Data set {name!r}: folder {folder} does not exist. Expected layout: {layout}. "
                        f"Where it comes from: {source}.")
    if with_classes:
        class_dirs = _class_dirs(name, folder)
        if not class_dirs:
            raise DataError(f"Data set {name!r}: {folder} has no class sub-folders. Expected layout: "
                            f"{layout}. Where it comes from: {source}.")
        files: list[Path] = []
        labels: list[int] = []
        empty: list[str] = []
        for i, d in enumerate(class_dirs):
            imgs = list_images(d, name=name)
            if not imgs:
                empty.append(d.name)
            files += imgs
            labels += [i] * len(imgs)
        if empty:
            raise DataError(f"Data set {name!r}: {len(empty)} class folder(s) under {folder} hold no images "
                            f"({', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}). A class without "
                            "images still competes in every class-head score: add its images or remove the "
                            "folder.")
        names = class_names if class_names is not None else [d.name.replace("_", " ") for d in class_dirs]
        if class_names is not None and len(class_names) != len(class_dirs):
            raise DataError(f"Data set {name!r}: {folder} has {len(class_dirs)} class folders, expected "
                            f"{len(class_names)}. Expected layout: {layout}. Where it comes from: {source}.")
    else:
        files = list_images(folder, name=name)
        labels = [-1] * len(files)
        names = None
    if not files:
        raise DataError(f"Data set {name!r}: no images found under {folder} (looked for "
                        f"{', '.join(sorted(IMAGE_EXTENSIONS))}). Expected layout: {layout}. "
                        f"Where it comes from: {source}.")
    return FileImageSet(name, folder, files, labels, names)


def shared_files(a: ImageSet, b: ImageSet) -> int:
    """How many files two data sets share (same device and inode: copies are not counted, links are)."""
    ids_a, ids_b = getattr(a, "file_ids", None), getattr(b, "file_ids", None)
    return len(ids_a & ids_b) if ids_a is not None and ids_b is not None else 0


def same_folder(a: ImageSet, b: ImageSet) -> bool:
    roots = [getattr(s, "root", None) for s in (a, b)]
    return all(r is not None for r in roots) and roots[0].resolve() == roots[1].resolve()


def check_names(names: Iterable[str]) -> None:
    """Fail on an unknown registered data-set name before anything is opened (or generated)."""
    for name in names:
        if not name.startswith(FOLDER_PREFIX):
            DATASETS.get(name)


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
        _check_utf8(name, path, path)
        try:
            entries = list(path.iterdir())
        except OSError as exc:
            raise DataError(f"Data set {name!r}: cannot read the folder {path} ({exc.strerror}). Give yourself "
                            "read access to it.") from None
        has_subdirs = any(d.is_dir() and not d.name.startswith(".") for d in entries)
        has_top_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in entries if p.is_file())
        return image_folder(name, path, with_classes=has_subdirs and not has_top_images,
                            source="a folder you provided", layout=layout)
    return DATASETS.get(name).open(ctx)
