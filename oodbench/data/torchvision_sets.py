"""Data sets read through torchvision: CIFAR-10 and CIFAR-100 (ID or OOD) and SVHN (OOD), test splits.

torchvision's own loaders read the files and check their md5 sums. Nothing is downloaded unless the
user passes ``--download`` (:attr:`DataContext.download`); otherwise a missing or incomplete data set
fails with a :class:`DataError` saying where the files were expected and how to get them. The
identity of each set (the feature-cache key) holds the split, the image count, and the name, md5 and
size of every file torchvision reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oodbench.data.base import ArrayImageSet
from oodbench.data.lists import CIFAR10_CLASSES, CIFAR100_CLASSES, read_list
from oodbench.data.spec import DataContext, DatasetSpec, find_folder
from oodbench.errors import DataError
from oodbench.registry import Registry


def cifar_files(cls: Any, split: str) -> list[tuple[str, str]]:
    """(path relative to the torchvision root, md5) of the files a CIFAR test split is read from."""
    batches = cls.test_list if split == "test" else cls.train_list
    listed = [(name, md5) for name, md5 in batches] + [(cls.meta["filename"], cls.meta["md5"])]
    return [(f"{cls.base_folder}/{name}", md5) for name, md5 in listed]


def svhn_files(cls: Any, split: str) -> list[tuple[str, str]]:
    """(path relative to the torchvision root, md5) of the ``.mat`` file of one SVHN split."""
    _url, filename, md5 = cls.split_list[split]
    return [(filename, md5)]


@dataclass(frozen=True)
class TorchvisionSet:
    """How to open one split of a torchvision data set; ``classes_file`` is None for OOD-only sets."""

    name: str
    description: str
    source: str
    layout: str
    folder: str                                   # sub-folder of the data root handed to torchvision
    dataset_class: str                            # attribute of torchvision.datasets
    split: str
    split_kwargs: tuple[tuple[str, Any], ...]     # how the class is told the split
    files: Callable[[Any, str], list[tuple[str, str]]]
    classes_file: str | None = None


class _PilItems:
    """Picklable ``index -> PIL image`` over a torchvision data set without a transform."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __call__(self, index: int) -> Image.Image:
        image, _target = self.dataset[index]
        return image


def _load(entry: TorchvisionSet, spec: DatasetSpec, root: Path, download: bool) -> Any:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, entry.dataset_class)
    what = f"Data set {spec.name!r} ({entry.dataset_class} {entry.split} split)"
    try:
        return cls(root=str(root), download=download, **dict(entry.split_kwargs))
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        if download:
            raise DataError(f"{what}: the files under {root} are still missing or corrupted after "
                            f"downloading ({exc}). Expected layout: {spec.layout}. Where it comes from: "
                            f"{spec.source}. Delete the folder and try --download again.") from None
        raise DataError(f"{what}: not found or incomplete under {root} (torchvision checks every file's "
                        f"md5). Expected layout: {spec.layout}. Where it comes from: {spec.source}. Pass "
                        "--download to let torchvision fetch it there, or put the files there "
                        "yourself.") from None
    except OSError as exc:  # network errors (URLError is an OSError) and disk errors while downloading
        raise DataError(f"{what}: downloading into {root} failed ({type(exc).__name__}: {exc}). Expected "
                        f"layout: {spec.layout}. Where it comes from: {spec.source}. Download the files on "
                        "a machine with network access and copy them there.") from None


def open_torchvision_set(spec: DatasetSpec, ctx: DataContext, *, entry: TorchvisionSet) -> ArrayImageSet:
    """Open ``entry``'s split; downloads only when ``ctx.download`` is set."""
    root = find_folder(ctx, spec.name, (entry.folder,))
    dataset = _load(entry, spec, root, ctx.download)
    files = entry.files(type(dataset), entry.split)
    identity = {
        "split": entry.split,
        "files": {rel: {"md5": md5, "size": (root / rel).stat().st_size} for rel, md5 in files},
    }
    n = len(dataset)
    if entry.classes_file is None:
        labels = np.full(n, -1, dtype=np.int64)
        class_names = None
    else:
        labels = np.asarray(dataset.targets, dtype=np.int64)
        class_names = list(read_list(entry.classes_file))
        found = [c.replace("_", " ") for c in dataset.classes]
        if found != class_names:
            raise DataError(f"Data set {spec.name!r}: the class names in the meta file under {root} differ "
                            f"from oodbench/data/{entry.classes_file}. Expected layout: {spec.layout}. "
                            f"Where it comes from: {spec.source}.")
    return ArrayImageSet(spec.name, _PilItems(dataset), labels, class_names, identity)


CIFAR_SOURCE = ("https://www.cs.toronto.edu/~kriz/cifar.html, fetched by torchvision.datasets.{cls} "
                "with --download")

TORCHVISION_SETS: tuple[TorchvisionSet, ...] = (
    TorchvisionSet(
        name="cifar10",
        description="CIFAR-10 test split: 10,000 32x32 images, 10 classes (class names in "
                    "oodbench/data/cifar10_classes.txt). ID set of the cifar10 suite, near-OOD of cifar100.",
        source=CIFAR_SOURCE.format(cls="CIFAR10") + " (cifar-10-python.tar.gz)",
        layout="<root>/cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, "
               "torchvision's layout (it checks the training batches too); or $OODBENCH_CIFAR10_DIR "
               "pointing at the folder that holds cifar-10-batches-py",
        folder="cifar10", dataset_class="CIFAR10", split="test", split_kwargs=(("train", False),),
        files=cifar_files, classes_file=CIFAR10_CLASSES,
    ),
    TorchvisionSet(
        name="cifar100",
        description="CIFAR-100 test split: 10,000 32x32 images, 100 fine classes (class names in "
                    "oodbench/data/cifar100_classes.txt). ID set of the cifar100 suite, near-OOD of cifar10.",
        source=CIFAR_SOURCE.format(cls="CIFAR100") + " (cifar-100-python.tar.gz)",
        layout="<root>/cifar100/cifar-100-python/{train, test, meta}, torchvision's layout; or "
               "$OODBENCH_CIFAR100_DIR pointing at the folder that holds cifar-100-python",
        folder="cifar100", dataset_class="CIFAR100", split="test", split_kwargs=(("train", False),),
        files=cifar_files, classes_file=CIFAR100_CLASSES,
    ),
    TorchvisionSet(
        name="svhn",
        description="SVHN (Street View House Numbers) test split: 26,032 32x32 digit crops, used as an "
                    "OOD set (labels ignored).",
        source="http://ufldl.stanford.edu/housenumbers/ (test_32x32.mat), fetched by "
               "torchvision.datasets.SVHN with --download",
        layout="<root>/svhn/test_32x32.mat, torchvision's layout; or $OODBENCH_SVHN_DIR pointing at the "
               "folder that holds test_32x32.mat",
        folder="svhn", dataset_class="SVHN", split="test", split_kwargs=(("split", "test"),),
        files=svhn_files,
    ),
)


def register(registry: Registry[DatasetSpec]) -> None:
    for entry in TORCHVISION_SETS:
        registry.register(entry.name, DatasetSpec(
            name=entry.name, description=entry.description, source=entry.source, layout=entry.layout,
            opener=partial(open_torchvision_set, entry=entry), has_classes=entry.classes_file is not None,
        ))

