"""OpenOOD v1.5's ImageNet-1K sets, read through the image lists the user downloads, over the user's folders.

OpenOOD v1.5 (Zhang et al., 2023; github.com/Jingkang50/OpenOOD) defines each set of its ImageNet-1K
benchmark by an image list in its ``benchmark_imglist.zip`` (``benchmark_imglist/imagenet/*.txt``): one
image per line, ``<path> <label>`` split at the first space; the path is relative to its
``images_largescale/`` folder (Textures: ``images_classic/``) and starts with the set's folder (e.g.
``ninco/``); the label is the sorted-wnid ImageNet-1K index in ID lists and -1 in OOD lists.

oodbench downloads nothing. The user puts the lists under the data root (``<root>/benchmark_imglist/
imagenet/``, or ``$OODBENCH_OPENOOD_LISTS_DIR``) and the images wherever the data set looks for them;
each line's path, less the list's prefix, is looked up under that folder (names with spaces, as in
NINCO's own archive, match OpenOOD's names with ``_``). The ID list maps onto the user's ImageNet val
tree by the label's wnid (``<val>/<wnid>/<file>``), or onto OpenOOD's flat ``imagenet_1k/val/``.

``oodbench/data/openood_imagenet_imglists.tsv`` holds each list's line count, path prefix and the
sha256 of the copy oodbench was checked against (a third party's, OpenOOD's zip was not reachable):
another count or hash is read with a warning. Sets whose list equals their whole folder (``ssb-hard``
over its 980 class folders, ``ninco`` over its 64) are read from the folder when the list is absent;
``openimage-o`` (whose folder also holds OpenOOD's validation images) and ``textures-openood`` (43 of
DTD's 47 classes) need their list.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from oodbench.data.base import FileImageSet, list_images
from oodbench.data.folders import (
    IMAGENET_CANDIDATES,
    WNID_RE,
    check_count,
    layout_error,
    locate,
    read_class_folders,
    summarise,
)
from oodbench.data.lists import (
    NINCO_CLASSES,
    OPENOOD_IMAGENET_LISTS,
    SSB_HARD_WNIDS,
    imagenet_classes,
    imagenet_wnids,
    read_list,
    read_table,
)
from oodbench.data.spec import DataContext, DatasetSpec
from oodbench.errors import DataError
from oodbench.registry import Registry

log = logging.getLogger(__name__)

LISTS_ENV = "OODBENCH_OPENOOD_LISTS_DIR"
LISTS_CANDIDATES = ("benchmark_imglist/imagenet", "openood/benchmark_imglist/imagenet",
                    "OpenOOD/benchmark_imglist/imagenet", "OpenOOD/data/benchmark_imglist/imagenet")
OPENOOD = "OpenOOD v1.5 (Zhang et al., 2023; github.com/Jingkang50/OpenOOD)"
LISTS_SOURCE = ("OpenOOD's benchmark_imglist.zip (Google Drive file 1lI1j0_fDDvjIt9JlWAw09X8ks-yrR_H1, "
                "named in OpenOOD's scripts/download/download.py); put its benchmark_imglist/ folder under "
                "the data root")


@dataclass(frozen=True)
class ListInfo:
    """One OpenOOD list as oodbench checked it: line count, sha256, the prefix of every path."""

    file: str
    lines: int
    sha256: str
    prefix: str


def manifest() -> dict[str, ListInfo]:
    """The known OpenOOD ImageNet-1K lists by file name."""
    return {r[0]: ListInfo(r[0], int(r[1]), r[2], r[3]) for r in read_table(OPENOOD_IMAGENET_LISTS)}


def list_folders(ctx: DataContext) -> list[Path]:
    """Where OpenOOD's ImageNet lists are looked for: ``$OODBENCH_OPENOOD_LISTS_DIR`` (itself or its
    ``imagenet/``), else ``<root>/benchmark_imglist/imagenet`` and the other accepted places."""
    env = os.environ.get(LISTS_ENV)
    if env:
        return [Path(env).expanduser(), Path(env).expanduser() / "imagenet"]
    try:
        root = ctx.root
    except DataError:  # no data root: the data set's folder came from $OODBENCH_<NAME>_DIR
        return []
    return [root / c for c in LISTS_CANDIDATES]


def find_list(spec: DatasetSpec, ctx: DataContext, info: ListInfo, *, required: bool) -> Path | None:
    """The user's copy of the list ``info.file``; None (or, if ``required``, a DataError) when absent."""
    folders = list_folders(ctx)
    for folder in folders:
        if (folder / info.file).is_file():
            return folder / info.file
    if not required:
        return None
    looked = ", ".join(str(f / info.file) for f in folders) or "nowhere (no data root given)"
    raise DataError(
        f"Data set {spec.name!r} is read through OpenOOD v1.5's image list {info.file} "
        f"({info.lines:,} images), which was not found; looked at {looked}. Where it comes from: "
        f"{LISTS_SOURCE}, or point ${LISTS_ENV} at the folder that holds {info.file}. Expected layout of "
        f"the images: {spec.layout}."
    )


@dataclass(frozen=True)
class ImageList:
    """A parsed OpenOOD list: ``(path less the prefix, label)`` per line, in the list's order."""

    path: Path
    info: ListInfo
    entries: tuple[tuple[str, int], ...]
    sha256: str = field(repr=False)

    @property
    def identity(self) -> dict[str, str]:
        return {"image_list": self.info.file, "image_list_sha256": self.sha256[:24]}


def read_image_list(path: Path, info: ListInfo, *, ood: bool) -> ImageList:
    """Parse an OpenOOD list: every line ``<prefix><path> <label>``; an OOD list has label -1 throughout,
    an ID list labels 0..999. Malformed lines fail with their line number; another line count or
    sha256 than the checked copy's is a warning (OpenOOD replaced its zip in 2024)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"OpenOOD image list {path} is not a text file ({exc}); expected lines "
                        f"'<path> <label>' as in OpenOOD's {info.file}.") from None
    entries: list[tuple[str, int]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        rel, _, raw_label = line.partition(" ")
        try:
            label = int(raw_label)
        except ValueError:
            raise DataError(f"{path}, line {n}: expected '<path> <label>' (an integer label after the first "
                            f"space), got {line!r}. Is this OpenOOD's {info.file}?") from None
        if not rel.startswith(info.prefix) or len(rel) == len(info.prefix):
            raise DataError(f"{path}, line {n}: the path {rel!r} does not start with {info.prefix!r} as "
                            f"every path of OpenOOD's {info.file} does. Is this the right list?")
        if (label != -1) if ood else not 0 <= label < 1000:
            want = "-1 (an OOD list)" if ood else "an ImageNet-1K class index 0..999"
            raise DataError(f"{path}, line {n}: label {label}, expected {want}. "
                            f"Is this OpenOOD's {info.file}?")
        entries.append((rel[len(info.prefix):], label))
    if not entries:
        raise DataError(f"OpenOOD image list {path} holds no image; expected {info.lines:,} lines.")
    digest = hashlib.sha256(data).hexdigest()
    if len(entries) != info.lines:
        log.warning("%s lists %d images, OpenOOD v1.5's %s has %d; results will not be comparable with "
                    "published numbers unless this is intended.", path, len(entries), info.file, info.lines)
    elif digest != info.sha256:
        log.warning("%s differs from the copy of OpenOOD's %s that oodbench was checked against (same %d "
                    "lines, sha256 %s...); it may come from a newer OpenOOD release.", path, info.file,
                    info.lines, digest[:12])
    return ImageList(path, info, tuple(entries), digest)


def _normalise(rel: str) -> str:
    return rel.replace(" ", "_")


def resolve(spec: DatasetSpec, folder: Path, lst: ImageList, paths: Sequence[Path], *,
            fuzzy: bool = True) -> list[Path]:
    """``paths`` (one per list entry) if they all exist; with ``fuzzy``, a missing one is looked up by its
    name with spaces as ``_`` (NINCO's archive vs OpenOOD's copy). Missing images fail together."""
    found: list[Path] = []
    missing: list[str] = []
    index: dict[str, Path] | None = None
    for (rel, _), path in zip(lst.entries, paths):
        if not path.is_file() and fuzzy:
            if index is None:
                index = {_normalise(str(p.relative_to(folder))): p for p in list_images(folder)}
            path = index.get(_normalise(rel), path)
        if path.is_file():
            found.append(path)
        else:
            missing.append(str(path.relative_to(folder)))
    if missing:
        raise layout_error(spec, folder, f"{len(missing):,} of the {len(paths):,} images listed in "
                                         f"{lst.path} are missing, e.g. {summarise(missing, 3)}")
    return found


# ----------------------------------------------------------------------------------------------------
# OOD sets read through a list (or, for some, their whole folder)

@dataclass(frozen=True)
class ListedSet:
    """An OOD set of OpenOOD's ImageNet-1K benchmark: its list, and where its images may sit."""

    name: str
    description: str
    source: str
    layout: str
    candidates: tuple[str, ...]
    list_file: str
    env_of: tuple[str, ...] = ()
    #: how to read the folder when the list is absent; None: the list is required
    without_list: Callable[[DatasetSpec, Path], list[Path]] | None = None


def open_listed(spec: DatasetSpec, ctx: DataContext, *, entry: ListedSet) -> FileImageSet:
    info = manifest()[entry.list_file]
    folder = locate(spec, ctx, entry.candidates, env_of=entry.env_of)
    list_path = find_list(spec, ctx, info, required=entry.without_list is None)
    if list_path is None:
        assert entry.without_list is not None
        files = entry.without_list(spec, folder)
        check_count(spec.name, folder, len(files), info.lines)
        return FileImageSet(spec.name, folder, files)
    lst = read_image_list(list_path, info, ood=True)
    files = resolve(spec, folder, lst, [folder / rel for rel, _ in lst.entries])
    return FileImageSet(spec.name, folder, files, identity=lst.identity)


def ssb_hard_folders(spec: DatasetSpec, folder: Path) -> list[Path]:
    """Without the list: the images of SSB-hard's 980 wnid folders (other folders ignored)."""
    wnids = list(read_list(SSB_HARD_WNIDS))
    return read_class_folders(spec, folder, wnids, exact=False, kind="SSB-hard wnids")[0]


def ninco_folders(spec: DatasetSpec, folder: Path) -> list[Path]:
    """Without the list: every image of NINCO's 64 OOD class folders, which must be all there is (the
    archive's unit tests and data-set subsamples are not part of the set)."""
    expected = {_normalise(r[0]) for r in read_table(NINCO_CLASSES)}
    present = {_normalise(d.name) for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if present != expected:
        raise layout_error(spec, folder, f"the class folders are not NINCO's 64 OOD classes: unexpected "
                                         f"{summarise(sorted(present - expected)) or 'none'}; missing "
                                         f"{summarise(sorted(expected - present)) or 'none'}")
    return list_images(folder)


LISTED_SETS: tuple[ListedSet, ...] = (
    ListedSet(
        name="ssb-hard",
        description="SSB-hard (Vaze et al., ICLR 2022; Semantic Shift Benchmark): 49,000 images of 980 "
                    "ImageNet-21K classes semantically close to ImageNet-1K, 50 per class (count and classes "
                    "verified against SSB's split files). Near-OOD of OpenOOD v1.5's ImageNet-1K benchmark. "
                    "Read through OpenOOD's test_ssb_hard.txt when present, else the 980 wnid folders of "
                    "oodbench/data/ssb_hard_wnids.txt.",
        source="OpenOOD's ssb_hard archive (its scripts/download/download.py), or the 980 synsets of "
               "ImageNet-21K-P's val split (github.com/sgvaze/SSB, DATA.md); list: " + LISTS_SOURCE,
        layout="<root>/ssb_hard/<wnid>/*.JPEG (also accepted: <root>/images_largescale/ssb_hard, "
               "<root>/imagenet21k_val with other classes ignored)",
        candidates=("ssb_hard", "images_largescale/ssb_hard", "SSB/ssb_hard", "imagenet21k_val"),
        list_file="test_ssb_hard.txt", without_list=ssb_hard_folders,
    ),
    ListedSet(
        name="ninco",
        description="NINCO (Bitterwolf et al., ICML 2023): 5,879 images of 64 OOD classes checked by hand "
                    "to hold no ImageNet-1K object (count verified from NINCO's class CSV). Near-OOD of "
                    "OpenOOD v1.5's ImageNet-1K benchmark; all images pooled, as OpenOOD does (NINCO's paper "
                    "also averages per class). The archive's NINCO_OOD_unit_tests and "
                    "NINCO_popular_datasets_subsamples are not part of it.",
        source="https://zenodo.org/record/8013288/files/NINCO_all.tar.gz (github.com/j-cb/NINCO; md5 "
               "b9ffae324363cd900a81ce3c367cd834 per a third-party loader, unverified) or OpenOOD's ninco "
               "archive; extract it under the data root; list: " + LISTS_SOURCE,
        layout="<root>/NINCO/NINCO_OOD_classes/<class>/<images> (jpg, jpeg, png, gif; also accepted: "
               "<root>/NINCO_OOD_classes, <root>/images_largescale/ninco or <root>/ninco from OpenOOD, "
               "where spaces in names are '_')",
        candidates=("NINCO/NINCO_OOD_classes", "NINCO_OOD_classes", "images_largescale/ninco", "ninco"),
        list_file="test_ninco.txt", without_list=ninco_folders,
    ),
    ListedSet(
        name="openimage-o",
        description="OpenImage-O (Wang et al., ViM, CVPR 2022): OpenImages-V3 test images without "
                    "ImageNet-1K objects; OpenOOD v1.5's test split of 15,869 images (ViM's 17,632 less "
                    "OpenOOD's 1,763 OOD-validation images; verified from the lists). Far-OOD. Read only "
                    "through test_openimage_o.txt, because the folder holds the validation images too.",
        source="OpenOOD's openimage_o archive (its scripts/download/download.py) or ViM's image list "
               "(github.com/haoqiwang/vim) over the OpenImages-V3 test set; list: " + LISTS_SOURCE,
        layout="<root>/openimage_o/images/*.jpg plus <root>/benchmark_imglist/imagenet/test_openimage_o.txt "
               "(also accepted: <root>/images_largescale/openimage_o/images, <root>/openimage-o/images, "
               "<root>/OpenImage-O/images, <root>/openimage_o)",
        candidates=("openimage_o/images", "images_largescale/openimage_o/images", "openimage-o/images",
                    "OpenImage-O/images", "openimage_o"),
        list_file="test_openimage_o.txt",
    ),
    ListedSet(
        name="textures-openood",
        description="Textures as OpenOOD v1.5 (and ViM) use it: 5,160 DTD images of 43 classes, leaving out "
                    "bubbly, cobwebbed, honeycombed and spiralled (they overlap ImageNet-1K classes); "
                    "verified from OpenOOD's list. Not the data set 'textures' (all 5,640 images, MOS / "
                    "MCM). Read through test_textures.txt from the same DTD folder, nothing copied.",
        source="https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz (the same DTD folder as "
               "'textures'); list: " + LISTS_SOURCE,
        layout="<root>/dtd/images/<class>/*.jpg plus <root>/benchmark_imglist/imagenet/test_textures.txt "
               "(also accepted: the folders 'textures' accepts, <root>/images_classic/texture from OpenOOD, "
               "$OODBENCH_TEXTURES_DIR)",
        candidates=("dtd/images", "Textures/dtd/images", "Textures/dtd/images_collate", "Textures/images",
                    "textures/images", "images_classic/texture"),
        list_file="test_textures.txt", env_of=("textures",),
    ),
)


# ----------------------------------------------------------------------------------------------------
# The ID test split: 45,000 ImageNet-1K val images

IMAGENET_OPENOOD_LIST = "test_imagenet.txt"


def open_imagenet_openood(spec: DatasetSpec, ctx: DataContext) -> FileImageSet:
    """OpenOOD's 45,000-image ID split, mapped onto the user's val tree by each label's wnid."""
    info = manifest()[IMAGENET_OPENOOD_LIST]
    folder = locate(spec, ctx, (*IMAGENET_CANDIDATES, "images_largescale/imagenet_1k/val", "imagenet_1k/val"),
                    env_of=("imagenet",))
    lst = read_image_list(find_list(spec, ctx, info, required=True), info, ood=False)  # type: ignore[arg-type]
    wnids = imagenet_wnids()
    tree = any(WNID_RE.match(d.name) and d.is_dir() for d in folder.iterdir())
    paths = [folder / wnids[label] / rel if tree else folder / rel for rel, label in lst.entries]
    files = resolve(spec, folder, lst, paths, fuzzy=False)
    return FileImageSet(spec.name, folder, files, [label for _, label in lst.entries], imagenet_classes(),
                        identity=lst.identity)


IMAGENET_OPENOOD = DatasetSpec(
    name="imagenet-openood",
    description="ImageNet-1K as OpenOOD v1.5's ID test split: 45,000 of the 50,000 val images, 45 per class "
                "(the other 5 per class are its ID validation split; verified against the val ground "
                "truth), curated CLIP class names. Read through test_imagenet.txt.",
    source="the ImageNet-1K val folder that 'imagenet' reads (https://image-net.org/download); list: "
           + LISTS_SOURCE,
    layout="<root>/imagenet/val/<wnid>/*.JPEG (as for 'imagenet', or $OODBENCH_IMAGENET_DIR) plus "
           "<root>/benchmark_imglist/imagenet/test_imagenet.txt (or $OODBENCH_OPENOOD_LISTS_DIR); each "
           "listed file is taken from the folder of its label's wnid; OpenOOD's flat "
           "<root>/images_largescale/imagenet_1k/val/*.JPEG works too",
    opener=open_imagenet_openood,
    has_classes=True,
)


def register(registry: Registry[DatasetSpec]) -> None:
    registry.register(IMAGENET_OPENOOD.name, IMAGENET_OPENOOD)
    for entry in LISTED_SETS:
        registry.register(entry.name, DatasetSpec(
            name=entry.name, description=entry.description, source=entry.source, layout=entry.layout,
            opener=partial(open_listed, entry=entry), has_classes=False))
