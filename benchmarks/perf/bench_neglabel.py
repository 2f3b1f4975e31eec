"""Time NegLabel's mining and scoring, and ZOC-lite's scoring, at ImageNet scale on random features.

    python benchmarks/perf/bench_neglabel.py                     # 70k candidates x 1000 classes x 512-d
    python benchmarks/perf/bench_neglabel.py --images 2000 --threads 2

Mining: the 0.95-quantile of each candidate's cosines to the ID classes, nouns and adjectives ranked
apart (``mine_negatives``), compared with a ``torch.quantile`` version on a slice. Scoring: 100 groups
over the mined negatives for every image (``neglabel_log_odds``) and ZOC-lite's per-image top-k.
Random features stand in for CLIP's; the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
import torch.nn.functional as F

from oodbench.methods.neglabel import mine_negatives, neglabel_log_odds, similarity_quantile
from oodbench.methods.zoc_lite import zoc_lite_score

log = logging.getLogger("bench_neglabel")


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=70_000)
    ap.add_argument("--adjective-share", type=float, default=0.2)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--zoc-vocab", type=int, default=57_000, help="ZOC-lite vocabulary size (nouns)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)

    def rand(n: int) -> torch.Tensor:
        return F.normalize(torch.randn(n, args.dim, generator=gen), dim=1).to(dev)

    cands, ids, images = rand(args.candidates), rand(args.classes), rand(args.images)
    is_adj = torch.rand(args.candidates, generator=gen) < args.adjective_share
    log.info("device %s, %d torch threads; %d candidates (%d adjectives) x %d classes x %d-d; %d images",
             dev, torch.get_num_threads(), args.candidates, int(is_adj.sum()), args.classes, args.dim,
             args.images)

    idx, t_mine = timed(lambda: mine_negatives(cands, ids, is_adj))
    log.info("mining: %.2f s for %d candidates -> %d negatives (%.1f us per candidate)", t_mine,
             args.candidates, len(idx), 1e6 * t_mine / args.candidates)

    n_check = min(5000, args.candidates)
    ours, t_ours = timed(lambda: similarity_quantile(cands[:n_check], ids, 0.95))
    ref, t_ref = timed(lambda: torch.quantile(cands[:n_check] @ ids.T, 0.95, dim=1))
    log.info("quantile on %d candidates: topk %.3f s vs torch.quantile %.3f s (x%.1f), max |diff| %.1e",
             n_check, t_ours, t_ref, t_ref / max(t_ours, 1e-9),
             (ours - ref.double().cpu()).abs().max().item())

    negs = cands[idx]
    _, t_score = timed(lambda: neglabel_log_odds(images, ids, negs, 0.01, args.groups, 0))
    log.info("NegLabel scoring: %.2f s for %d images x (%d ID + %d negatives, %d groups) (%.0f images/s)",
             t_score, args.images, args.classes, len(negs), args.groups, args.images / t_score)

    vocab = rand(args.zoc_vocab)
    _, t_zoc = timed(lambda: zoc_lite_score(images, ids, vocab, k=10))
    log.info("ZOC-lite scoring: %.2f s for %d images x (%d ID + top-10 of %d words) (%.0f images/s)",
             t_zoc, args.images, args.classes, args.zoc_vocab, args.images / t_zoc)


if __name__ == "__main__":
    main()
