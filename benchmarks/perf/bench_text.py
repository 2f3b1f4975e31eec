"""Short text sequences: CLIP's causal text tower run only up to the longest prompt of a batch.

Compares open_clip's full-length ``encode_text`` (77 positions) with oodbench's ``encode_texts`` on
NegLabel-style prompts ("the nice {word}", 8 tokens), in one run, and reports the speed-up and the
largest difference between the two feature sets (random weights: the cost does not depend on them).

    python benchmarks/perf/bench_text.py [--model ViT-B-16] [--prompts 200]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from oodbench.backbone import Backbone, BackboneSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--prompts", type=int, default=200)
    args = ap.parse_args()
    backbone = Backbone.load(BackboneSpec(args.model, "none"))
    prompts = [f"the nice word{i}" for i in range(args.prompts)]
    tokens = backbone.tokenizer(prompts)
    with torch.no_grad():
        t0 = time.perf_counter()
        full = F.normalize(backbone.model.encode_text(tokens.to(backbone.device)), dim=-1).cpu()
        t_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        short = backbone.encode_texts(prompts, use_cache=False)
        t_short = time.perf_counter() - t0
    print(f"{args.model}, {args.prompts} prompts, {torch.get_num_threads()} threads, {backbone.device}")
    print(f"  full length (77 positions)  {t_full:7.2f} s")
    print(f"  short sequences             {t_short:7.2f} s")
    print(f"  speed-up                    {t_full / t_short:7.1f}x")
    print(f"  max |difference|            {(full - short).abs().max().item():.1e}")


if __name__ == "__main__":
    main()
