"""Image-folder data sets: ImageNet-1K val (ID) and the folder-based OOD sets.

The OOD sets are a table of :class:`FolderSet` entries (where each comes from, the sub-paths of the
data root where it may sit, how many images it should hold) registered with one opener. OOD images
carry label -1. ImageNet-1K val is checked more strictly: exactly the 1000 ILSVRC-2012 wnid folders,
none empty, labelled in sorted-wnid order with OpenAI's curated CLIP class names.

Every data set may also be pointed at directly with ``OODBENCH_<NAME>_DIR`` (e.g.
``OODBENCH_IMAGENET_DIR=/data/ILSVRC2012/val``); otherwise it is looked for under the data root
(``--data-root`` / ``$OODBENCH_DATA``) at each of its accepted sub-paths in turn.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from oodbench.data.base import FileImageSet, image_folder, list_images
from oodbench.data.lists import imagenet_classes, imagenet_wnids
from oodbench.data.spec import DataContext, DatasetSpec, find_folder, folder_env_var
from oodbench.errors import DataError
from oodbench.registry import Registry

log = logging.getLogger(__name__)

WNID_RE = re.compile(r"^n\d{8}$")


def locate(spec: DatasetSpec, ctx: DataContext, candidates: Sequence[str]) -> Path:
    """The folder of ``spec``: ``$OODBENCH_<NAME>_DIR`` or the first existing ``<root>/<candidate>``.

    Raises :class:`DataError` naming every place looked at when none exists.
    """
    folder = find_folder(ctx, spec.name, candidates)
    if folder.is_dir():
        return folder
    env = folder_env_var(spec.name)
    if os.environ.get(env):
        looked = f"{folder} (from ${env})"
    else:
        looked = ", ".join(str(ctx.root / c) for c in candidates)
    raise DataError(
        f"Data set {spec.name!r}: no folder found; looked at {looked}. Expected layout: {spec.layout}. "
        f"Where it comes from: {spec.source}. Put it under the data root (--data-root / $OODBENCH_DATA) "
        f"or point ${env} at the folder itself."
    )


def check_count(name: str, folder: Path, found: int, expected: int | None) -> None:
    """Warn (not fail) when a folder holds a different number of images than the published set."""
    if expected is not None and found != expected:
        log.warning("%s: found %d images under %s, the published set has %d; results will not be comparable "
                    "with published numbers unless this is intended.", name, found, folder, expected)


# ----------------------------------------------------------------------------------------------------
# OOD sets: images anywhere under one folder, label -1.

@dataclass(frozen=True)
class FolderSet:
    """An OOD data set that is a folder of images (read recursively; non-images and dot-files skipped)."""

    name: str
    description: str
    source: str
    layout: str
    candidates: tuple[str, ...]
    expected: int | None = None


def open_ood_folder(spec: DatasetSpec, ctx: DataContext, *, candidates: Sequence[str],
                    expected: int | None) -> FileImageSet:
    """Open an OOD folder set: every image under its folder, label -1, no class names."""
    folder = locate(spec, ctx, candidates)
    images = image_folder(spec.name, folder, with_classes=False, source=spec.source, layout=spec.layout)
    check_count(spec.name, folder, len(images), expected)
    return images


MOS_URL = "http://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset"
MOS_NOTE = ("the curated OOD subset of MOS (Huang & Li, CVPR 2021; "
            "github.com/deeplearning-wisc/large_scale_ood), concepts overlapping ImageNet-1K removed, "
            "10,000 images sampled from the rest")

OOD_FOLDER_SETS: tuple[FolderSet, ...] = (
    FolderSet(
        name="inaturalist",
        description=f"iNaturalist, {MOS_NOTE}: 10,000 images of 110 plant species (count and species "
                    "verified from NINCO's label list). Far-OOD for ImageNet-1K.",
        source=f"{MOS_URL}/iNaturalist.tar.gz (md5 5be6ea8aa027d7b631916427b32cb335 per a third-party "
               "loader, unverified); extract it under the data root",
        layout="<root>/iNaturalist/images/*.jpg (flat; also accepted: <root>/iNaturalist, "
               "<root>/ImageNet_OOD_dataset/iNaturalist[/images], <root>/ood_data/iNaturalist/images)",
        candidates=("iNaturalist/images", "iNaturalist", "ImageNet_OOD_dataset/iNaturalist/images",
                    "ImageNet_OOD_dataset/iNaturalist", "ood_data/iNaturalist/images"),
        expected=10_000,
    ),
    FolderSet(
        name="sun",
        description=f"SUN, {MOS_NOTE}: 10,000 scene images (the concept count is not given by MOS; "
                    "unverified). Far-OOD for ImageNet-1K.",
        source=f"{MOS_URL}/SUN.tar.gz (md5 8469c3ada62211477954ec1be53b12d0 per a third-party loader, "
               "unverified); extract it under the data root",
        layout="<root>/SUN/images/*.jpg (flat; also accepted: <root>/SUN, <root>/ImageNet_OOD_dataset/SUN"
               "[/images], <root>/ood_data/SUN/images)",
        candidates=("SUN/images", "SUN", "ImageNet_OOD_dataset/SUN/images", "ImageNet_OOD_dataset/SUN",
                    "ood_data/SUN/images"),
        expected=10_000,
    ),
    FolderSet(
        name="places",
        description=f"Places, {MOS_NOTE}: 10,000 scene images (the concept count is not given by MOS; "
                    "unverified). Far-OOD for ImageNet-1K.",
        source=f"{MOS_URL}/Places.tar.gz (md5 b5cb5eba2754ae2a28beea8718db699a per a third-party loader, "
               "unverified); extract it under the data root",
        layout="<root>/Places/images/*.jpg (flat; also accepted: <root>/Places, "
               "<root>/ImageNet_OOD_dataset/Places[/images], <root>/ood_data/Places/images)",
        candidates=("Places/images", "Places", "ImageNet_OOD_dataset/Places/images",
                    "ImageNet_OOD_dataset/Places", "ood_data/Places/images"),
        expected=10_000,
    ),
    FolderSet(
        name="textures",
        description="Textures: the whole Describable Textures Dataset (DTD, Cimpoi et al., CVPR 2014), "
                    "all 47 classes, 5,640 images, as MOS and MCM use it (ViM and others drop 4 classes, "
                    "5,160 images: not this set). Read recursively; non-images such as waffled/.directory "
                    "are skipped.",
        source="https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz (md5 "
               "fff73e5086ae6bdbea199a49dfb8a4c1 per pytorch-ood); extract it under the data root",
        layout="<root>/dtd/images/<class>/*.jpg (also accepted: <root>/Textures/dtd/images, "
               "<root>/Textures/dtd/images_collate, <root>/Textures/images, <root>/textures/images)",
        candidates=("dtd/images", "Textures/dtd/images", "Textures/dtd/images_collate", "Textures/images",
                    "textures/images"),
        expected=5_640,
    ),
    FolderSet(
        name="lsun",
        description="LSUN-crop, ODIN's OOD test set (Liang et al., ICLR 2018): 10,000 small crops of LSUN "
                    "test images (count per ODIN, unverified here). CLIPN's CIFAR code reads ./data/LSUN "
                    "without naming the variant; this is the crop variant, the one whose tarball "
                    "unpacks to LSUN/ (lsun-resize is the other).",
        source="https://www.dropbox.com/s/raw/fhtsw1m3qxlwj6h/LSUN.tar.gz (md5 "
               "458a0a0ab8e5f1cb4516d7400568e460 per pytorch-ood); extract it under the data root",
        layout="<root>/LSUN/test/*.jpg (also accepted: <root>/LSUN, <root>/LSUN_C)",
        candidates=("LSUN/test", "LSUN", "LSUN_C"),
        expected=10_000,
    ),
    FolderSet(
        name="lsun-resize",
        description="LSUN-resize, ODIN's other LSUN OOD test set: 10,000 LSUN test images resized "
                    "(count per ODIN, unverified here). Not in the bundled suites.",
        source="https://www.dropbox.com/s/raw/moqh2wh8696c3yl/LSUN_resize.tar.gz (md5 "
               "278b7b31c8cb7e804a1465a8ce03a2dc per pytorch-ood); extract it under the data root",
        layout="<root>/LSUN_resize/*.jpg (images may sit one level deeper, e.g. LSUN_resize/LSUN_resize/)",
        candidates=("LSUN_resize",),
        expected=10_000,
    ),
    FolderSet(
        name="imagenet-r",
        description="ImageNet-R (Hendrycks et al., ICCV 2021): renditions (art, cartoons, sketches, ...) "
                    "of 200 ImageNet classes, 30,000 images (the authors' figure, not re-counted here). All "
                    "of them are OOD here, as in CLIPN's CIFAR code.",
        source="https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar; extract it under the data root",
        layout="<root>/imagenet-r/<wnid>/*.jpg (also accepted: <root>/ImageNet_R, <root>/imagenet_r, "
               "<root>/ImageNet-R)",
        candidates=("imagenet-r", "ImageNet_R", "imagenet_r", "ImageNet-R"),
        expected=30_000,
    ),
)


def register_folder_sets(registry: Registry[DatasetSpec], sets: Sequence[FolderSet]) -> None:
    for fs in sets:
        registry.register(fs.name, DatasetSpec(
            name=fs.name, description=fs.description, source=fs.source, layout=fs.layout,
            opener=partial(open_ood_folder, candidates=fs.candidates, expected=fs.expected),
            has_classes=False,
        ))


# ----------------------------------------------------------------------------------------------------
# ImageNet-1K val: the ID set of the MOS / MCM / NegLabel / CLIPN protocol.

IMAGENET_CANDIDATES = ("imagenet/val", "ImageNet/val", "imagenet-1k/val", "ILSVRC2012/val", "imagenet_val",
                       "ImageNet_val")
IMAGENET_VAL_IMAGES = 50_000


def _imagenet_error(spec: DatasetSpec, folder: Path, problem: str) -> DataError:
    return DataError(f"Data set {spec.name!r}: {problem} (in {folder}). Expected layout: {spec.layout}. "
                     f"Where it comes from: {spec.source}.")


def _summarise(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def open_imagenet(spec: DatasetSpec, ctx: DataContext) -> FileImageSet:
    """ImageNet-1K val: the 1000 wnid folders, labels in sorted-wnid order, curated CLIP class names."""
    folder = locate(spec, ctx, IMAGENET_CANDIDATES)
    wnids = imagenet_wnids()
    dirs = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        flat = list_images(folder, recursive=False)
        hint = (f"it holds {len(flat)} images directly, so it looks like the unsorted val folder: move each "
                "image into the folder of its wnid first" if flat else "it holds no class folders")
        raise _imagenet_error(spec, folder, hint)
    if len(dirs) != len(wnids):
        raise _imagenet_error(spec, folder, f"found {len(dirs)} class folders, expected exactly {len(wnids)} "
                                            "(one per ILSVRC-2012 wnid)")
    if dirs != wnids:
        known, present = set(wnids), set(dirs)
        unexpected = [d for d in dirs if d not in known]
        missing = [w for w in wnids if w not in present]
        raise _imagenet_error(spec, folder, "the class folders are not the 1000 ILSVRC-2012 wnids: "
                                            f"unexpected {_summarise(unexpected)}; "
                                            f"missing {_summarise(missing)}")
    files: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, wnid in enumerate(wnids):
        images = list_images(folder / wnid)
        if not images:
            empty.append(wnid)
        files += images
        labels += [label] * len(images)
    if empty:
        raise _imagenet_error(spec, folder,
                              f"{len(empty)} class folder(s) hold no images: {_summarise(empty)}")
    check_count(spec.name, folder, len(files), IMAGENET_VAL_IMAGES)
    return FileImageSet(spec.name, folder, files, labels, imagenet_classes())


IMAGENET = DatasetSpec(
    name="imagenet",
    description="ImageNet-1K (ILSVRC-2012) validation set: 50,000 images, 50 per class, 1000 classes named "
                "with OpenAI's curated CLIP class names (oodbench/data/imagenet_classes.txt, as MCM, "
                "NegLabel, CLIPN and OpenOOD use them). The ID set of the MOS / MCM protocol.",
    source="https://image-net.org/download (registration required): ILSVRC2012_img_val.tar, with the val "
           "images sorted into one folder per wnid (e.g. with the valprep.sh script linked from PyTorch's "
           "ImageNet example)",
    layout="<root>/imagenet/val/<wnid>/*.JPEG with exactly the 1000 ILSVRC-2012 wnid folders "
           "(n01440764 ... n15075141, listed in oodbench/data/imagenet_wnids.txt); also accepted: "
           "<root>/ImageNet/val, <root>/imagenet-1k/val, <root>/ILSVRC2012/val, <root>/imagenet_val, "
           "<root>/ImageNet_val, or $OODBENCH_IMAGENET_DIR pointing at the val folder",
    opener=open_imagenet,
    has_classes=True,
)


def register(registry: Registry[DatasetSpec]) -> None:
    registry.register(IMAGENET.name, IMAGENET)
    register_folder_sets(registry, OOD_FOLDER_SETS)
