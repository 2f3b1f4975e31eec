"""What the integrity checks cost: cache checksums (written and verified) and ``--verify-content`` hashing.

Measured on generated data in a temporary folder (page cache warm, as on a second run):

- cache: a 50,000 x 512 float32 image-feature entry (102.4 MB, ImageNet-val-sized) saved with
  :class:`~oodbench.features.FeatureStore` (CRC-32 computed while writing, fsync) and loaded back (every
  array checked against its record), next to what the runner does with it anyway (``np.load`` memory-mapped
  and copied into a float32 array), and next to sha256 of the same bytes (the alternative checksum);
- ``--verify-content``: sha256 of ``--files`` generated image files of ``--kb`` KB each (ImageNet val
  averages ~128 KB per JPEG), as files/s and MB/s, extrapolated to ImageNet val (50,000 files, 6.4 GB);
- the identity without it: one ``stat`` per file (paths, sizes, modification times).

Each timing is the best of ``--repeat`` runs. On a loaded machine the absolute numbers are pessimistic;
the ratios to the load that happens anyway carry over better.

    python benchmarks/perf/bench_integrity.py [--rows 50000] [--dim 512] [--files 2000] [--kb 128]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("OODBENCH_NO_PROGRESS", "1")

from oodbench.data.base import FileImageSet  # noqa: E402
from oodbench.features import FeatureStore, crc32_of  # noqa: E402
from oodbench.hashing import sha256_files  # noqa: E402


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--files", type=int, default=2_000)
    ap.add_argument("--kb", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        feats = np.random.default_rng(0).standard_normal((args.rows, args.dim)).astype(np.float32)
        labels = np.arange(args.rows, dtype=np.int64) % 1000
        parts = {"backbone": {"model": "bench"}, "dataset": {"name": "bench"}}
        mb = feats.nbytes / 1e6
        store = FeatureStore(root / "cache")

        def save() -> None:
            store.save("images", parts, {"features": feats, "labels": labels})

        t_save = best(save, args.repeat)
        t_crc = best(lambda: crc32_of(feats), args.repeat)
        t_sha = best(lambda: hashlib.sha256(memoryview(feats).cast("B")).hexdigest(), args.repeat)
        entry = store.save("images", parts, {"features": feats, "labels": labels})

        def plain_load() -> None:
            np.array(np.load(entry / "features.npy", mmap_mode="r"), dtype=np.float32)

        def checked_load() -> None:
            found = FeatureStore(root / "cache").load("images", parts)
            assert found is not None
            np.array(found["features"], dtype=np.float32)

        t_plain = best(plain_load, args.repeat)
        t_checked = best(checked_load, args.repeat)
        print(f"cache entry {args.rows} x {args.dim} float32 ({mb:.1f} MB):")
        print(f"  save (CRC-32 while writing, fsync, rename) {t_save:.3f} s; CRC-32 alone {t_crc:.3f} s "
              f"({mb / t_crc:.0f} MB/s); sha256 alone {t_sha:.3f} s ({mb / t_sha:.0f} MB/s)")
        print(f"  load as the runner uses it: unchecked {t_plain:.3f} s, checked {t_checked:.3f} s "
              f"(+{t_checked - t_plain:.3f} s, x{t_checked / t_plain:.2f})")

        folder = root / "images"
        folder.mkdir()
        rng = np.random.default_rng(1)
        paths = []
        for i in range(args.files):
            p = folder / f"img_{i:06d}.jpg"
            p.write_bytes(rng.integers(0, 255, args.kb * 1024, dtype=np.uint8).tobytes())
            paths.append(p)
        total_mb = args.files * args.kb * 1024 / 1e6
        t_hash = best(lambda: sha256_files(paths), args.repeat)
        t_stat = best(lambda: FileImageSet("bench", folder, paths), args.repeat)
        rate_mb, rate_files = total_mb / t_hash, args.files / t_hash
        print(f"--verify-content on {args.files} files of {args.kb} KB ({total_mb:.0f} MB, page cache warm):")
        print(f"  sha256 {t_hash:.3f} s = {rate_files:.0f} files/s, {rate_mb:.0f} MB/s; identity without it "
              f"(stat) {t_stat:.3f} s = {args.files / t_stat:.0f} files/s")
        print(f"  ImageNet val (50,000 files, 6.4 GB) at that rate: {6400 / rate_mb:.0f} s of hashing "
              "(more when the files must come from disk)")


if __name__ == "__main__":
    main()
