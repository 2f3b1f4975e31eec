"""Class-name and wnid lists shipped with the package as plain text data files.

Each file in ``oodbench/data/`` holds one entry per line; lines starting with ``#`` are comments that
give the list's source. Entries are kept exactly as written (duplicates included: the curated ImageNet
list names "missile" and "sunglasses" twice on purpose). ``.tsv`` files hold tab-separated columns
(:func:`read_table`); their header comments name the columns.
"""

from __future__ import annotations

import functools
from importlib import resources

IMAGENET_CLASSES = "imagenet_classes.txt"
IMAGENET_WNIDS = "imagenet_wnids.txt"
CIFAR10_CLASSES = "cifar10_classes.txt"
CIFAR100_CLASSES = "cifar100_classes.txt"
IMAGENET10_MCM = "imagenet10_mcm.tsv"            # wnid, MCM's name
IMAGENET20_MCM = "imagenet20_mcm.tsv"            # wnid, MCM's name (after MCM's 2023-04-13 fix)
IMAGENET100_MCM = "imagenet100_mcm.tsv"          # wnid, MCM's name
IMAGENET_A_WNIDS = "imagenet-a_wnids.tsv"        # wnid, ImageNet-1K label, curated name
IMAGENET_R_WNIDS = "imagenet-r_wnids.tsv"        # wnid, ImageNet-1K label, curated name
SSB_HARD_WNIDS = "ssb_hard_wnids.txt"
NINCO_CLASSES = "ninco_ood_classes.tsv"          # folder, images
OPENOOD_IMAGENET_LISTS = "openood_imagenet_imglists.tsv"  # file, lines, sha256, path prefix, used as
WATERBIRDS_CLASSES = "waterbirds_classes.txt"


@functools.lru_cache(maxsize=None)
def read_list(filename: str) -> tuple[str, ...]:
    """The non-comment, non-blank lines of the packaged data file ``filename``, stripped."""
    text = resources.files("oodbench.data").joinpath(filename).read_text(encoding="utf-8")
    return tuple(s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#"))


def read_table(filename: str) -> tuple[tuple[str, ...], ...]:
    """The rows of the packaged tab-separated data file ``filename`` (comments and blank lines skipped)."""
    return tuple(tuple(line.split("\t")) for line in read_list(filename))


def imagenet_classes() -> list[str]:
    """OpenAI's 1000 curated CLIP class names for ImageNet-1K, in label (sorted-wnid) order."""
    return list(read_list(IMAGENET_CLASSES))


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids, sorted: wnid ``i`` is the folder of label ``i``."""
    return list(read_list(IMAGENET_WNIDS))
