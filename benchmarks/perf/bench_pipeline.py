"""Encode once, score many: what the whole pipeline costs next to the model's own forward pass.

Measured in one run, on one benchmark (default: toyworld with its bundled tiny CLIP):

- ``forward``: the image tower alone on pre-decoded, pre-processed tensors (the floor);
- ``cold``: ``oodbench run`` with every method and an empty cache (decode + encode + text side + scoring);
- ``warm``: the same run again (image and text features from the cache);
- ``warm, one method``: the warm run with MCM only.

Reported as ratios, which carry over between machines better than seconds:
``cold / forward`` (pipeline overhead around the model), ``warm / cold`` (what the cache saves) and
``warm all / warm one`` (what each further method costs once features are cached).

    python benchmarks/perf/bench_pipeline.py [--id toyworld] [--methods all] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("OODBENCH_NO_PROGRESS", "1")


from oodbench.backbone import Backbone, BackboneSpec  # noqa: E402
from oodbench.benchmarks import BENCHMARKS  # noqa: E402
from oodbench.data.base import open_dataset
from oodbench.data.spec import DataContext  # noqa: E402
from oodbench.features import FeatureStore  # noqa: E402
from oodbench.runner import RunConfig, run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--id", default="toyworld")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data-root", type=Path, default=None,
                    help="where the data sets are (toyworld: generated there on first use)")
    args = ap.parse_args()
    bench = BENCHMARKS.get(args.id)
    spec = BackboneSpec(bench.model or "ViT-B-16", bench.pretrained or "none")

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = DataContext(data_root=args.data_root, cache_dir=tmp_path / "data-cache")
        # Generate / open the data outside the timings (toyworld writes its PNGs on first use).
        sets = [open_dataset(n, data) for n in (bench.id, *bench.ood)]
        n_images = sum(len(s) for s in sets)

        backbone = Backbone.load(spec)
        tensors = []
        for s in sets:
            s.with_transform(backbone.preprocess)
            tensors += [s[i][0] for i in range(len(s))]
        batch = torch.stack(tensors)
        with torch.no_grad():
            backbone.model.encode_image(batch[: args.batch_size])  # warm-up
            t0 = time.perf_counter()
            for i in range(0, len(batch), args.batch_size):
                backbone.model.encode_image(batch[i:i + args.batch_size])
            forward = time.perf_counter() - t0

        def timed(methods: list[str]) -> float:
            cfg = RunConfig(methods=methods, benchmark=bench, backbone=spec, data=data,
                            store=FeatureStore(tmp_path / "cache"), out_dir=tmp_path / "results",
                            batch_size=args.batch_size, workers=args.workers)
            t = time.perf_counter()
            run(cfg)
            return time.perf_counter() - t

        cold = timed([args.methods])
        warm = timed([args.methods])
        warm_one = timed(["mcm"])

    print(f"benchmark {bench.name}: {n_images} images, backbone {spec.model}/{spec.pretrained}, "
          f"methods {args.methods}, {torch.get_num_threads()} threads, workers {args.workers}")
    print(f"  forward (image tower only)  {forward:8.2f} s  ({n_images / forward:,.0f} img/s)")
    print(f"  cold run, all methods       {cold:8.2f} s")
    print(f"  warm run, all methods       {warm:8.2f} s")
    print(f"  warm run, MCM only          {warm_one:8.2f} s")
    print(f"  ratio cold / forward        {cold / forward:8.2f}")
    print(f"  ratio warm / cold           {warm / cold:8.3f}")
    print(f"  ratio warm all / warm one   {warm / warm_one:8.2f}")


if __name__ == "__main__":
    main()
