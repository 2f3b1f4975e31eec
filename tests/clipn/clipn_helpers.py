"""Generated image-caption pairs for the CLIPN tests (CSV/TSV and WebDataset shards)."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220), "yellow": (230, 220, 40)}
SHAPES = ("circle", "square")


def make_pair(rng: random.Random) -> tuple[Image.Image, str]:
    colour, shape = rng.choice(sorted(COLOURS)), rng.choice(SHAPES)
    image = Image.new("RGB", (40, 36), (rng.randint(0, 60),) * 3)
    box = (rng.randint(0, 8), rng.randint(0, 8), rng.randint(28, 38), rng.randint(26, 34))
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
    return image, f"a {colour} {shape}"


def write_pairs_csv(root: Path, n: int, seed: int = 0, sep: str = "\t") -> Path:
    """``n`` generated (PNG, caption) pairs under ``root/img`` and ``root/pairs.tsv`` (relative paths)."""
    rng = random.Random(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = [f"filepath{sep}title"]
    for i in range(n):
        image, caption = make_pair(rng)
        image.save(root / "img" / f"{i:04d}.png")
        lines.append(f"img/{i:04d}.png{sep}{caption}")
    path = root / ("pairs.tsv" if sep == "\t" else "pairs.csv")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_shards(root: Path, n: int, per_shard: int, seed: int = 0) -> list[Path]:
    """WebDataset shards ``root/shard-K.tar`` with ``KEY.png`` + ``KEY.txt`` members."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    shards = []
    for k in range(0, n, per_shard):
        path = root / f"shard-{k // per_shard:03d}.tar"
        with tarfile.open(path, "w") as tf:
            for i in range(k, min(n, k + per_shard)):
                image, caption = make_pair(rng)
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                for name, blob in ((f"{i:06d}.png", buf.getvalue()), (f"{i:06d}.txt", caption.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(blob)
                    tf.addfile(info, io.BytesIO(blob))
        shards.append(path)
    return shards
