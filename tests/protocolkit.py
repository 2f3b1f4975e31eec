"""Generated layouts of the protocols' data sets (issue 11): tiny PNGs where the real sets keep images.

Every image is the same 8x8 PNG (decoders go by content, so ``.JPEG`` names are fine); only the folder
layouts, list files and metadata matter. :func:`build_protocol_root` writes one data root that every
bundled protocol suite can run on.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from oodbench.data.lists import (
    IMAGENET10_MCM,
    IMAGENET_A_WNIDS,
    IMAGENET_R_WNIDS,
    imagenet_wnids,
    read_table,
)


def _png(seed: int = 0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


def write(paths: Iterable[Path]) -> list[Path]:
    """Write the tiny PNG at every path (parents created)."""
    out = []
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(PNG)
        out.append(p)
    return out


def val_name(wnid_index: int, j: int = 0) -> str:
    """A val file name unique over the whole tree, as ILSVRC-2012's are."""
    return f"ILSVRC2012_val_{wnid_index * 10 + j + 1:08d}.JPEG"


def fake_imagenet_val(val: Path, per_class: int = 1) -> None:
    """The 1000 wnid folders with ``per_class`` images each."""
    write(val / w / val_name(i, j) for i, w in enumerate(imagenet_wnids()) for j in range(per_class))


def class_tree(folder: Path, classes: Sequence[str], per_class: int = 1, ext: str = ".jpg") -> None:
    write(folder / c / f"img_{j}{ext}" for c in classes for j in range(per_class))


def write_list(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def openood_id_list(lists: Path, labels: Sequence[int]) -> Path:
    """``test_imagenet.txt`` naming the first image of each of ``labels`` (flat OpenOOD paths)."""
    return write_list(lists / "test_imagenet.txt", [f"imagenet_1k/val/{val_name(k)} {k}" for k in labels])


SSB = ("n00470682", "n01492569")
NINCO = {"Caracal caracal caracal": ["a b.jpg", "c.png"], "high heels": ["h 1.jpeg"], "bagpipe": ["b.jpg"]}
DTD = ("banded", "bubbly", "zigzagged")          # bubbly is one of the 4 classes OpenOOD leaves out
OPENIMAGE_TEST = ("0a.jpg", "0b.jpg", "0c.jpg")
OPENIMAGE_VAL = ("9z.jpg",)                       # in the folder, not in the test list
WATERBIRDS = [  # img_id, img_filename, y, split, place
    (1, "001.Black_footed_Albatross/a1.jpg", 1, 0, 1), (2, "001.Black_footed_Albatross/a2.jpg", 1, 1, 0),
    (3, "001.Black_footed_Albatross/a3.jpg", 1, 2, 1), (4, "002.Laysan_Albatross/b1.jpg", 1, 1, 1),
    (5, "094.White_breasted_Nuthatch/c1.jpg", 0, 1, 0), (6, "094.White_breasted_Nuthatch/c2.jpg", 0, 1, 1),
    (7, "094.White_breasted_Nuthatch/c3.jpg", 0, 0, 0),
]


def waterbirds(folder: Path, rows: Sequence[tuple] = tuple(WATERBIRDS)) -> Path:
    write(folder / r[1] for r in rows)
    header = "img_id,img_filename,y,split,place,place_filename\n"
    (folder / "metadata.csv").write_text(header + "".join(
        f"{i},{f},{y},{s},{p},/o/ocean/00000{i}.jpg\n" for i, f, y, s, p in rows))
    return folder


def build_protocol_root(root: Path) -> Path:
    """One data root for every bundled protocol suite (ImageNet trees, OpenOOD lists, the OOD sets)."""
    fake_imagenet_val(root / "imagenet" / "val")
    class_tree(root / "imagenet" / "train", [r[0] for r in read_table(IMAGENET10_MCM)], per_class=2,
               ext=".JPEG")
    lists = root / "benchmark_imglist" / "imagenet"
    openood_id_list(lists, range(0, 1000, 50))
    # the MOS four (Textures = all of dtd/images)
    for sub in ("iNaturalist/images", "SUN/images", "Places/images"):
        write(root / sub / f"x{j}.jpg" for j in range(3))
    class_tree(root / "dtd" / "images", DTD, per_class=2)
    # OpenOOD's OOD sets through their lists
    class_tree(root / "ssb_hard", SSB, per_class=2, ext=".JPEG")
    write_list(lists / "test_ssb_hard.txt", [f"ssb_hard/{w}/img_{j}.JPEG -1" for w in SSB for j in range(2)])
    write(root / "NINCO" / "NINCO_OOD_classes" / c / f for c, files in NINCO.items() for f in files)
    write_list(lists / "test_ninco.txt", [f"ninco/{c.replace(' ', '_')}/{f.replace(' ', '_')} -1"
                                          for c, files in NINCO.items() for f in files])
    write(root / "openimage_o" / "images" / f for f in OPENIMAGE_TEST + OPENIMAGE_VAL)
    write_list(lists / "test_openimage_o.txt", [f"openimage_o/images/{f} -1" for f in OPENIMAGE_TEST])
    write_list(lists / "test_textures.txt", [f"texture/{c}/img_{j}.jpg -1" for c in DTD if c != "bubbly"
                                             for j in range(2)])
    # covariate-shifted ImageNet variants
    class_tree(root / "imagenetv2-matched-frequency-format-val", [str(i) for i in range(1000)], ext=".jpeg")
    class_tree(root / "imagenet-a", [r[0] for r in read_table(IMAGENET_A_WNIDS)])
    class_tree(root / "imagenet-r", [r[0] for r in read_table(IMAGENET_R_WNIDS)])
    class_tree(root / "imagenet-sketch" / "sketch", imagenet_wnids(), ext=".JPEG")
    # Waterbirds and its OOD backgrounds
    waterbirds(root / "waterbird_complete95_forest2water2")
    class_tree(root / "placesbg", ("land", "water"), per_class=2)
    return root
