"""Waterbirds (Sagawa et al., ICLR 2020) as an ID set: the validation split of its ``metadata.csv``.

The data set ``waterbird_complete95_forest2water2`` pastes CUB-200 birds onto Places backgrounds; its
``metadata.csv`` has one row per image with the columns ``img_filename`` (path relative to the folder),
``y`` (0 landbird, 1 waterbird) and ``split`` (0 train, 1 val, 2 test), among others. MCM's spurious-OOD
setting evaluates the val split as ID (MCM issue #7) against ``placesbg``; labels are ``y`` as shipped
(the generator's species match also calls three land species waterbirds; they are kept).
"""

from __future__ import annotations

import csv
from pathlib import Path

from oodbench.data.base import FileImageSet
from oodbench.data.folders import check_count, layout_error, locate, summarise
from oodbench.data.lists import WATERBIRDS_CLASSES, read_list
from oodbench.data.spec import DataContext, DatasetSpec
from oodbench.registry import Registry

VAL_SPLIT = "1"
COLUMNS = ("img_filename", "y", "split")


def read_split(spec: DatasetSpec, folder: Path, split: str) -> tuple[list[Path], list[int]]:
    """Files and ``y`` labels of the rows of ``folder/metadata.csv`` whose ``split`` is ``split``."""
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise layout_error(spec, folder, "no metadata.csv")
    with meta.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        lacking = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if lacking:
            raise layout_error(spec, folder, f"metadata.csv lacks the column(s) {', '.join(lacking)}")
        rows = [r for r in reader if r["split"].strip() == split]
    files = [folder / r["img_filename"] for r in rows]
    bad = sorted({r["y"] for r in rows} - {"0", "1"})
    if bad:
        raise layout_error(spec, folder, f"metadata.csv has labels y = {summarise(bad)}, expected 0 or 1")
    if not files:
        raise layout_error(spec, folder, f"metadata.csv has no row with split = {split}")
    missing = [str(f.relative_to(folder)) for f in files if not f.is_file()]
    if missing:
        raise layout_error(spec, folder, f"{len(missing)} of the {len(files)} images of split {split} listed "
                                         f"in metadata.csv are missing, e.g. {summarise(missing, 3)}")
    return files, [int(r["y"]) for r in rows]


def open_waterbirds(spec: DatasetSpec, ctx: DataContext) -> FileImageSet:
    folder = locate(spec, ctx, ("waterbird_complete95_forest2water2",
                                "waterbirds/waterbird_complete95_forest2water2", "waterbirds", "Waterbirds"))
    files, labels = read_split(spec, folder, VAL_SPLIT)
    check_count(spec.name, folder, len(files), WATERBIRDS_VAL_IMAGES)
    return FileImageSet(spec.name, folder, files, labels, list(read_list(WATERBIRDS_CLASSES)),
                        identity={"split": "val"})


#: round(0.2 * 5,994 CUB train images), the generator's val fraction (arithmetic, not counted from a copy)
WATERBIRDS_VAL_IMAGES = 1_199

WATERBIRDS = DatasetSpec(
    name="waterbirds",
    description="Waterbirds (Sagawa et al., ICLR 2020), the validation split (split = 1 in metadata.csv, "
                "1,199 images: 20% of CUB's 5,994 training images), as ID with 2 classes, landbird and "
                "waterbird (label = y). MCM's spurious-OOD setting; its OOD set is placesbg.",
    source="https://nlp.stanford.edu/data/dro/waterbird_complete95_forest2water2.tar.gz "
           "(github.com/kohpangwei/group_DRO); extract it under the data root",
    layout="<root>/waterbird_complete95_forest2water2/metadata.csv and the <NNN.Species>/*.jpg folders it "
           "names (also accepted: <root>/waterbirds/waterbird_complete95_forest2water2, <root>/waterbirds, "
           "<root>/Waterbirds)",
    opener=open_waterbirds,
    has_classes=True,
)


def register(registry: Registry[DatasetSpec]) -> None:
    registry.register(WATERBIRDS.name, WATERBIRDS)
