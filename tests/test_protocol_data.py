"""The protocols' data sets (issue 11): shipped class lists, ImageNet subsets, OpenOOD lists, variants,
Waterbirds; each on generated layouts, with the errors for missing or malformed data."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from protocolkit import (
    DTD,
    NINCO,
    OPENIMAGE_TEST,
    SSB,
    class_tree,
    fake_imagenet_val,
    openood_id_list,
    val_name,
    waterbirds,
    write,
    write_list,
)

from oodbench.data.base import open_dataset
from oodbench.data.lists import (
    IMAGENET10_MCM,
    IMAGENET20_MCM,
    IMAGENET100_MCM,
    IMAGENET_A_WNIDS,
    IMAGENET_R_WNIDS,
    NINCO_CLASSES,
    SSB_HARD_WNIDS,
    imagenet_classes,
    imagenet_wnids,
    read_list,
    read_table,
)
from oodbench.data.openood import ListInfo, manifest, read_image_list
from oodbench.data.spec import DATASETS, DataContext
from oodbench.errors import DataError

NEW = ("imagenet-openood", "imagenet10", "imagenet20", "imagenet100", "imagenet10-train", "imagenet-v2",
       "imagenet-a", "imagenet-r", "imagenet-sketch", "waterbirds", "textures-openood", "ssb-hard", "ninco",
       "openimage-o", "placesbg")


@pytest.fixture(scope="session")
def val_root(tmp_path_factory) -> Path:
    """A data root holding only <root>/imagenet/val: the 1000 wnid folders, one image each (read-only)."""
    root = tmp_path_factory.mktemp("imagenet_root")
    fake_imagenet_val(root / "imagenet" / "val")
    return root


def ctx(root: Path) -> DataContext:
    return DataContext(data_root=root)


def lists_dir(root: Path) -> Path:
    return root / "benchmark_imglist" / "imagenet"


# ---------------------------------------------------------------------------------------------------
# Shipped lists

def test_subset_files_are_mcm_wnids_sorted_with_their_names():
    wnids = set(imagenet_wnids())
    for filename, n in ((IMAGENET10_MCM, 10), (IMAGENET20_MCM, 20), (IMAGENET100_MCM, 100)):
        rows = read_table(filename)
        assert len(rows) == n and all(len(r) == 2 for r in rows)
        assert [r[0] for r in rows] == sorted({r[0] for r in rows}) and {r[0] for r in rows} <= wnids
        assert len({r[1] for r in rows}) == n
    ten, twenty = dict(read_table(IMAGENET10_MCM)), dict(read_table(IMAGENET20_MCM))
    assert ten["n02422699"] == "antelope" and ten["n01530575"] == "brambling bird"
    # MCM's 2023-04-13 fix: n01631663 is an eft and n02391049 a zebra (the paper's run had them swapped out)
    assert twenty["n01631663"] == "eft" and twenty["n02391049"] == "zebra"
    assert not set(ten) & set(twenty)
    assert set(twenty) & {r[0] for r in read_table(IMAGENET100_MCM)} == {"n01632458", "n04147183"}
    assert dict(read_table(IMAGENET100_MCM))["n02134084"] == "ice bear"  # raw Keras name, not "polar bear"


@pytest.mark.parametrize("filename", [IMAGENET_A_WNIDS, IMAGENET_R_WNIDS])
def test_imagenet_a_r_files_map_to_imagenet_1k(filename):
    rows = read_table(filename)
    wnids, names = imagenet_wnids(), imagenet_classes()
    assert len(rows) == 200 and [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert all(wnids[int(k)] == w and names[int(k)] == name for w, k, name in rows)


def test_ood_class_files_and_manifest():
    ssb = read_list(SSB_HARD_WNIDS)
    assert len(ssb) == len(set(ssb)) == 980 and not set(ssb) & set(imagenet_wnids())
    ninco = read_table(NINCO_CLASSES)
    assert len(ninco) == 64 and sum(int(n) for _, n in ninco) == 5_879
    m = manifest()
    assert {k: v.lines for k, v in m.items() if k.startswith("test_") and "imagenet_" not in k} == {
        "test_imagenet.txt": 45_000, "test_ssb_hard.txt": 49_000, "test_ninco.txt": 5_879,
        "test_inaturalist.txt": 10_000, "test_textures.txt": 5_160, "test_openimage_o.txt": 15_869}
    assert m["test_textures.txt"].prefix == "texture/" and all(len(v.sha256) == 64 for v in m.values())


def test_new_datasets_are_registered_and_describe_themselves():
    for name in NEW:
        spec = DATASETS.get(name)
        assert spec.layout.startswith("<root>/") and len(spec.source) > 20 and len(spec.description) > 40
    has_classes = {n for n in NEW if DATASETS.get(n).has_classes}
    assert has_classes == {"imagenet-openood", "imagenet10", "imagenet20", "imagenet100", "imagenet10-train",
                           "imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "waterbirds"}


# ---------------------------------------------------------------------------------------------------
# ImageNet subsets, read in place from the val tree

def test_subsets_read_their_wnid_folders_with_mcm_names(val_root):
    full = open_dataset("imagenet", ctx(val_root))
    for name, filename in (("imagenet10", IMAGENET10_MCM), ("imagenet20", IMAGENET20_MCM),
                           ("imagenet100", IMAGENET100_MCM)):
        ds = open_dataset(name, ctx(val_root))
        rows = read_table(filename)
        assert ds.class_names == [r[1] for r in rows] and list(ds.labels) == list(range(len(rows)))
        assert [f.parent.name for f in ds.files] == [r[0] for r in rows]
        assert ds.root == val_root / "imagenet" / "val" and ds.identity != full.identity
    ds = open_dataset("imagenet10", ctx(val_root))
    assert ds.class_names[ds.labels[[f.parent.name for f in ds.files].index("n02389026")]] == "horse"


def test_subset_from_mcm_copy_or_env_var(tmp_path, val_root, monkeypatch):
    ten = [r[0] for r in read_table(IMAGENET10_MCM)]
    class_tree(tmp_path / "ImageNet10" / "val", ten, per_class=2)        # MCM's copied folders only
    ds = open_dataset("imagenet10", ctx(tmp_path))
    assert len(ds) == 20 and ds.root == tmp_path / "ImageNet10" / "val"
    monkeypatch.setenv("OODBENCH_IMAGENET_DIR", str(val_root / "imagenet" / "val"))
    assert len(open_dataset("imagenet20", DataContext())) == 20


def test_subset_missing_wnid_folder_is_named(tmp_path, caplog):
    ten = [r[0] for r in read_table(IMAGENET10_MCM)]
    class_tree(tmp_path / "imagenet" / "val", ten[1:] + ["n01440764"])
    with pytest.raises(DataError, match=f"1 of the 10 class folders .* missing: {ten[0]}") as err:
        open_dataset("imagenet10", ctx(tmp_path))
    assert str(tmp_path / "imagenet" / "val") in str(err.value) and "imagenet10_mcm.tsv" in str(err.value)
    class_tree(tmp_path / "imagenet" / "val", ten[:1])
    with caplog.at_level(logging.WARNING):
        assert len(open_dataset("imagenet10", ctx(tmp_path))) == 10
    assert "published set has 500" in caplog.text


def test_imagenet10_train_and_its_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        open_dataset("imagenet10-train", ctx(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "imagenet" / "train") in msg and "OODBENCH_IMAGENET_TRAIN_DIR" in msg
    assert str(tmp_path / "ImageNet10" / "train") in msg and "ILSVRC2012_img_train.tar" in msg
    ten = [r[0] for r in read_table(IMAGENET10_MCM)]
    class_tree(tmp_path / "elsewhere", ten, per_class=3, ext=".JPEG")
    monkeypatch.setenv("OODBENCH_IMAGENET_TRAIN_DIR", str(tmp_path / "elsewhere"))
    ds = open_dataset("imagenet10-train", DataContext())
    assert len(ds) == 30 and ds.class_names[0] == "brambling bird"


# ---------------------------------------------------------------------------------------------------
# OpenOOD's ID list

def test_openood_id_list_maps_onto_the_class_tree_by_wnid(val_root, tmp_path, monkeypatch):
    labels = [0, 134, 999, 517]
    lst = openood_id_list(tmp_path / "lists", labels)
    monkeypatch.setenv("OODBENCH_OPENOOD_LISTS_DIR", str(tmp_path / "lists"))
    ds = open_dataset("imagenet-openood", ctx(val_root))
    wnids = imagenet_wnids()
    assert list(ds.labels) == labels and ds.class_names == imagenet_classes()
    assert [f.parent.name for f in ds.files] == [wnids[k] for k in labels]
    assert ds.identity["image_list"] == "test_imagenet.txt"
    first = ds.identity
    lst.write_text(lst.read_text() + f"imagenet_1k/val/{val_name(5)} 5\n")
    assert open_dataset("imagenet-openood", ctx(val_root)).identity != first


def test_openood_id_list_on_a_flat_val_folder(tmp_path):
    write(tmp_path / "images_largescale" / "imagenet_1k" / "val" / val_name(k) for k in (3, 7))
    openood_id_list(lists_dir(tmp_path), [3, 7])
    ds = open_dataset("imagenet-openood", ctx(tmp_path))
    assert list(ds.labels) == [3, 7] and [f.name for f in ds.files] == [val_name(3), val_name(7)]


def test_openood_id_list_errors(val_root, tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:  # no list
        open_dataset("imagenet-openood", ctx(val_root))
    msg = str(err.value)
    assert str(lists_dir(val_root) / "test_imagenet.txt") in msg and "benchmark_imglist.zip" in msg
    assert "45,000" in msg and "OODBENCH_OPENOOD_LISTS_DIR" in msg
    lists = tmp_path / "lists"
    monkeypatch.setenv("OODBENCH_OPENOOD_LISTS_DIR", str(lists))
    for body, problem in [
        (f"imagenet_1k/val/{val_name(0)} 0\nimagenet_1k/val/{val_name(1)}\n",
         "line 2: expected '<path> <label>'"),
        (f"imagenet_1k/val/{val_name(0)} 1000\n", "line 1: label 1000, expected an ImageNet-1K class index"),
        ("ninco/x.jpg -1\n", "line 1: the path 'ninco/x.jpg' does not start with 'imagenet_1k/val/'"),
        (f"imagenet_1k/val/{val_name(0)} 0\nimagenet_1k/val/nothere.JPEG 4\n", "1 of the 2 images listed"),
    ]:
        write_list(lists / "test_imagenet.txt", [body.rstrip("\n")])
        with pytest.raises(DataError, match=problem) as err:
            open_dataset("imagenet-openood", ctx(val_root))
        assert str(lists / "test_imagenet.txt") in str(err.value)


def test_list_with_other_count_or_hash_warns(tmp_path, caplog):
    path = write_list(tmp_path / "l.txt", ["ninco/a.jpg -1", "ninco/b.jpg -1"])
    with caplog.at_level(logging.WARNING):
        lst = read_image_list(path, ListInfo("test_ninco.txt", 2, "0" * 64, "ninco/"), ood=True)
    assert lst.entries == (("a.jpg", -1), ("b.jpg", -1)) and "may come from a newer OpenOOD" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        read_image_list(path, ListInfo("test_ninco.txt", 5, "0" * 64, "ninco/"), ood=True)
    assert "lists 2 images, OpenOOD v1.5's test_ninco.txt has 5" in caplog.text
    with pytest.raises(DataError, match="line 1: label 3, expected -1"):
        read_image_list(write_list(tmp_path / "m.txt", ["ninco/a.jpg 3"]),
                        ListInfo("test_ninco.txt", 1, "0" * 64, "ninco/"), ood=True)


# ---------------------------------------------------------------------------------------------------
# OpenOOD's OOD sets

def test_ssb_hard_through_its_list_or_its_wnid_folders(tmp_path):
    class_tree(tmp_path / "ssb_hard", SSB, per_class=2, ext=".JPEG")
    write(tmp_path / "ssb_hard" / SSB[0] / "unlisted.JPEG" for _ in [0])
    write_list(lists_dir(tmp_path) / "test_ssb_hard.txt", [f"ssb_hard/{w}/img_0.JPEG -1" for w in SSB])
    ds = open_dataset("ssb-hard", ctx(tmp_path))
    assert [f.relative_to(ds.root).as_posix() for f in ds.files] == [f"{w}/img_0.JPEG" for w in SSB]
    assert (ds.labels == -1).all() and ds.class_names is None
    (lists_dir(tmp_path) / "test_ssb_hard.txt").unlink()
    with pytest.raises(DataError, match="978 of the 980 class folders .*SSB-hard wnids.* missing"):
        open_dataset("ssb-hard", ctx(tmp_path))
    class_tree(tmp_path / "ssb_hard", read_list(SSB_HARD_WNIDS), ext=".JPEG")
    class_tree(tmp_path / "ssb_hard", ["n99999999"])  # not an SSB-hard class: ignored
    assert len(open_dataset("ssb-hard", ctx(tmp_path))) == 980 + 2 + 1


def test_ninco_official_names_match_openood_list(tmp_path):
    official = tmp_path / "NINCO" / "NINCO_OOD_classes"
    write(official / c / f for c, files in NINCO.items() for f in files)
    write_list(lists_dir(tmp_path) / "test_ninco.txt",
               [f"ninco/{c.replace(' ', '_')}/{f.replace(' ', '_')} -1"
                for c, files in NINCO.items() for f in files])
    ds = open_dataset("ninco", ctx(tmp_path))
    assert [f.relative_to(official).as_posix() for f in ds.files] == [
        f"{c}/{f}" for c, files in NINCO.items() for f in files]


def test_ninco_without_list_needs_exactly_its_64_classes(tmp_path, monkeypatch):
    root = tmp_path / "NINCO"
    classes = [r[0] for r in read_table(NINCO_CLASSES)]
    class_tree(root / "NINCO_OOD_classes", classes, per_class=1, ext=".png")
    assert len(open_dataset("ninco", ctx(tmp_path))) == 64
    class_tree(root / "NINCO_OOD_unit_tests", ["fractals"])
    monkeypatch.setenv("OODBENCH_NINCO_DIR", str(root))  # the archive's top folder: unit tests mixed in
    with pytest.raises(DataError, match="not NINCO's 64 OOD classes: unexpected NINCO_OOD_classes, "
                                        "NINCO_OOD_unit_tests"):
        open_dataset("ninco", DataContext())


def test_openimage_o_needs_its_list_and_reads_only_the_test_images(tmp_path):
    folder = tmp_path / "openimage_o" / "images"
    write(folder / f for f in (*OPENIMAGE_TEST, "val_only.jpg"))
    with pytest.raises(DataError, match="test_openimage_o.txt .*15,869 images.*not found") as err:
        open_dataset("openimage-o", ctx(tmp_path))
    assert str(lists_dir(tmp_path)) in str(err.value)
    write_list(lists_dir(tmp_path) / "test_openimage_o.txt",
               [f"openimage_o/images/{f} -1" for f in OPENIMAGE_TEST])
    ds = open_dataset("openimage-o", ctx(tmp_path))
    assert sorted(f.name for f in ds.files) == sorted(OPENIMAGE_TEST)


def test_textures_openood_reads_its_list_from_the_dtd_folder(tmp_path, monkeypatch):
    class_tree(tmp_path / "dtd" / "images", DTD, per_class=2)
    write_list(lists_dir(tmp_path) / "test_textures.txt",
               [f"texture/{c}/img_{j}.jpg -1" for c in DTD if c != "bubbly" for j in range(2)])
    assert len(open_dataset("textures", ctx(tmp_path))) == 6
    ds = open_dataset("textures-openood", ctx(tmp_path))
    assert len(ds) == 4 and {f.parent.name for f in ds.files} == {"banded", "zigzagged"}
    shutil.move(tmp_path / "dtd", tmp_path / "elsewhere")
    monkeypatch.setenv("OODBENCH_TEXTURES_DIR", str(tmp_path / "elsewhere" / "images"))
    assert len(open_dataset("textures-openood", ctx(tmp_path))) == 4
    (tmp_path / "elsewhere" / "images" / "banded" / "img_1.jpg").unlink()
    with pytest.raises(DataError, match="1 of the 4 images listed .* missing, e.g. banded/img_1.jpg"):
        open_dataset("textures-openood", ctx(tmp_path))


# ---------------------------------------------------------------------------------------------------
# Covariate-shifted variants

def test_imagenet_v2_labels_are_folder_numbers_not_string_order(tmp_path):
    folder = tmp_path / "imagenetv2-matched-frequency-format-val"
    class_tree(folder, [str(i) for i in range(1000)], ext=".jpeg")
    ds = open_dataset("imagenet-v2", ctx(tmp_path))
    by_folder = {f.parent.name: int(label) for f, label in zip(ds.files, ds.labels)}
    assert by_folder["10"] == 10 and by_folder["2"] == 2 and by_folder["999"] == 999
    assert ds.class_names == imagenet_classes()
    shutil.rmtree(folder / "500")
    (folder / "0500").mkdir()
    with pytest.raises(DataError, match="not the 1000 class indices 0..999: unexpected 0500; missing 500"):
        open_dataset("imagenet-v2", ctx(tmp_path))


@pytest.mark.parametrize(("name", "filename"),
                         [("imagenet-a", IMAGENET_A_WNIDS), ("imagenet-r", IMAGENET_R_WNIDS)])
def test_imagenet_a_r_have_200_classes_with_imagenet_names(tmp_path, name, filename):
    rows = read_table(filename)
    class_tree(tmp_path / name, [r[0] for r in rows], per_class=1)
    ds = open_dataset(name, ctx(tmp_path))
    assert ds.class_names == [r[2] for r in rows] and list(ds.labels) == list(range(200))
    assert [f.parent.name for f in ds.files] == [r[0] for r in rows]
    shutil.rmtree(tmp_path / name / rows[7][0])
    with pytest.raises(DataError, match=f"found 199 class folders, expected exactly 200 .*{rows[7][0]}"):
        open_dataset(name, ctx(tmp_path))


def test_imagenet_sketch_is_a_wnid_tree(val_root, monkeypatch):
    monkeypatch.setenv("OODBENCH_IMAGENET_SKETCH_DIR", str(val_root / "imagenet" / "val"))
    ds = open_dataset("imagenet-sketch", DataContext())
    assert len(ds) == 1000 and ds.class_names == imagenet_classes() and ds.labels[134] == 134


def test_missing_variant_lists_where_it_looked(tmp_path):
    with pytest.raises(DataError) as err:
        open_dataset("imagenet-a", ctx(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "imagenet-a") in msg and "imagenet-a.tar" in msg and "7,500 images" in msg
    assert "OODBENCH_IMAGENET_A_DIR" in msg and "Expected layout: <root>/imagenet-a/<wnid>/" in msg


# ---------------------------------------------------------------------------------------------------
# Waterbirds

def test_waterbirds_reads_the_val_split_with_y_labels(tmp_path):
    folder = waterbirds(tmp_path / "waterbird_complete95_forest2water2")
    ds = open_dataset("waterbirds", ctx(tmp_path))
    assert [f.relative_to(folder).as_posix() for f in ds.files] == [
        "001.Black_footed_Albatross/a2.jpg", "002.Laysan_Albatross/b1.jpg",
        "094.White_breasted_Nuthatch/c1.jpg", "094.White_breasted_Nuthatch/c2.jpg"]
    assert list(ds.labels) == [1, 1, 0, 0] and ds.class_names == ["landbird", "waterbird"]


def test_waterbirds_errors(tmp_path):
    folder = waterbirds(tmp_path / "waterbirds")
    (folder / "002.Laysan_Albatross" / "b1.jpg").unlink()
    with pytest.raises(DataError, match="1 of the 4 images of split 1 .* missing, e.g. 002.Laysan_"):
        open_dataset("waterbirds", ctx(tmp_path))
    (folder / "metadata.csv").write_text("img_id,img_filename,place\n1,a.jpg,0\n")
    with pytest.raises(DataError, match="lacks the column.* y, split"):
        open_dataset("waterbirds", ctx(tmp_path))
    (folder / "metadata.csv").unlink()
    with pytest.raises(DataError, match="no metadata.csv") as err:
        open_dataset("waterbirds", ctx(tmp_path))
    assert "waterbird_complete95_forest2water2.tar.gz" in str(err.value)


# ---------------------------------------------------------------------------------------------------
# An OOD set's classes are not ID labels

def test_runner_marks_every_image_of_an_ood_set_minus_one():
    import torch

    from oodbench.runner import as_ood
    from oodbench.scoring import EncodedSet

    enc = EncodedSet("imagenet-r", torch.zeros(3, 4), np.array([5, 0, 199]), {"name": "imagenet-r"}, False)
    out = as_ood(enc)
    assert list(out.labels) == [-1, -1, -1] and list(enc.labels) == [5, 0, 199]  # the cached copy keeps them
    assert as_ood(None) is None
