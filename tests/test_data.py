"""Data sets: layouts, labels, class names, identities and the errors for missing or malformed data.

All offline: folders of tiny generated PNGs in tmp_path; torchvision sets from small fake files whose
md5 sums are patched into torchvision's classes. No test touches the network (sockets are blocked
where a download could be attempted).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.data import datasets  # noqa: F401  (registers the built-in data sets)
from oodbench.data.base import open_dataset
from oodbench.data.folders import OOD_FOLDER_SETS
from oodbench.data.lists import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    imagenet_classes,
    imagenet_wnids,
    read_list,
)
from oodbench.data.spec import DATASETS, DataContext
from oodbench.errors import DataError, OodbenchError
from oodbench.registry import NAME_RE


def _png_bytes(seed: int, size: int = 8) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png_bytes(0)


def write_pngs(folder: Path, n: int, prefix: str = "img", ext: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}_{i:03d}{ext}"
        p.write_bytes(_png_bytes(i) if i < 4 else PNG)
        paths.append(p)
    return paths


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def make_imagenet(val: Path, per_class: int = 1, wnids: list[str] | None = None) -> None:
    for wnid in wnids if wnids is not None else imagenet_wnids():
        d = val / wnid
        d.mkdir(parents=True)
        for i in range(per_class):
            (d / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(PNG)  # the decoder goes by content


def assert_clear(err: pytest.ExceptionInfo, path: Path) -> None:
    """A data error names the path it looked at and the layout it expected."""
    msg = str(err.value)
    assert str(path) in msg, msg
    assert "Expected layout" in msg, msg


# ---------------------------------------------------------------------------------------------------
# Shipped lists

def test_imagenet_lists_are_the_curated_clip_names_in_wnid_order():
    names, wnids = imagenet_classes(), imagenet_wnids()
    assert len(names) == 1000 and len(set(names)) == 998
    assert [i for i, n in enumerate(names) if n == "missile"] == [657, 744]
    assert [i for i, n in enumerate(names) if n == "sunglasses"] == [836, 837]
    assert names[0] == "tench" and names[134] == "crane bird" and names[517] == "construction crane"
    assert len(wnids) == 1000 and wnids == sorted(set(wnids))
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert wnids[0] == "n01440764" and wnids[134] == "n02012849" and wnids[-1] == "n15075141"


def test_cifar_lists():
    c10, c100 = read_list(CIFAR10_CLASSES), read_list(CIFAR100_CLASSES)
    assert len(c10) == 10 and c10[0] == "airplane" and c10[-1] == "truck"
    assert len(c100) == 100 and len(set(c100)) == 100
    assert "aquarium fish" in c100 and not any("_" in c for c in c100)


# ---------------------------------------------------------------------------------------------------
# Registry completeness

def test_every_registered_dataset_describes_itself():
    assert {"imagenet", "cifar10", "cifar100", "inaturalist", "sun", "places", "textures", "lsun",
            "imagenet-r", "svhn"} <= set(DATASETS.names())
    for name, spec in DATASETS.items():
        assert NAME_RE.match(name) and spec.name == name
        for text in (spec.description, spec.source, spec.layout):
            assert isinstance(text, str) and len(text) > 20, (name, text)
        assert spec.layout.startswith(("<root>/", "<toyworld dir>/")) or "PATH" in spec.layout, name
    for fs in OOD_FOLDER_SETS:
        assert "http" in fs.source and not DATASETS.get(fs.name).has_classes
    assert DATASETS.get("imagenet").has_classes and DATASETS.get("cifar10").has_classes
    assert not DATASETS.get("svhn").has_classes


def test_missing_data_root_says_how_to_give_one():
    with pytest.raises(DataError, match="--data-root"):
        open_dataset("inaturalist", DataContext())


# ---------------------------------------------------------------------------------------------------
# ImageNet

def test_imagenet_opens_with_labels_and_curated_names(tmp_path):
    val = tmp_path / "imagenet" / "val"
    make_imagenet(val)
    write_pngs(val / imagenet_wnids()[657], 2, prefix="extra")
    (val / imagenet_wnids()[3] / "notes.txt").write_text("not an image")
    ds = open_dataset("imagenet", DataContext(data_root=tmp_path))
    assert len(ds) == 1002 and ds.class_names == imagenet_classes()
    counts = np.bincount(ds.labels, minlength=1000)
    assert counts[657] == 3 and counts[0] == 1 and counts.sum() == 1002
    i = int(np.flatnonzero(ds.labels == 134)[0])
    assert ds.files[i].parent.name == "n02012849" and ds.class_names[134] == "crane bird"


@pytest.mark.parametrize("sub", ["ILSVRC2012/val", "ImageNet/val"])
def test_imagenet_other_root_subpaths(tmp_path, sub):
    make_imagenet(tmp_path / sub)
    assert len(open_dataset("imagenet", DataContext(data_root=tmp_path))) == 1000


def test_imagenet_env_var_points_at_val(tmp_path, monkeypatch):
    make_imagenet(tmp_path / "anywhere")
    monkeypatch.setenv("OODBENCH_IMAGENET_DIR", str(tmp_path / "anywhere"))
    assert len(open_dataset("imagenet", DataContext())) == 1000


def test_imagenet_missing_folder(tmp_path):
    with pytest.raises(DataError) as err:
        open_dataset("imagenet", DataContext(data_root=tmp_path))
    assert_clear(err, tmp_path / "imagenet" / "val")
    assert "image-net.org" in str(err.value) and "OODBENCH_IMAGENET_DIR" in str(err.value)


def test_imagenet_wrong_number_of_class_folders(tmp_path):
    val = tmp_path / "imagenet" / "val"
    make_imagenet(val, wnids=imagenet_wnids()[:999])
    with pytest.raises(DataError, match="999 class folders, expected exactly 1000") as err:
        open_dataset("imagenet", DataContext(data_root=tmp_path))
    assert_clear(err, val)


def test_imagenet_wrong_folder_names(tmp_path):
    val = tmp_path / "imagenet" / "val"
    make_imagenet(val, wnids=imagenet_wnids()[:999] + ["n99999999"])
    with pytest.raises(DataError, match="unexpected n99999999; missing n15075141") as err:
        open_dataset("imagenet", DataContext(data_root=tmp_path))
    assert_clear(err, val)


def test_imagenet_empty_class_folder(tmp_path):
    val = tmp_path / "imagenet" / "val"
    make_imagenet(val)
    for p in (val / "n01443537").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="1 class folder.*no images: n01443537") as err:
        open_dataset("imagenet", DataContext(data_root=tmp_path))
    assert_clear(err, val)


def test_imagenet_flat_val_folder_is_explained(tmp_path):
    val = tmp_path / "imagenet" / "val"
    write_pngs(val, 3, ext=".JPEG")
    with pytest.raises(DataError, match="unsorted val folder") as err:
        open_dataset("imagenet", DataContext(data_root=tmp_path))
    assert_clear(err, val)


# ---------------------------------------------------------------------------------------------------
# Folder OOD sets

def test_inaturalist_flat_layout(tmp_path):
    write_pngs(tmp_path / "iNaturalist" / "images", 5, ext=".jpg")
    ds = open_dataset("inaturalist", DataContext(data_root=tmp_path))
    assert len(ds) == 5 and ds.class_names is None and (ds.labels == -1).all()
    assert ds.root == tmp_path / "iNaturalist" / "images"


def test_textures_read_recursively_skipping_non_images(tmp_path):
    images = tmp_path / "dtd" / "images"
    write_pngs(images / "banded", 3, ext=".jpg")
    write_pngs(images / "waffled", 2, ext=".jpg")
    (images / "waffled" / ".directory").write_text("[Dolphin]\n")
    (images / "waffled" / ".hidden.jpg").write_bytes(PNG)
    (tmp_path / "dtd" / "labels").mkdir()
    (tmp_path / "dtd" / "labels" / "train1.txt").write_text("banded/img_000.jpg\n")
    ds = open_dataset("textures", DataContext(data_root=tmp_path))
    assert len(ds) == 5 and (ds.labels == -1).all()
    assert {f.parent.name for f in ds.files} == {"banded", "waffled"}


# imagenet-r has classes now (ID and OOD): tests/test_protocol_data.py checks its layout.
@pytest.mark.parametrize(("name", "sub"), [("lsun", "LSUN/test"), ("placesbg", "placesbg/land"),
                                           ("sun", "SUN/images"), ("places", "ImageNet_OOD_dataset/Places")])
def test_ood_folder_layouts(tmp_path, name, sub):
    write_pngs(tmp_path / sub, 4, ext=".jpg")
    ds = open_dataset(name, DataContext(data_root=tmp_path))
    assert len(ds) == 4 and (ds.labels == -1).all() and ds.class_names is None


def test_ood_count_differing_from_the_published_set_warns(tmp_path, caplog):
    write_pngs(tmp_path / "SUN" / "images", 3, ext=".jpg")
    with caplog.at_level(logging.WARNING):
        open_dataset("sun", DataContext(data_root=tmp_path))
    assert "found 3 images" in caplog.text and "10000" in caplog.text


def test_ood_missing_folder_lists_where_it_looked(tmp_path):
    with pytest.raises(DataError) as err:
        open_dataset("inaturalist", DataContext(data_root=tmp_path))
    assert_clear(err, tmp_path / "iNaturalist" / "images")
    msg = str(err.value)
    assert str(tmp_path / "ImageNet_OOD_dataset" / "iNaturalist") in msg
    assert "iNaturalist.tar.gz" in msg and "OODBENCH_INATURALIST_DIR" in msg


def test_ood_empty_folder(tmp_path):
    folder = tmp_path / "LSUN" / "test"
    folder.mkdir(parents=True)
    (folder / "README.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images found") as err:
        open_dataset("lsun", DataContext(data_root=tmp_path))
    assert_clear(err, folder)


def test_env_var_for_missing_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_IMAGENET_R_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="OODBENCH_IMAGENET_R_DIR") as err:
        open_dataset("imagenet-r", DataContext())
    assert_clear(err, tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------
# folder:PATH

def test_folder_id_with_class_subfolders(tmp_path):
    write_pngs(tmp_path / "id" / "red_square", 3)
    write_pngs(tmp_path / "id" / "blue_circle", 2)
    ds = open_dataset(f"folder:{tmp_path / 'id'}", DataContext())
    assert ds.class_names == ["blue circle", "red square"]
    assert list(ds.labels) == [0, 0, 1, 1, 1]


def test_folder_ood_flat(tmp_path):
    write_pngs(tmp_path / "ood", 4)
    ds = open_dataset(f"folder:{tmp_path / 'ood'}", DataContext())
    assert len(ds) == 4 and ds.class_names is None and (ds.labels == -1).all()


def test_folder_with_top_level_images_is_ood_read_recursively(tmp_path):
    write_pngs(tmp_path / "ood" / "a" / "b", 4)
    write_pngs(tmp_path / "ood", 1, prefix="top")
    ds = open_dataset(f"folder:{tmp_path / 'ood'}", DataContext())
    assert len(ds) == 5 and ds.class_names is None and (ds.labels == -1).all()


def test_folder_errors(tmp_path):
    with pytest.raises(OodbenchError, match="needs a path"):
        open_dataset("folder:", DataContext())
    with pytest.raises(DataError) as err:
        open_dataset(f"folder:{tmp_path / 'missing'}", DataContext())
    assert_clear(err, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found") as err:
        open_dataset(f"folder:{tmp_path / 'empty'}", DataContext())
    assert_clear(err, tmp_path / "empty")


def test_corrupt_image_yields_an_item_error_naming_the_file(tmp_path):
    write_pngs(tmp_path / "ood", 2)
    bad = tmp_path / "ood" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    ds = open_dataset(f"folder:{tmp_path / 'ood'}", DataContext()).with_transform(to_tensor)
    errors = [ds[i][2] for i in range(len(ds))]
    assert errors.count("") == 2
    assert any(str(bad) in e for e in errors)


# ---------------------------------------------------------------------------------------------------
# Identity (feature-cache key)

def test_identity_stable_changes_with_files_and_ignores_location(tmp_path):
    write_pngs(tmp_path / "a" / "iNaturalist" / "images", 3, ext=".jpg")
    ctx = DataContext(data_root=tmp_path / "a")
    first = open_dataset("inaturalist", ctx).identity
    assert open_dataset("inaturalist", ctx).identity == first
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert open_dataset("inaturalist", DataContext(data_root=tmp_path / "b")).identity == first
    (tmp_path / "a" / "iNaturalist" / "images" / "new.jpg").write_bytes(PNG)
    changed = open_dataset("inaturalist", ctx).identity
    assert changed != first and changed["n"] == 4


def _ppm(value: int, size: int = 8) -> bytes:
    """A binary PPM of one colour: same size in bytes whatever the colour."""
    return f"P6 {size} {size} 255\n".encode() + bytes([value, 255 - value, 7]) * size * size


def test_a_file_replaced_in_place_at_the_same_size_changes_the_identity(tmp_path):
    folder = tmp_path / "ood"
    folder.mkdir()
    for i in range(3):
        (folder / f"img_{i}.ppm").write_bytes(_ppm(10 * i))
    first = open_dataset(f"folder:{folder}", DataContext()).identity
    target = folder / "img_1.ppm"
    before = target.stat()
    target.write_bytes(_ppm(200))  # re-exported: other pixels, same byte size
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1))  # even 1 ns later is seen
    assert target.stat().st_size == before.st_size
    second = open_dataset(f"folder:{folder}", DataContext()).identity
    assert second["files_sha256"] != first["files_sha256"]
    assert second["covers"] == "relative path, size, mtime_ns"


def test_verify_content_covers_what_a_restored_modification_time_hides(tmp_path):
    folder = tmp_path / "ood"
    folder.mkdir()
    for i in range(3):
        (folder / f"img_{i}.ppm").write_bytes(_ppm(10 * i))
    first = open_dataset(f"folder:{folder}", DataContext())
    first.add_content_hash()
    target = folder / "img_1.ppm"
    before = target.stat()
    target.write_bytes(_ppm(200))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or a restore can leave it
    second = open_dataset(f"folder:{folder}", DataContext())
    assert second.identity["files_sha256"] == first.identity["files_sha256"]  # paths, sizes, times: equal
    second.add_content_hash()
    assert second.identity["content_sha256"] != first.identity["content_sha256"]
    assert second.identity["covers"] == "relative path, size, mtime_ns, content"


# ---------------------------------------------------------------------------------------------------
# Decoding: every mode PIL opens, as the picture it shows

def _expected_modes() -> list[tuple[str, str, Image.Image, np.ndarray]]:
    """(mode, file suffix, image, expected RGB of its 4 pixels)."""
    grey = np.array([[0, 64, 128, 255]], np.uint8)
    rgb_of = np.repeat(grey[..., None], 3, axis=2)
    p = Image.fromarray(np.array([[0, 1, 2, 3]], np.uint8), "L").convert("P")
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    rgba = np.array([[[255, 0, 0, 0], [0, 255, 0, 128], [0, 0, 255, 255], [9, 8, 7, 1]]], np.uint8)
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [10, 20, 30, 0]]], np.uint8)
    la = np.array([[[0, 0], [64, 255], [128, 7], [255, 100]]], np.uint8)
    i16 = np.array([[0, 257 * 64, 257 * 128, 65535]], np.uint16)  # a 16-bit PNG: saturated white before
    i32 = np.array([[0, 257 * 64, 257 * 128, 65535]], np.int32)
    i32_wide = np.array([[-1000, 0, 1000, 3000]], np.int32)  # outside 16 bits: its own range
    f01 = np.array([[0.0, 64 / 255, 128 / 255, 1.0]], np.float32)
    f_wide = np.array([[-2.0, -1.0, 0.0, 2.0]], np.float32)
    return [
        ("1", ".png", Image.fromarray(np.array([[0, 1, 0, 1]], bool)),
         np.repeat(np.array([[0, 255, 0, 255]], np.uint8)[..., None], 3, axis=2)),
        ("L", ".png", Image.fromarray(grey, "L"), rgb_of),
        ("P", ".png", p, np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)),
        ("RGBA", ".png", Image.fromarray(rgba, "RGBA"), rgba[..., :3]),
        ("CMYK", ".tiff", Image.fromarray(cmyk, "CMYK"), 255 - cmyk[..., :3]),
        ("LA", ".png", Image.fromarray(la, "LA"), np.repeat(la[..., :1], 3, axis=2)),
        ("I;16", ".png", Image.fromarray(i16), rgb_of),
        ("I", ".tiff", Image.fromarray(i32, "I"), rgb_of),
        ("I", ".tiff", Image.fromarray(i32_wide, "I"),
         np.repeat(np.array([[0, 64, 128, 255]], np.uint8)[..., None], 3, axis=2)),
        ("F", ".tiff", Image.fromarray(f01, "F"), rgb_of),
        ("F", ".tiff", Image.fromarray(f_wide, "F"),
         np.repeat(np.array([[0, 64, 128, 255]], np.uint8)[..., None], 3, axis=2)),
    ]


@pytest.mark.parametrize("mode, suffix, image, expected", _expected_modes(),
                         ids=[f"{m}{s}-{i}" for i, (m, s, _, _) in enumerate(_expected_modes())])
def test_every_mode_decodes_to_the_rgb_it_shows(tmp_path, mode, suffix, image, expected):
    from oodbench.data.base import FileImageSet

    path = tmp_path / f"img{suffix}"
    image.save(path)
    ds = FileImageSet("modes", tmp_path, [path]).with_transform(
        lambda im: torch.from_numpy(np.asarray(im).copy()))
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is in that mode
    got, _, error = ds[0]
    assert error == ""
    np.testing.assert_array_equal(got.numpy(), expected)


def test_a_decompression_bomb_names_the_file_and_how_to_allow_it(tmp_path, monkeypatch):
    from oodbench.data.base import FileImageSet

    path = write_pngs(tmp_path / "ood", 1)[0]  # 8 x 8 = 64 pixels
    monkeypatch.setenv("OODBENCH_MAX_IMAGE_PIXELS", "20")  # PIL refuses beyond twice the limit
    ds = FileImageSet("bombs", tmp_path / "ood", [path]).with_transform(to_tensor)
    error = ds[0][2]
    assert str(path) in error and "decompression bomb" in error and "OODBENCH_MAX_IMAGE_PIXELS=0" in error
    monkeypatch.setenv("OODBENCH_MAX_IMAGE_PIXELS", "0")
    assert FileImageSet("bombs", tmp_path / "ood", [path]).with_transform(to_tensor)[0][2] == ""
    monkeypatch.setenv("OODBENCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(OodbenchError, match="OODBENCH_MAX_IMAGE_PIXELS is 'lots'"):
        FileImageSet("bombs", tmp_path / "ood", [path])


# ---------------------------------------------------------------------------------------------------
# Folders that would otherwise be read only in part

def test_a_name_that_is_not_utf8_is_named(tmp_path):
    folder = tmp_path / "ood"
    write_pngs(folder, 2)
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as fh:  # a Latin-1 name
        fh.write(PNG)
    with pytest.raises(DataError, match=r"caf\\xe9.png.*is not valid UTF-8.*convmv"):
        open_dataset(f"folder:{folder}", DataContext())


@pytest.fixture
def unreadable(monkeypatch):
    """Make folders unreadable for this process (tests run as root, where chmod 000 changes nothing)."""
    blocked: set[Path] = set()
    real_scandir, real_listdir = os.scandir, os.listdir

    def guard(real):
        def wrapped(path="."):
            if Path(os.fsdecode(path)).resolve() in blocked:
                raise PermissionError(13, "Permission denied", os.fsdecode(path))
            return real(path)
        return wrapped

    monkeypatch.setattr(os, "scandir", guard(real_scandir))
    monkeypatch.setattr(os, "listdir", guard(real_listdir))
    return lambda path: blocked.add(Path(path).resolve())


def test_an_unreadable_class_folder_is_an_error_not_a_missing_class(tmp_path, unreadable):
    for name in ("cat", "dog"):
        write_pngs(tmp_path / "id" / name, 2)
    unreadable(tmp_path / "id" / "dog")  # before: dropped silently; ID accuracy fell
    with pytest.raises(DataError, match=r"cannot read the folder .*dog \(Permission denied\)"):
        open_dataset(f"folder:{tmp_path / 'id'}", DataContext())


def test_an_unreadable_ood_folder_or_subfolder_is_an_error(tmp_path, unreadable):
    write_pngs(tmp_path / "ood" / "a", 2)
    write_pngs(tmp_path / "ood" / "b", 2)
    unreadable(tmp_path / "ood" / "b")
    with pytest.raises(DataError, match="Permission denied"):
        open_dataset(f"folder:{tmp_path / 'ood'}", DataContext())
    unreadable(tmp_path / "ood")
    with pytest.raises(DataError, match="Permission denied"):
        open_dataset(f"folder:{tmp_path / 'ood'}", DataContext())


def test_an_unreadable_image_is_named_before_encoding(tmp_path, monkeypatch):
    paths = write_pngs(tmp_path / "ood", 3)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != paths[1] and real(p, mode, **kw))
    with pytest.raises(DataError, match=r"1 image\(s\) .* cannot be read by you, e.g. .*img_001.png"):
        open_dataset(f"folder:{tmp_path / 'ood'}", DataContext())


def test_a_class_folder_without_images_is_an_error(tmp_path):
    write_pngs(tmp_path / "id" / "cat", 2)
    (tmp_path / "id" / "dog").mkdir()
    (tmp_path / "id" / "dog" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"1 class folder\(s\) .* hold no images \(dog\)"):
        open_dataset(f"folder:{tmp_path / 'id'}", DataContext())


# ---------------------------------------------------------------------------------------------------
# torchvision sets (CIFAR, SVHN)

def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_cifar(monkeypatch, root: Path, cls_name: str, classes: list[str], n: int = 6) -> None:
    """Write a tiny CIFAR test batch + meta file and make torchvision accept their md5 sums."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    label_key = "labels" if cls_name == "CIFAR10" else "fine_labels"
    batch = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
             label_key: [i % len(classes) for i in range(n)]}
    test_name = cls.test_list[0][0]
    (folder / test_name).write_bytes(pickle.dumps(batch))
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({cls.meta["key"]: classes}))
    monkeypatch.setattr(cls, "train_list", [])
    monkeypatch.setattr(cls, "test_list", [[test_name, _md5(folder / test_name)]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / cls.meta["filename"])})


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_torchvision_sets_without_download_fail_clearly(tmp_path, no_network, name):
    with pytest.raises(DataError) as err:
        open_dataset(name, DataContext(data_root=tmp_path, download=False))
    msg = str(err.value)
    assert "--download" in msg and "Expected layout" in msg and str(tmp_path / name) in msg
    assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "download_url", offline)
    import torchvision.datasets.cifar as tvc

    monkeypatch.setattr(tvc, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="downloading into .* failed"):
        open_dataset("cifar10", DataContext(data_root=tmp_path, download=True))


def test_cifar10_from_files(tmp_path, monkeypatch, no_network):
    classes = list(read_list(CIFAR10_CLASSES))
    fake_cifar(monkeypatch, tmp_path / "cifar10", "CIFAR10", classes, n=6)
    ds = open_dataset("cifar10", DataContext(data_root=tmp_path))
    assert len(ds) == 6 and ds.class_names == classes and list(ds.labels) == [0, 1, 2, 3, 4, 5]
    ident = ds.identity
    assert ident["name"] == "cifar10" and ident["split"] == "test" and ident["n"] == 6
    assert set(ident["files"]) == {"cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"}
    assert all(f["md5"] and f["size"] > 0 for f in ident["files"].values())
    image, label, error = ds.with_transform(to_tensor)[5]
    assert image.shape == (3, 8, 8) and label == 5 and error == ""
    assert open_dataset("cifar10", DataContext(data_root=tmp_path)).identity == ident


def test_cifar100_names_use_spaces(tmp_path, monkeypatch):
    raw = [c.replace(" ", "_") for c in read_list(CIFAR100_CLASSES)]
    fake_cifar(monkeypatch, tmp_path / "cifar100", "CIFAR100", raw, n=3)
    ds = open_dataset("cifar100", DataContext(data_root=tmp_path))
    assert ds.class_names[1] == "aquarium fish" and len(ds.class_names) == 100


def test_svhn_is_ood_without_labels(tmp_path, monkeypatch, no_network):
    import scipy.io
    import torchvision.datasets as tvd

    folder = tmp_path / "svhn"
    folder.mkdir()
    x = np.random.default_rng(0).integers(0, 255, (32, 32, 3, 4), dtype=np.uint8)
    scipy.io.savemat(folder / "test_32x32.mat", {"X": x, "y": np.array([[1], [10], [3], [4]])})
    url, filename, _ = tvd.SVHN.split_list["test"]
    monkeypatch.setitem(tvd.SVHN.split_list, "test", [url, filename, _md5(folder / filename)])
    ds = open_dataset("svhn", DataContext(data_root=tmp_path))
    assert len(ds) == 4 and (ds.labels == -1).all() and ds.class_names is None
    assert ds.identity["files"]["test_32x32.mat"]["size"] > 0
    assert ds.with_transform(to_tensor)[0][0].shape == (3, 8, 8)
