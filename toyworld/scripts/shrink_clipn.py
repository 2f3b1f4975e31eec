"""Store a CLIPN checkpoint's floating-point tensors in fp16 (half the size), keeping its metadata.

    .venv/bin/python toyworld/scripts/shrink_clipn.py runs/toyclip-clipn/clipn.safetensors \
        toyworld/assets/toyclip-clipn.safetensors

The "no" tower's 49,408-row token embedding dominates the file; loading casts the tensors back into the
fp32 model (strictly, by the CLIPN loader), so only the stored precision changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors.torch import save_file

from oodbench.safeload import read_safetensors


def shrink(src: Path, dst: Path) -> None:
    tensors, metadata = read_safetensors(src, what="CLIPN checkpoint")
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(dst)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args(argv)
    shrink(args.src, args.dst)
    print(f"{args.dst}: {args.src.stat().st_size / 1e6:.1f} MB -> {args.dst.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
