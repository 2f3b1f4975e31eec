"""toyworld: generator determinism, caption grammar, generated folders, lexicon, bundled tiny CLIP."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oodbench.data.base import open_dataset
from oodbench.data.spec import DATASETS, DataContext
from oodbench.toyworld import generate
from oodbench.toyworld.captions import all_captions, full_caption, unique_batch_captions
from oodbench.toyworld.datasets import SPLITS, toyworld_dir
from oodbench.toyworld.generate import MARKER, SplitSpec, ensure_split, split_items
from oodbench.toyworld.render import object_mask, render_scene
from oodbench.toyworld.scene import sample_object_scene, sample_texture_scene, scene_rng
from oodbench.toyworld.world import load_world

WORLD = load_world()
MINI = {s.name: s for s in SPLITS}


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    """A data root shared by the tests of this module (mini splits generate once)."""
    return tmp_path_factory.mktemp("toyroot")


# ----------------------------------------------------------------------------------------- the world
def test_vocabulary_shape():
    assert len(WORLD.object_names) == 30
    assert len(WORLD.id_classes) == 10 and set(WORLD.id_classes) <= set(WORLD.object_names)
    assert list(WORLD.id_classes) == sorted(WORLD.id_classes)  # folder order = class order
    assert len(WORLD.near_classes) == 20 and not set(WORLD.near_classes) & set(WORLD.id_classes)
    assert "plain" not in WORLD.scene_textures and set(WORLD.scene_textures) <= set(WORLD.texture_words)


@pytest.mark.parametrize("name", WORLD.object_names)
def test_every_object_draws_a_proper_shape(name):
    scene = sample_object_scene(WORLD, scene_rng(0, "shape-test", 0), name)
    scene = scene.__class__(**{**scene.__dict__, "size": "large", "scale": 0.4, "center": (0.0, 0.0),
                               "rotation": 0.0})
    coverage = np.asarray(object_mask(WORLD, scene), dtype=np.float64).mean() / 255
    assert 0.05 < coverage < 0.7, f"{name} covers {coverage:.2f} of the image"


def test_objects_differ_from_each_other():
    masks = {}
    for name in WORLD.object_names:
        s = sample_object_scene(WORLD, scene_rng(0, "shape-test", 0), name)
        s = s.__class__(**{**s.__dict__, "scale": 0.4, "center": (0.0, 0.0), "rotation": 0.0})
        masks[name] = np.asarray(object_mask(WORLD, s), dtype=np.float64) / 255
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            iou = np.minimum(masks[a], masks[b]).sum() / np.maximum(masks[a], masks[b]).sum()
            assert iou < 0.93, f"{a} and {b} look alike (IoU {iou:.2f})"


# ----------------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_and_captions():
    def make(seed: int) -> tuple[list[bytes], list[str]]:
        images, caps = [], []
        for i in range(12):
            rng = scene_rng(seed, "det", i)
            scene = sample_texture_scene(WORLD, rng) if i % 4 == 3 else \
                sample_object_scene(WORLD, rng, WORLD.object_names[i])
            images.append(png_bytes(render_scene(WORLD, scene)))
            caps.append(full_caption(WORLD, scene))
        return images, caps

    a, b, c = make(7), make(7), make(8)
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]
    assert len(set(a[0])) == 12 and len(set(a[1])) == 12  # items differ from each other


def test_item_does_not_depend_on_order():
    split = SplitSpec("det", "near", 3)
    items = split_items(WORLD, split)
    again = split_items(WORLD, split)
    assert [p for p, _ in items] == [p for p, _ in again]
    assert items[5][1] == again[5][1]
    assert items[5][1] != items[6][1]


def test_images_have_the_world_size_and_colour():
    scene = sample_object_scene(WORLD, scene_rng(0, "colour", 0), "square")
    scene = scene.__class__(**{**scene.__dict__, "scale": 0.4, "center": (0.0, 0.0), "rotation": 0.0})
    image = render_scene(WORLD, scene)
    assert image.size == (WORLD.image_size, WORLD.image_size) and image.mode == "RGB"
    centre = np.asarray(image)[WORLD.image_size // 2, WORLD.image_size // 2]
    assert np.abs(centre.astype(int) - np.asarray(scene.rgb)).max() <= 2


# ----------------------------------------------------------------------------------------- captions
def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


OBJECT_CAPTION = re.compile(
    rf"^a photo of a (?:(?P<size>{_alt(WORLD.sizes)}) )?(?:(?P<colour>{_alt(WORLD.colours)}) )?"
    rf"(?P<object>{_alt(WORLD.object_names)})"
    rf"(?: (?P<position>{_alt(WORLD.position_phrases.values())}))?"
    rf"(?: on a (?P<bg>{_alt(WORLD.backgrounds)}) background)?$")


def test_caption_grammar():
    for i, name in enumerate(WORLD.object_names):
        scene = sample_object_scene(WORLD, scene_rng(1, "caps", i), name)
        caps = all_captions(WORLD, scene)
        assert caps[0] == f"a photo of a {name}"  # the benchmark prompt, word for word
        assert len(caps) == len(set(caps)) == len(WORLD.object_captions)
        full = full_caption(WORLD, scene)
        assert full == f"a photo of a {scene.size} {scene.colour} {name} on a {scene.texture} background"
        for cap in caps:
            m = OBJECT_CAPTION.match(cap)
            assert m and m["object"] == name, cap
    tex = sample_texture_scene(WORLD, scene_rng(1, "caps", 99), texture="dotted")
    assert all_captions(WORLD, tex) == ["a photo of a dotted texture",
                                       f"a photo of a {tex.colour} dotted texture"]


def test_batch_captions_are_unique():
    rng = np.random.default_rng(0)
    scenes = [sample_object_scene(WORLD, scene_rng(0, "batch", i), "star") for i in range(40)]
    scenes += [sample_texture_scene(WORLD, scene_rng(0, "batch", 100 + i), "striped") for i in range(40)]
    caps = unique_batch_captions(WORLD, scenes, rng)
    kept = [c for c in caps if c is not None]
    assert len(kept) == len(set(kept))
    assert "a photo of a star" in kept and "a photo of a striped texture" in kept
    # only 1 + 8 captions exist for striped textures: the rest must be dropped, not repeated
    assert sum(c is not None for c in caps[40:]) <= 1 + len(WORLD.colours)


# ----------------------------------------------------------------------------------------- data sets
def test_registered_names():
    for name in ("toyworld", "toyworld-near", "toyworld-far", "toyworld-mini", "toyworld-mini-near",
                 "toyworld-mini-far"):
        assert name in DATASETS
    assert DATASETS.get("toyworld").has_classes and not DATASETS.get("toyworld-far").has_classes


def test_mini_splits_open_through_the_folder_code(toy_root):
    ctx = DataContext(data_root=toy_root)
    id_set = open_dataset("toyworld-mini", ctx)
    assert id_set.class_names == list(WORLD.id_classes)
    assert len(id_set) == 200 and np.bincount(id_set.labels).tolist() == [20] * 10
    assert id_set.root == toy_root / "toyworld" / "toyworld-mini"
    near = open_dataset("toyworld-mini-near", ctx)
    far = open_dataset("toyworld-mini-far", ctx)
    assert len(near) == 200 and len(far) == 6 * 34
    assert (near.labels == -1).all() and near.class_names is None
    stems = {p.name.rsplit("_", 1)[0].replace("_", " ") for p in near.files}
    assert stems == set(WORLD.near_classes)
    with Image.open(far.files[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    rows = list(csv.DictReader((toy_root / "toyworld" / "toyworld-mini-far" / "captions.csv").open()))
    assert len(rows) == len(far) and rows[0]["caption"].endswith("texture")
    # labels match the folders, and the images match what the generator renders for that item
    first = split_items(WORLD, MINI["toyworld-mini"])[0]
    with Image.open(id_set.files[0]) as im:
        assert np.array_equal(np.asarray(im), np.asarray(render_scene(WORLD, first[1])))


def test_generation_is_skipped_when_present(toy_root, monkeypatch):
    ctx = DataContext(data_root=toy_root)
    open_dataset("toyworld-mini-far", ctx)
    folder = toy_root / "toyworld" / "toyworld-mini-far"
    before = folder.stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("regenerated a current split")

    monkeypatch.setattr(generate, "write_split", boom)
    assert len(open_dataset("toyworld-mini-far", ctx)) == 204
    assert folder.stat().st_mtime_ns == before


def test_stale_split_is_regenerated(tmp_path):
    spec = SplitSpec("tiny-far", "far", 2)
    folder = ensure_split(WORLD, spec, tmp_path)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["split"]["seed"] == 0 and marker["generator_version"] >= 1 and marker["count"] == 12
    first = hashlib.sha256((folder / "striped_00000.png").read_bytes()).hexdigest()
    # same name, other seed: the folder no longer matches and is rebuilt
    folder = ensure_split(WORLD, SplitSpec("tiny-far", "far", 2, seed=1), tmp_path)
    assert json.loads((folder / MARKER).read_text())["split"]["seed"] == 1
    assert hashlib.sha256((folder / "striped_00000.png").read_bytes()).hexdigest() != first
    # a changed generator version (recorded in the marker) also triggers regeneration
    marker = json.loads((folder / MARKER).read_text())
    marker["generator_version"] = -1
    (folder / MARKER).write_text(json.dumps(marker))
    assert not generate.is_current(WORLD, SplitSpec("tiny-far", "far", 2, seed=1), folder)
    ensure_split(WORLD, SplitSpec("tiny-far", "far", 2, seed=1), tmp_path)
    assert generate.is_current(WORLD, SplitSpec("tiny-far", "far", 2, seed=1), folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-far"]  # no temporary folders left


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_render = generate.render_scene

    def flaky(world, scene):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_render(world, scene)

    monkeypatch.setattr(generate, "render_scene", flaky)
    with pytest.raises(KeyboardInterrupt):
        ensure_split(WORLD, SplitSpec("tiny-id", "id", 1), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_a_killed_generation_are_swept(tmp_path):
    import subprocess
    import sys

    from oodbench.files import owner_tag

    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True).stdout)  # a process that is gone now
    host = owner_tag().split("@", 1)[1]
    left = [tmp_path / f".tiny-far.tmp-pid{pid}@{host}-abcd1234", tmp_path / f".tiny-far.old-pid{pid}@{host}-x"]
    for d in left:
        (d / "images").mkdir(parents=True)
    ensure_split(WORLD, SplitSpec("tiny-far", "far", 1), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-far"]


def test_where_splits_go(tmp_path, monkeypatch):
    monkeypatch.delenv("OODBENCH_TOYWORLD_DIR", raising=False)
    assert toyworld_dir(DataContext(data_root=tmp_path / "root")) == tmp_path / "root" / "toyworld"
    assert toyworld_dir(DataContext(cache_dir=tmp_path / "c")) == tmp_path / "c" / "data" / "toyworld"
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "env-cache"))
    assert toyworld_dir(DataContext()) == tmp_path / "env-cache" / "data" / "toyworld"
    monkeypatch.setenv("OODBENCH_TOYWORLD_DIR", str(tmp_path / "forced"))
    assert toyworld_dir(DataContext(data_root=tmp_path / "root")) == tmp_path / "forced"


# ----------------------------------------------------------------------------------------- lexicon
def test_lexicon_is_the_whole_vocabulary():
    from oodbench.lexicon import LEXICONS, load_lexicon

    assert "toyworld" in LEXICONS
    lex = load_lexicon("toyworld")
    assert set(WORLD.id_classes) <= set(lex.words)  # methods remove the ID names themselves
    assert set(lex.of_pos("noun")) == set(WORLD.object_names)
    assert {"striped", "red", "small"} <= set(lex.of_pos("adj"))
    assert len(lex.words) == len(set(lex.words))
    only = load_lexicon("toyworld", {"parts": ["textures"]})
    assert only.words == WORLD.texture_words and set(only.pos) == {"adj"}


# ----------------------------------------------------------------------------------------- the tiny CLIP
@pytest.fixture(scope="module")
def toyclip():
    from oodbench.backbone import Backbone, BackboneSpec

    return Backbone.load(BackboneSpec("toyclip", "toyworld", device="cpu"))


def test_bundled_weights_load_strictly(toyclip):
    from oodbench.backbone.weights import load_weights_file
    from oodbench.toyworld.weights import WEIGHTS_FILE

    assert toyclip.identity["checkpoint"] == WEIGHTS_FILE.name
    assert WEIGHTS_FILE.stat().st_size < 16e6
    # strict: a model that lacks a key must be refused
    import open_clip

    other = open_clip.create_model("oodbench-tiny")
    from oodbench.errors import CheckpointError

    with pytest.raises(CheckpointError):
        load_weights_file(other, WEIGHTS_FILE)


def test_bundled_weights_classify_and_detect(toyclip, toy_root):
    from sklearn.metrics import roc_auc_score

    ctx = DataContext(data_root=toy_root)
    feats = {}
    for name in ("toyworld-mini", "toyworld-mini-near", "toyworld-mini-far"):
        ds = open_dataset(name, ctx).with_transform(toyclip.preprocess)
        feats[name] = (torch.from_numpy(toyclip.encode_images(ds, batch_size=256)), ds.labels)
    text = toyclip.class_text_features(list(WORLD.id_classes), ["a photo of a {}"])
    x, labels = feats["toyworld-mini"]
    accuracy = float(((x @ text.T).argmax(1).numpy() == labels).mean())
    assert accuracy >= 0.85, accuracy

    def mcm(f: torch.Tensor) -> np.ndarray:
        return torch.softmax(f @ text.T, dim=1).amax(1).numpy()

    for ood, floor in (("toyworld-mini-far", 0.9), ("toyworld-mini-near", 0.6)):
        s_id, s_ood = mcm(x), mcm(feats[ood][0])
        auroc = roc_auc_score(np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))], np.r_[s_id, s_ood])
        assert auroc >= floor, (ood, auroc)


def test_bundled_clipn_fits_the_bundled_backbone(toyclip):
    from oodbench.methods.clipn.checkpoint import load_clipn, resolve_checkpoint
    from oodbench.toyworld.weights import CLIPN_FILE

    path = resolve_checkpoint("toyworld")
    assert path == CLIPN_FILE and path.stat().st_size < 12e6
    clipn, _ = load_clipn(path, toyclip.model, toyclip.identity)  # strict keys + backbone fingerprint
    assert clipn is not None


# ----------------------------------------------------------------------------------------- suite, pairs
def test_suite_names_registered_things_and_valid_params():
    
    from oodbench.benchmarks import BENCHMARKS
    from oodbench.bundled import bundled
    from oodbench.lexicon import LEXICONS
    from oodbench.scorer import METHODS

    spec = BENCHMARKS.get("toyworld")
    assert spec.id == "toyworld" and spec.ood == ("toyworld-near", "toyworld-far")
    assert all(name in DATASETS for name in spec.datasets)
    assert spec.lexicon in LEXICONS and spec.pretrained in bundled("clip") and spec.model == "toyclip"
    assert spec.templates == ("a photo of a {}",)
    for method, params in spec.params.items():
        METHODS.get(method).from_params(params)  # unknown parameter names fail here


def test_pairs_csv(tmp_path):
    from oodbench.toyworld.pairs import write_pairs

    path = write_pairs(WORLD, tmp_path, n_per_class=1, seed=3)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == len(WORLD.object_names) + len(WORLD.scene_textures)
    assert all((tmp_path / r["filepath"]).is_file() and r["title"].startswith("a photo of a ") for r in rows)
    again = write_pairs(WORLD, tmp_path / "again", n_per_class=1, seed=3)
    assert again.read_text() == path.read_text()


REPO = Path(__file__).resolve().parents[1]


def _cell(row: dict) -> str:
    """A leaderboard cell as the READMEs print it: FPR95 / AUROC in %, a stream method's as mean ± std."""
    std = row.get("std") or {}
    return " / ".join(f"{row[m] * 100:.2f}" + (f" ± {std[m] * 100:.2f}" if m in std else "")
                      for m in ("fpr95", "auroc"))


@pytest.mark.parametrize("readme", ["README.md", "toyworld/README.md"])
def test_readme_leaderboards_are_the_committed_results(readme):
    # Every number in a README comes from results/: a table edited by hand (or left behind by a change of
    # what `report` prints, as AdaNeg's ID accuracy was) fails here.
    from oodbench.results import ResultSet

    folder = REPO / "results" / "toyworld" / "toyclip_toyworld"
    committed = {r.method: r for r in map(ResultSet.load, sorted(folder.glob("*.json")))}
    text = (REPO / readme).read_text(encoding="utf-8")
    table = re.search(r"^\| method \| toyworld-near \| toyworld-far \| average \| ID acc \|\n\|[- |]+\|\n"
                      r"((?:\|.*\|\n)+)", text, re.M)
    assert table, f"{readme} has no toyworld leaderboard"
    printed = {}
    for line in table.group(1).splitlines():
        method, *cells = [c.strip() for c in line.strip("|").split("|")]
        printed[method] = cells
    assert set(printed) == set(committed)
    for method, r in committed.items():
        by_ood = {row["ood"]: row for row in r.rows}
        want = [_cell(by_ood[o]) for o in ("toyworld-near", "toyworld-far", "average")]
        want.append(f"{by_ood['average']['id_accuracy'] * 100:.2f}")
        assert printed[method] == want, method
    order = [m for m in printed]
    assert order == sorted(order, key=lambda m: committed[m].rows[-1]["fpr95"]), "rows sorted by avg FPR95"
