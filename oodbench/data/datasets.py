"""The built-in data sets, registered in :data:`oodbench.data.spec.DATASETS` when it is first used.

================  ====  ===================================================================================
name              role  what
================  ====  ===================================================================================
imagenet          ID    ImageNet-1K val, 50,000 images, 1000 wnid folders, OpenAI's curated CLIP class names
imagenet-openood  ID    OpenOOD v1.5's 45,000-image ID test split of ImageNet-1K val (through its list)
imagenet10        both  MCM's ImageNet-10: 10 classes of the user's ImageNet val folder, 500 images
imagenet20        both  MCM's ImageNet-20: 20 classes, 1,000 val images
imagenet100       ID    MCM's ImageNet-100: 100 classes, 5,000 val images
imagenet10-train  OOD   ImageNet-10's classes from the ImageNet train folder (MCM's OOD for ImageNet-20)
imagenet-v2       ID    ImageNetV2 matched-frequency, 10,000 images, folders 0..999
imagenet-a        ID    ImageNet-A, 200 classes, 7,500 images
imagenet-r        both  ImageNet-R, 200 classes, 30,000 images (OOD for CIFAR)
imagenet-sketch   ID    ImageNet-Sketch, 1000 classes, about 50,000 images
waterbirds        ID    Waterbirds val split, 2 classes, 1,199 images
cifar10           both  CIFAR-10 test split (torchvision; ``--download`` to fetch)
cifar100          both  CIFAR-100 test split (torchvision; ``--download`` to fetch)
inaturalist       OOD   MOS iNaturalist subset, 10,000 images (the same images as OpenOOD's)
sun               OOD   MOS SUN subset, 10,000 images
places            OOD   MOS Places subset, 10,000 images
textures          OOD   DTD, all 5,640 images
textures-openood  OOD   DTD as OpenOOD / ViM use it, 5,160 images of 43 classes (through its list)
ssb-hard          OOD   SSB-hard, 49,000 images of 980 ImageNet-21K classes
ninco             OOD   NINCO's 64 OOD classes, 5,879 images
openimage-o       OOD   OpenImage-O test split, 15,869 images (through its list)
placesbg          OOD   Places backgrounds without birds (MCM's OOD for Waterbirds)
lsun              OOD   ODIN's LSUN-crop, 10,000 images
lsun-resize       OOD   ODIN's LSUN-resize, 10,000 images
svhn              OOD   SVHN test split (torchvision; ``--download`` to fetch)
================  ====  ===================================================================================

Each entry's ``description``, ``source`` and ``layout`` say what it is, where it comes from and where
it is looked for (``oodbench list datasets`` prints them). OOD-only sets carry label -1. Sets with
classes keep their labels whichever role they play; the runner marks every image of a set used as OOD
with -1 (:func:`oodbench.runner.as_ood`), so an OOD set's classes never pass for ID labels.
"""

from __future__ import annotations

from oodbench.data.spec import DatasetSpec
from oodbench.registry import Registry

BUILTIN = ("imagenet", "imagenet-openood", "imagenet10", "imagenet20", "imagenet100", "imagenet10-train",
           "imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "waterbirds", "cifar10", "cifar100",
           "inaturalist", "sun", "places", "textures", "textures-openood", "ssb-hard", "ninco", "openimage-o",
           "placesbg", "lsun", "lsun-resize", "svhn")


def register_builtin(registry: Registry[DatasetSpec]) -> None:
    """Register the built-in data sets (the source of :data:`oodbench.data.spec.DATASETS`)."""
    from oodbench.data import folders, imagenet_sets, openood, torchvision_sets, waterbirds

    folders.register(registry)
    imagenet_sets.register(registry)
    openood.register(registry)
    waterbirds.register(registry)
    torchvision_sets.register(registry)
