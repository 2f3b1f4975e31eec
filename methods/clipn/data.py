"""Image-caption pairs for CLIPN training: a CSV/TSV of (image path, caption) or WebDataset tar shards.

Both are read as *random-access* sources, so that the order of the data is a pure function of
``(seed, epoch)``: each epoch is a seeded permutation of all pairs, cut into global batches of
``batch_size x world_size`` (the last incomplete one is dropped), and each rank takes its slice. The
position in the data is therefore the optimiser-step count, and ``--resume`` continues exactly.
Augmentation parameters and the per-sample random draw (prompt choice or template index) are seeded by
``(seed, epoch, index)``, so they do not depend on workers or on where a run was interrupted.

- **CSV/TSV**: a header row; the image and caption columns are named by the user (open_clip's defaults
  ``filepath`` / ``title``); the separator is a tab for ``.tsv`` files, otherwise sniffed from the header.
  Relative image paths are resolved against the CSV's folder.
- **WebDataset shards**: local, uncompressed ``.tar`` files (a file, a folder of them, a glob, or a brace
  pattern such as ``cc3m/{00000..00331}.tar``; several joined by ``::``). Members are grouped into samples
  by WebDataset's rule (the key is the path up to the first dot of the file name); a sample needs an image
  (``jpg``, ``jpeg``, ``png`` or ``webp``) and a ``txt`` caption. The shards are indexed once (headers
  only), then read by offset.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import logging
import math
import random
import re
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from oodbench.data.decode import bomb_hint, to_rgb
from oodbench.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
#: open_clip's training crop (and the reference's): RandomResizedCrop(scale=(0.9, 1.0)), bicubic.
CROP_SCALE = (0.9, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


class PairSource(ABC):
    """Random-access (image, caption) pairs."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[Image.Image, str]: ...

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data (files, sizes, dates, count): a resumed run must see the same."""


# --------------------------------------------------------------------------------------------- CSV
class CsvPairs(PairSource):
    def __init__(self, path: Path, image_column: str = "filepath", caption_column: str = "title",
                 separator: str | None = None) -> None:
        self.path = path
        if not path.is_file():
            raise DataError(f"The training data file {path} does not exist. Pass --data with a CSV/TSV of "
                            "(image path, caption) or WebDataset .tar shards.")
        with path.open(newline="", encoding="utf-8") as fh:
            header = fh.readline()
            sep = separator or ("\t" if path.suffix.lower() == ".tsv" or "\t" in header else ",")
            fh.seek(0)
            reader = csv.DictReader(fh, delimiter=sep)
            columns = reader.fieldnames or []
            if image_column not in columns or caption_column not in columns:
                raise DataError(
                    f"{path} (read with separator {sep!r}) has the columns {columns}, but the image column "
                    f"{image_column!r} and the caption column {caption_column!r} were asked for. Name them "
                    "with --image-column / --caption-column (and --separator if the split is wrong).")
            images: list[str] = []
            captions: list[str] = []
            for row in reader:
                image, caption = row[image_column], row[caption_column]
                if image is None or caption is None:
                    raise DataError(f"{path}, data row {len(images) + 1}, has fewer fields than the "
                                    f"header {columns}.")
                images.append(image)
                captions.append(caption)
        if not images:
            raise DataError(f"{path} has a header but no pairs.")
        self.root = path.parent
        self.images = StringTable(images)
        self.captions = StringTable(captions)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> tuple[Image.Image, str]:
        path = str(self.root / self.images[index])  # an absolute path stays as it is
        try:
            with Image.open(path) as im:
                image = to_rgb(im)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            hint = f" ({bomb_hint()})" if isinstance(exc, Image.DecompressionBombError) else ""
            raise DataError(f"Cannot read image {path} (row {index + 1} of {self.path}): {exc}{hint}. Fix or "
                            "remove that row and run again (with --resume).") from None
        return image, self.captions[index]

    def fingerprint(self) -> dict[str, Any]:
        st = self.path.stat()
        return {"kind": "csv", "path": str(self.path.resolve()), "size": st.st_size, "n": len(self)}


class StringTable:
    """Strings packed into one byte array plus offsets.

    A list of millions of Python strings is touched by reference counting in every DataLoader worker and
    so copied into each of them; two numpy arrays stay shared (CC3M: ~0.3 GB once instead of per worker).
    """

    def __init__(self, items: Sequence[str]) -> None:
        blobs = [x.encode("utf-8") for x in items]
        self.offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in blobs], out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(blobs), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        return self.data[self.offsets[index]:self.offsets[index + 1]].tobytes().decode("utf-8")


# --------------------------------------------------------------------------------------------- tar shards
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")


def expand_shards(spec: str) -> list[Path]:
    """Shard paths of ``spec``: ``::``-joined parts, each a brace pattern, glob, folder or file."""
    from braceexpand import braceexpand

    paths: list[Path] = []
    for part in spec.split("::"):
        for item in braceexpand(part):
            p = Path(item).expanduser()
            if p.is_dir():
                found = sorted(p.glob("*.tar"))
            elif any(c in item for c in "*?["):
                found = [Path(x) for x in sorted(glob.glob(str(p)))]
            else:
                found = [p]
            missing = [f for f in found if not f.is_file()]
            if not found or missing:
                raise DataError(f"No WebDataset shard at {missing[0] if missing else item} (from --data "
                                f"{spec!r}). Give local .tar files, a folder of them, a glob or a brace "
                                "pattern like shards/{00000..00099}.tar.")
            paths.extend(found)
    return paths


class TarPairs(PairSource):
    def __init__(self, shards: Sequence[Path]) -> None:
        self.shards = [Path(s) for s in shards]
        rows: list[tuple[int, int, int, int, int]] = []
        skipped = 0
        for si, shard in enumerate(self.shards):
            rows_in, skip_in = _index_shard(si, shard)
            rows.extend(rows_in)
            skipped += skip_in
        if skipped:
            log.warning("%d sample(s) in %d shard(s) lack an image or a txt caption and are skipped",
                        skipped, len(self.shards))
        if not rows:
            raise DataError(f"The {len(self.shards)} shard(s) starting with {self.shards[0]} hold no sample "
                            f"with both an image ({', '.join(IMAGE_EXTENSIONS)}) and a txt caption.")
        # columns: shard, image offset, image size, caption offset, caption size
        self.index = np.asarray(rows, dtype=np.int64)
        self._files: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, shard: int, offset: int, size: int) -> bytes:
        fh = self._files.get(shard)
        if fh is None:  # opened lazily, per process (DataLoader workers each get their own handles)
            fh = self._files[shard] = self.shards[shard].open("rb")
        fh.seek(offset)
        return fh.read(size)

    def load(self, index: int) -> tuple[Image.Image, str]:
        shard, img_off, img_size, txt_off, txt_size = (int(v) for v in self.index[index])
        caption = self._read(shard, txt_off, txt_size).decode("utf-8", errors="replace").strip()
        try:
            with Image.open(io.BytesIO(self._read(shard, img_off, img_size))) as im:
                image = to_rgb(im)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            hint = f" ({bomb_hint()})" if isinstance(exc, Image.DecompressionBombError) else ""
            raise DataError(
                f"Cannot decode the image at byte {img_off} of {self.shards[shard]}: {exc}{hint}.") from None
        return image, caption

    def fingerprint(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for s in self.shards:
            h.update(f"{s.resolve()}|{s.stat().st_size}\n".encode())
        return {"kind": "webdataset", "shards": len(self.shards), "shards_sha256": h.hexdigest(),
                "n": len(self)}

    def __getstate__(self) -> dict[str, Any]:  # open file handles stay behind
        return {**self.__dict__, "_files": {}}


def _index_shard(si: int, shard: Path) -> tuple[list[tuple[int, int, int, int, int]], int]:
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(shard, "r:") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                m = _KEY_RE.match(member.name)
                if not m:
                    continue
                key, ext = m.group(1), m.group(2).lower()
                samples.setdefault(key, {})[ext] = (member.offset_data, member.size)
    except tarfile.TarError as exc:
        raise DataError(f"{shard} is not an uncompressed tar file ({exc}). WebDataset shards must be plain "
                        ".tar files to be read by offset.") from None
    rows, skipped = [], 0
    for parts in samples.values():  # dicts keep insertion order = order in the shard
        image = next((parts[e] for e in IMAGE_EXTENSIONS if e in parts), None)
        if image is None or "txt" not in parts:
            skipped += 1
            continue
        rows.append((si, image[0], image[1], parts["txt"][0], parts["txt"][1]))
    return rows, skipped


def open_pairs(data: str, image_column: str = "filepath", caption_column: str = "title",
               separator: str | None = None) -> PairSource:
    """A CSV/TSV file (any other single file), or WebDataset shards (``.tar``, folders, patterns)."""
    p = Path(data).expanduser()
    if p.is_file() and p.suffix.lower() != ".tar":
        return CsvPairs(p, image_column, caption_column, separator)
    if not p.exists() and p.suffix.lower() in (".csv", ".tsv"):
        raise DataError(f"The training data file {p} does not exist.")
    return TarPairs(expand_shards(data))


# --------------------------------------------------------------------------------------------- samples
def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random stream of one sample in one epoch (string seeds hash with sha512: stable everywhere)."""
    return random.Random(f"clipn:{seed}:{epoch}:{index}")


def crop_box(rng: random.Random, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a RandomResizedCrop (scale (0.9, 1.0), ratio (3/4, 4/3)) drawn from ``rng``."""
    area = width * height
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    ratio = width / height
    if ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        h, w = height, round(height * CROP_RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class ImageRecipe:
    """How a training image becomes a tensor: size, normalisation, and whether to random-crop."""

    size: int
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    augment: bool = True

    @classmethod
    def of_model(cls, model: torch.nn.Module, augment: bool = True) -> ImageRecipe:
        cfg = getattr(getattr(model, "visual", None), "preprocess_cfg", None) or {}
        size = cfg.get("size") or getattr(model.visual, "image_size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else size
        return cls(int(size), tuple(cfg.get("mean", OPENAI_MEAN)), tuple(cfg.get("std", OPENAI_STD)), augment)

    def __call__(self, image: Image.Image, rng: random.Random) -> torch.Tensor:
        if self.augment:
            top, left, h, w = crop_box(rng, *image.size)
            image = TF.resized_crop(image, top, left, h, w, [self.size, self.size],
                                    interpolation=InterpolationMode.BICUBIC, antialias=True)
        else:
            image = TF.center_crop(TF.resize(image, self.size, interpolation=InterpolationMode.BICUBIC,
                                             antialias=True), [self.size, self.size])
        return TF.normalize(TF.to_tensor(image), self.mean, self.std)


class PairDataset(torch.utils.data.Dataset):
    """Items keyed by ``(epoch, index)``: ``(image tensor, caption, draw)``; ``draw`` is a 31-bit integer."""

    def __init__(self, source: PairSource, recipe: ImageRecipe, seed: int) -> None:
        self.source = source
        self.recipe = recipe
        self.seed = seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, int]:
        epoch, index = key
        rng = sample_rng(self.seed, epoch, index)
        image, caption = self.source.load(index)
        return self.recipe(image, rng), caption, rng.getrandbits(31)


@dataclass
class CaptionCollate:
    """Batches items into images, "yes" / "no" token ids and, for learnable prompts, the prompt choice.

    Learnable variant: both towers read the raw caption; ``choice = draw % (P + 1)`` picks one of the P
    prompts or their mean. Hand-crafted variant: ``k = draw % T`` picks an aligned template pair, the
    "yes" tower reads ``yes[k].format(caption)`` and the "no" tower ``no[k].format(caption)``.
    """

    tokenizer: Callable[..., torch.Tensor]
    n_prompts: int
    yes_templates: Sequence[str] = ()
    no_templates: Sequence[str] = ()

    def __call__(self, items: Sequence[tuple[torch.Tensor, str, int]]) -> dict[str, torch.Tensor]:
        images = torch.stack([it[0] for it in items])
        captions = [it[1] for it in items]
        draws = torch.tensor([it[2] for it in items], dtype=torch.long)
        if self.n_prompts:
            tokens = self.tokenizer(captions)
            choice = draws % (self.n_prompts + 1)
            return {"images": images, "tokens": tokens, "tokens_no": tokens, "choice": choice}
        ks = (draws % len(self.yes_templates)).tolist()
        yes = [self.yes_templates[k].format(c) for k, c in zip(ks, captions)]
        no = [self.no_templates[k].format(c) for k, c in zip(ks, captions)]
        return {"images": images, "tokens": self.tokenizer(yes), "tokens_no": self.tokenizer(no)}


# --------------------------------------------------------------------------------------------- order
@dataclass(frozen=True)
class StepPlan:
    """Which pairs each rank reads at each optimiser step: a pure function of (seed, epoch, step).

    One optimiser step = ``accum_steps`` micro-batches; one micro-batch = ``batch_size`` pairs per rank,
    ``batch_size * world_size`` globally. ``steps_per_epoch = n // (batch_size * world_size * accum_steps)``.
    """

    n_samples: int
    batch_size: int
    world_size: int = 1
    rank: int = 0
    accum_steps: int = 1
    seed: int = 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.n_samples // (self.global_batch * self.accum_steps)

    def permutation(self, epoch: int) -> torch.Tensor:
        digest = hashlib.sha256(f"clipn-order:{self.seed}:{epoch}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
        return torch.randperm(self.n_samples, generator=gen)

    def micro_batches(self, start_step: int, stop_step: int) -> Iterator[list[tuple[int, int]]]:
        """This rank's micro-batches of ``(epoch, index)`` keys for optimiser steps [start, stop)."""
        spe = self.steps_per_epoch
        perm, perm_epoch = None, -1
        for step in range(start_step, stop_step):
            epoch, within = divmod(step, spe)
            if epoch != perm_epoch:
                perm, perm_epoch = self.permutation(epoch), epoch
            for a in range(self.accum_steps):
                start = (within * self.accum_steps + a) * self.global_batch + self.rank * self.batch_size
                yield [(epoch, int(i)) for i in perm[start:start + self.batch_size]]


class StepBatchSampler(torch.utils.data.Sampler):
    """A DataLoader ``batch_sampler`` over :meth:`StepPlan.micro_batches`."""

    def __init__(self, plan: StepPlan, start_step: int, stop_step: int) -> None:
        self.plan, self.start_step, self.stop_step = plan, start_step, stop_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return self.plan.micro_batches(self.start_step, self.stop_step)

    def __len__(self) -> int:
        return max(self.stop_step - self.start_step, 0) * self.plan.accum_steps
