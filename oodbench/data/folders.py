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


def locate(spec: DatasetSpec, ctx: DataContext, candidates: Sequence[str], *,
           env_of: Sequence[str] = ()) -> Path:
    """The folder of ``spec``: ``$OODBENCH_<NAME>_DIR`` or the first existing ``<root>/<candidate>``.

    ``env_of`` names other data sets whose ``$OODBENCH_<NAME>_DIR`` points at the same folder (the
    ImageNet subsets also follow ``$OODBENCH_IMAGENET_DIR``); the data set's own variable wins. Raises
    :class:`DataError` naming every place looked at when none exists.
    """
    env_vars = [folder_env_var(n) for n in (spec.name, *env_of)]
    for env in env_vars:
        if os.environ.get(env):
            folder = Path(os.environ[env]).expanduser()
            if folder.is_dir():
                return folder
            looked = f"{folder} (from ${env})"
            break
    else:
        folder = find_folder(ctx, spec.name, candidates)
        if folder.is_dir():
            return folder
        looked = ", ".join(str(ctx.root / c) for c in candidates)
    raise DataError(
        f"Data set {spec.name!r}: no folder found; looked at {looked}. Expected layout: {spec.layout}. "
        f"What it is: {spec.description} Where it comes from: {spec.source}. Put it under the data root "
        f"(--data-root / $OODBENCH_DATA) or point ${' or $'.join(env_vars)} at the folder itself."
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
               "<root>/ImageNet_OOD_dataset/iNaturalist[/images], <root>/ood_data/iNaturalist/images, "
               "<root>/images_largescale/inaturalist/images from OpenOOD, whose list names the same 10,000)",
        candidates=("iNaturalist/images", "iNaturalist", "ImageNet_OOD_dataset/iNaturalist/images",
                    "ImageNet_OOD_dataset/iNaturalist", "ood_data/iNaturalist/images",
                    "images_largescale/inaturalist/images"),
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
        name="placesbg",
        description="placesbg: Places365 scenes of the Waterbirds backgrounds without birds (land: bamboo "
                    "forest, broadleaf forest; water: ocean, natural lake), built by Ming, Yin & Li (AAAI "
                    "2022, github.com/deeplearning-wisc/Spurious_OOD) and used by MCM as the OOD set of "
                    "Waterbirds. Its image count is not published (a user reports about 10,000; no count "
                    "check). The released generator script (datasets/generate_placebg.py) writes only the "
                    "water scenes as shipped, so use the authors' file, not a regenerated set.",
        source="https://drive.google.com/file/d/1CBe9f8yHIlQnXYmNQj45DsqB5vCT6qQ6 (the placesbg archive the "
               "MCM maintainers link in github.com/deeplearning-wisc/MCM issue #7); extract it under the "
               "data root",
        layout="<root>/placesbg/<class>/*.jpg (read recursively; also accepted: <root>/PlacesBG, "
               "<root>/ood_data/placesbg)",
        candidates=("placesbg", "PlacesBG", "ood_data/placesbg"),
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


def layout_error(spec: DatasetSpec, folder: Path, problem: str) -> DataError:
    """A :class:`DataError` for a folder that exists but is not laid out as ``spec`` expects."""
    return DataError(f"Data set {spec.name!r}: {problem} (in {folder}). Expected layout: {spec.layout}. "
                     f"Where it comes from: {spec.source}.")


def summarise(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` of ``names`` and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_class_folders(spec: DatasetSpec, folder: Path, classes: Sequence[str], *, kind: str,
                       exact: bool = True) -> tuple[list[Path], list[int]]:
    """The images of the class folders ``classes`` under ``folder``, label ``i`` for ``classes[i]``.

    ``kind`` says what the folder names are, for the errors (e.g. "ILSVRC-2012 wnids"). With ``exact``
    the folder must hold exactly these class folders; otherwise other folders are ignored (an ImageNet
    subset read from the whole val tree). Every class folder must hold at least one image.
    """
    present = {d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if not present:
        flat = list_images(folder, recursive=False)
        raise layout_error(spec, folder, f"it holds {len(flat)} images directly and no class folders (an "
                                         "unsorted val folder?): move each image into the folder of its "
                                         "class first" if flat else "it holds no class folders")
    missing = [c for c in classes if c not in present]
    if exact and len(present) != len(classes):
        raise layout_error(spec, folder, f"found {len(present)} class folders, expected exactly "
                                         f"{len(classes)} ({kind})"
                                         + (f"; missing {summarise(missing)}" if missing else ""))
    if exact and missing:
        unexpected = sorted(present - set(classes))
        raise layout_error(spec, folder, f"the class folders are not the {len(classes)} {kind}: "
                                         f"unexpected {summarise(unexpected)}; missing {summarise(missing)}")
    if missing:
        raise layout_error(spec, folder, f"{len(missing)} of the {len(classes)} class folders ({kind}) are "
                                         f"missing: {summarise(missing)}")
    files: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, name in enumerate(classes):
        images = list_images(folder / name)
        if not images:
            empty.append(name)
        files += images
        labels += [label] * len(images)
    if empty:
        raise layout_error(spec, folder, f"{len(empty)} class folder(s) hold no images: {summarise(empty)}")
    return files, labels


def open_imagenet(spec: DatasetSpec, ctx: DataContext) -> FileImageSet:
    """ImageNet-1K val: the 1000 wnid folders, labels in sorted-wnid order, curated CLIP class names."""
    folder = locate(spec, ctx, IMAGENET_CANDIDATES)
    files, labels = read_class_folders(spec, folder, imagenet_wnids(), kind="ILSVRC-2012 wnids")
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
