"""Write toyworld image-caption pairs (PNG folder + pairs.csv) for `oodbench train clipn`.

    .venv/bin/python toyworld/scripts/make_pairs.py --out runs/toyworld-pairs --n-per-class 200 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oodbench.progress import setup_logging
from oodbench.toyworld.pairs import write_pairs
from oodbench.toyworld.world import load_world


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for images/ and pairs.csv")
    p.add_argument("--n-per-class", type=int, default=200, help="images per object class and per texture")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    setup_logging()
    print(write_pairs(load_world(), args.out, args.n_per_class, args.seed))


if __name__ == "__main__":
    main(sys.argv[1:])
