"""ID sets built on ImageNet-1K's classes: MCM's subsets and the covariate-shifted variants.

*Subsets* (``imagenet10``, ``imagenet20``, ``imagenet100``, ``imagenet10-train``) are read in place from
the user's ImageNet folder (the one ``imagenet`` reads, or ``$OODBENCH_IMAGENET_DIR``): only the
subset's wnid folders, labelled in sorted-wnid order, named as MCM's code names them
(``oodbench/data/imagenet*_mcm.tsv``). Nothing is copied; other folders are ignored, so a tree that
holds just the subset (MCM's copied ``ImageNet10/val``) serves too.

*Variants* (``imagenet-v2``, ``imagenet-a``, ``imagenet-r``, ``imagenet-sketch``) are their own folders
with one sub-folder per class, which must be exactly the expected class folders. ImageNet-V2 names its
folders by class index ``0`` .. ``999``: the label is the folder's number, never its place in a string
sort (``ImageFolder`` would put ``10`` before ``2``). ImageNet-A and -R cover 200 classes each; their
labels follow their own sorted wnids, named with OpenAI's curated ImageNet-1K names
(``oodbench/data/imagenet-{a,r}_wnids.tsv``, which also give each class's ImageNet-1K index).
``imagenet-r`` is also an OOD set (the CIFAR suites): the runner then marks every image -1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from oodbench.data.base import FileImageSet
from oodbench.data.folders import IMAGENET_CANDIDATES, check_count, locate, read_class_folders
from oodbench.data.lists import (
    IMAGENET10_MCM,
    IMAGENET20_MCM,
    IMAGENET100_MCM,
    IMAGENET_A_WNIDS,
    IMAGENET_R_WNIDS,
    imagenet_classes,
    imagenet_wnids,
    read_table,
)
from oodbench.data.spec import DataContext, DatasetSpec
from oodbench.registry import Registry

MCM = "github.com/deeplearning-wisc/MCM @ ea7130f"
IMAGENET_TRAIN_CANDIDATES = tuple(c.replace("val", "train") for c in IMAGENET_CANDIDATES)


# ----------------------------------------------------------------------------------------------------
# MCM's subsets of the user's ImageNet folder

@dataclass(frozen=True)
class ImageNetSubset:
    """Classes of ImageNet-1K read from the user's ImageNet ``split`` folder by wnid."""

    name: str
    description: str
    classes_file: str             # wnid<TAB>name, sorted by wnid
    mcm_folder: str               # the folder MCM's create_imagenet_subset.py copies the subset into
    split: str = "val"            # "val" or "train"
    expected: int | None = None   # images in the published split
    source: str = ("the ImageNet-1K (ILSVRC-2012) folder that the data set 'imagenet' reads "
                   "(https://image-net.org/download); wnids and names from MCM, " + MCM)


def subset_candidates(subset: ImageNetSubset) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Where the subset's folder may sit under the data root; whose ``$OODBENCH_<NAME>_DIR`` it follows."""
    if subset.split == "val":
        return (*IMAGENET_CANDIDATES, f"{subset.mcm_folder}/val"), ("imagenet",)
    return (*IMAGENET_TRAIN_CANDIDATES, f"{subset.mcm_folder}/train"), ("imagenet-train",)


def subset_layout(subset: ImageNetSubset) -> str:
    candidates, env_of = subset_candidates(subset)
    n = len(read_table(subset.classes_file))
    env = " or ".join(f"$OODBENCH_{name.upper().replace('-', '_')}_DIR" for name in (subset.name, *env_of))
    return (f"<root>/{candidates[0]}/<wnid>/*.JPEG: only the {n} wnid folders listed in "
            f"oodbench/data/{subset.classes_file} are read, other folders are ignored (also accepted: "
            f"{', '.join('<root>/' + c for c in candidates[1:])}, or {env} pointing at the folder)")


def open_subset(spec: DatasetSpec, ctx: DataContext, *, subset: ImageNetSubset) -> FileImageSet:
    """The subset's wnid folders of the user's ImageNet folder; label = line of the classes file."""
    candidates, env_of = subset_candidates(subset)
    folder = locate(spec, ctx, candidates, env_of=env_of)
    rows = read_table(subset.classes_file)
    files, labels = read_class_folders(spec, folder, [r[0] for r in rows], exact=False,
                                       kind=f"the wnids of oodbench/data/{subset.classes_file}")
    check_count(spec.name, folder, len(files), subset.expected)
    return FileImageSet(spec.name, folder, files, labels, [r[1] for r in rows])


SUBSETS: tuple[ImageNetSubset, ...] = (
    ImageNetSubset(
        name="imagenet10",
        description="ImageNet-10 (MCM, NeurIPS 2022): 10 ImageNet-1K classes (warplane, sports car, "
                    "brambling bird, Siamese cat, antelope, swiss mountain dog, bull frog, garbage truck, "
                    "horse, container ship, as MCM's code names them), their 500 val images (50 per "
                    "class). ID of MCM's hard task vs ImageNet-20; OOD of imagenet20.",
        classes_file=IMAGENET10_MCM, mcm_folder="ImageNet10", expected=500,
    ),
    ImageNetSubset(
        name="imagenet20",
        description="ImageNet-20 (MCM, NeurIPS 2022): 20 ImageNet-1K classes semantically close to "
                    "ImageNet-10's (animals and vehicles), their 1,000 val images. Names as MCM's code has "
                    "them since its fix of 2023-04-13 (n01631663 'eft', n02391049 'zebra'; the paper's run "
                    "used 'zebra' and 'frilled lizard' for them). ID of imagenet20, OOD of imagenet10.",
        classes_file=IMAGENET20_MCM, mcm_folder="ImageNet20", expected=1_000,
    ),
    ImageNetSubset(
        name="imagenet100",
        description="ImageNet-100 (MCM, NeurIPS 2022): 100 ImageNet-1K classes, their 5,000 val images, "
                    "named as MCM's code names them (the raw Keras imagenet_class_index.json names with "
                    "'_' -> ' ', e.g. 'ice bear'; 33 differ from the curated CLIP names).",
        classes_file=IMAGENET100_MCM, mcm_folder="ImageNet100", expected=5_000,
    ),
    ImageNetSubset(
        name="imagenet10-train",
        description="ImageNet-10's classes from the ImageNet-1K *train* folder (up to 1,300 images per "
                    "class; count not checked): the OOD set MCM's code reads for ImageNet-20 as ID "
                    "(suite imagenet20-mcm). Optional: only that suite needs it.",
        classes_file=IMAGENET10_MCM, mcm_folder="ImageNet10", split="train",
        source="the ImageNet-1K (ILSVRC-2012) train folder, ILSVRC2012_img_train.tar from "
               "https://image-net.org/download, one folder per wnid; wnids and names from MCM, " + MCM,
    ),
)


# ----------------------------------------------------------------------------------------------------
# Covariate-shifted ImageNet variants: their own class folders

def by_index() -> tuple[list[str], list[str]]:
    """ImageNet-V2's folders ``0`` .. ``999`` (label = the number) with the curated names."""
    return [str(i) for i in range(1000)], imagenet_classes()


def by_wnid() -> tuple[list[str], list[str]]:
    """The 1000 sorted wnid folders with the curated names."""
    return imagenet_wnids(), imagenet_classes()


def from_table(filename: str) -> tuple[list[str], list[str]]:
    """The wnid folders and curated names of a ``wnid<TAB>1K label<TAB>name`` file (200-class sets)."""
    rows = read_table(filename)
    return [r[0] for r in rows], [r[2] for r in rows]


@dataclass(frozen=True)
class VariantSet:
    """An ID set of ImageNet classes in its own folder: exactly the expected class folders."""

    name: str
    description: str
    source: str
    layout: str
    candidates: tuple[str, ...]
    classes: Callable[[], tuple[list[str], list[str]]]   # (class folder names in label order, class names)
    kind: str                                            # what the folder names are, for errors
    expected: int | None


def open_variant(spec: DatasetSpec, ctx: DataContext, *, variant: VariantSet) -> FileImageSet:
    folder = locate(spec, ctx, variant.candidates)
    folders, names = variant.classes()
    files, labels = read_class_folders(spec, folder, folders, kind=variant.kind)
    check_count(spec.name, folder, len(files), variant.expected)
    return FileImageSet(spec.name, folder, files, labels, names)


VARIANTS: tuple[VariantSet, ...] = (
    VariantSet(
        name="imagenet-v2",
        description="ImageNetV2 MatchedFrequency (Recht et al., ICML 2019): 10,000 new images of the 1000 "
                    "ImageNet-1K classes, 10 per class, curated CLIP names. Covariate-shifted ID. Folders "
                    "are class indices 0..999: the label is the folder's number (a string sort, as "
                    "torchvision's ImageFolder does, would scramble the labels).",
        source="https://huggingface.co/datasets/vaishaal/ImageNetV2 (imagenetv2-matched-frequency.tar.gz; "
               "github.com/modestyachts/ImageNetV2); extract it under the data root",
        layout="<root>/imagenetv2-matched-frequency-format-val/<0..999>/*.jpeg, exactly the 1000 folders "
               "0 .. 999 (also accepted: <root>/imagenet-v2[/imagenetv2-matched-frequency-format-val], "
               "<root>/ImageNetV2, <root>/images_largescale/imagenet_v2 from OpenOOD)",
        candidates=("imagenetv2-matched-frequency-format-val",
                    "imagenet-v2/imagenetv2-matched-frequency-format-val", "imagenet-v2", "ImageNetV2",
                    "images_largescale/imagenet_v2"),
        classes=by_index, kind="class indices 0..999", expected=10_000,
    ),
    VariantSet(
        name="imagenet-a",
        description="ImageNet-A (Hendrycks et al., CVPR 2021): natural adversarial examples of 200 "
                    "ImageNet-1K classes, 7,500 images (the authors' figure, not re-counted here). ID with "
                    "200 classes in sorted-wnid order, named with the curated ImageNet-1K names "
                    "(oodbench/data/imagenet-a_wnids.tsv, from the authors' eval.py).",
        source="https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar (github.com/hendrycks/"
               "natural-adv-examples); extract it under the data root",
        layout="<root>/imagenet-a/<wnid>/*.jpg, exactly the 200 wnid folders of "
               "oodbench/data/imagenet-a_wnids.tsv (also accepted: <root>/ImageNet-A, <root>/imagenet_a)",
        candidates=("imagenet-a", "ImageNet-A", "imagenet_a"),
        classes=partial(from_table, IMAGENET_A_WNIDS), kind="ImageNet-A wnids", expected=7_500,
    ),
    VariantSet(
        name="imagenet-r",
        description="ImageNet-R (Hendrycks et al., ICCV 2021): renditions (art, cartoons, sketches, ...) of "
                    "200 ImageNet-1K classes, 30,000 images (count verified from OpenOOD's list). As ID: 200 "
                    "classes in sorted-wnid order with the curated ImageNet-1K names "
                    "(oodbench/data/imagenet-r_wnids.tsv, from the authors' eval.py). As OOD (the CIFAR "
                    "suites, as in CLIPN's code) every image counts as OOD, label -1.",
        source="https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar "
               "(github.com/hendrycks/imagenet-r); extract it under the data root",
        layout="<root>/imagenet-r/<wnid>/*.jpg, exactly the 200 wnid folders of "
               "oodbench/data/imagenet-r_wnids.tsv (also accepted: <root>/ImageNet_R, <root>/imagenet_r, "
               "<root>/ImageNet-R, <root>/images_largescale/imagenet_r from OpenOOD)",
        candidates=("imagenet-r", "ImageNet_R", "imagenet_r", "ImageNet-R", "images_largescale/imagenet_r"),
        classes=partial(from_table, IMAGENET_R_WNIDS), kind="ImageNet-R wnids", expected=30_000,
    ),
    VariantSet(
        name="imagenet-sketch",
        description="ImageNet-Sketch (Wang et al., NeurIPS 2019): sketches of the 1000 ImageNet-1K classes, "
                    "about 50 per class (the authors say 50,000; their script keeps up to 51, so no count "
                    "check), curated CLIP names.",
        source="Google Drive file 1Mj0i5HBthqH1p_yeXzsg22gZduvgoNeA, Kaggle wanghaohan/imagenetsketch or "
               "Hugging Face imagenet_sketch (github.com/HaohanWang/ImageNet-Sketch); extract it under the "
               "data root",
        layout="<root>/imagenet-sketch/sketch/<wnid>/*.JPEG, exactly the 1000 ILSVRC-2012 wnid folders "
               "(also accepted: <root>/ImageNet-Sketch/sketch, <root>/sketch, <root>/imagenet-sketch)",
        candidates=("imagenet-sketch/sketch", "ImageNet-Sketch/sketch", "sketch", "imagenet-sketch"),
        classes=by_wnid, kind="ILSVRC-2012 wnids", expected=None,
    ),
)


def register(registry: Registry[DatasetSpec]) -> None:
    for subset in SUBSETS:
        registry.register(subset.name, DatasetSpec(
            name=subset.name, description=subset.description, source=subset.source,
            layout=subset_layout(subset), opener=partial(open_subset, subset=subset), has_classes=True))
    for v in VARIANTS:
        registry.register(v.name, DatasetSpec(
            name=v.name, description=v.description, source=v.source, layout=v.layout,
            opener=partial(open_variant, variant=v), has_classes=True))

