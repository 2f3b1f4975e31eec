"""Class-name and wnid lists shipped with the package as plain text data files.

Each file in ``oodbench/data/`` holds one entry per line; lines starting with ``#`` are comments that
give the list's source. Entries are kept exactly as written (duplicates included: the curated ImageNet
list names "missile" and "sunglasses" twice on purpose).
"""

from __future__ import annotations

import functools
from importlib import resources

IMAGENET_CLASSES = "imagenet_classes.txt"
IMAGENET_WNIDS = "imagenet_wnids.txt"
CIFAR10_CLASSES = "cifar10_classes.txt"
CIFAR100_CLASSES = "cifar100_classes.txt"


@functools.lru_cache(maxsize=None)
def read_list(filename: str) -> tuple[str, ...]:
    """The non-comment, non-blank lines of the packaged data file ``filename``, stripped."""
    text = resources.files("oodbench.data").joinpath(filename).read_text(encoding="utf-8")
    return tuple(s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#"))


def imagenet_classes() -> list[str]:
    """OpenAI's 1000 curated CLIP class names for ImageNet-1K, in label (sorted-wnid) order."""
    return list(read_list(IMAGENET_CLASSES))


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids, sorted: wnid ``i`` is the folder of label ``i``."""
    return list(read_list(IMAGENET_WNIDS))
