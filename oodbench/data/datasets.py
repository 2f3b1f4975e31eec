"""The built-in data sets, registered in :data:`oodbench.data.spec.DATASETS` when it is first used.

==============  ====  =====================================================================================
name            role  what
==============  ====  =====================================================================================
imagenet        ID    ImageNet-1K val, 50,000 images, 1000 wnid folders, OpenAI's curated CLIP class names
cifar10         both  CIFAR-10 test split (torchvision; ``--download`` to fetch)
cifar100        both  CIFAR-100 test split (torchvision; ``--download`` to fetch)
inaturalist     OOD   MOS iNaturalist subset, 10,000 images
sun             OOD   MOS SUN subset, 10,000 images
places          OOD   MOS Places subset, 10,000 images
textures        OOD   DTD, all 5,640 images
lsun            OOD   ODIN's LSUN-crop, 10,000 images
lsun-resize     OOD   ODIN's LSUN-resize, 10,000 images
imagenet-r      OOD   ImageNet-R, 30,000 images
svhn            OOD   SVHN test split (torchvision; ``--download`` to fetch)
==============  ====  =====================================================================================

Each entry's ``description``, ``source`` and ``layout`` say what it is, where it comes from and where
it is looked for (``oodbench list datasets`` prints them). OOD images carry label -1; the CIFAR sets
keep their labels whichever role they play, and a runner ignores the labels of an OOD set.
"""

from __future__ import annotations

from oodbench.data.spec import DatasetSpec
from oodbench.registry import Registry

BUILTIN = ("imagenet", "cifar10", "cifar100", "inaturalist", "sun", "places", "textures", "lsun",
           "lsun-resize", "imagenet-r", "svhn")


def register_builtin(registry: Registry[DatasetSpec]) -> None:
    """Register the built-in data sets (the source of :data:`oodbench.data.spec.DATASETS`)."""
    from oodbench.data import folders, torchvision_sets

    folders.register(registry)
    torchvision_sets.register(registry)
