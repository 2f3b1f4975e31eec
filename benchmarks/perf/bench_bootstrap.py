"""Time the bootstrap of the OOD metrics against one computation of them (``ood_metrics``).

    python benchmarks/perf/bench_bootstrap.py                        # 1,000 x (50,000 ID + 10,000 OOD)
    python benchmarks/perf/bench_bootstrap.py --id 10000 --ood 10000 --resamples 200 --ties 100

Scores are Gaussian (ID shifted by ``--shift``); ``--ties N`` rounds them to 1/N, as saturated softmax
scores tie. Reported: seconds for one ``ood_metrics`` call (scikit-learn), for the vectorised bootstrap
(``bootstrap_replicates``, all four metrics on every resample), their ratio, and the projected time of
a loop calling ``ood_metrics`` once per resample (timed on a few resamples).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from oodbench.bootstrap import bootstrap_replicates, resample_indices
from oodbench.metrics import ood_metrics

log = logging.getLogger("bench_bootstrap")


def best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--id", type=int, default=50_000, help="ID scores")
    ap.add_argument("--ood", type=int, default=10_000, help="OOD scores")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--shift", type=float, default=1.5)
    ap.add_argument("--ties", type=int, default=0, help="round scores to 1/N (0 = no rounding)")
    ap.add_argument("--convention", default="nearest")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(args.shift, 1, args.id), rng.normal(0, 1, args.ood)
    if args.ties:
        s_id, s_ood = np.round(s_id * args.ties) / args.ties, np.round(s_ood * args.ties) / args.ties
    log.info("%d ID + %d OOD scores (%d distinct), %d resamples, FPR95 %s", args.id, args.ood,
             len(np.unique(np.r_[s_id, s_ood])), args.resamples, args.convention)

    one = best_of(lambda: ood_metrics(s_id, s_ood, args.convention), args.repeats)
    boot = best_of(lambda: bootstrap_replicates(s_id, s_ood, id_name="id", ood_name="ood",
                                                resamples=args.resamples, fpr_convention=args.convention),
                   max(1, args.repeats - 1))
    probe = 5
    ids, oods = resample_indices(args.id, probe, 0, "id"), resample_indices(args.ood, probe, 0, "ood")
    t0 = time.perf_counter()
    for i, j in zip(ids, oods):
        ood_metrics(s_id[i], s_ood[j], args.convention)
    loop = (time.perf_counter() - t0) / probe * args.resamples
    log.info("one ood_metrics call: %.3f s", one)
    log.info("bootstrap, %d resamples: %.2f s = %.0f x one call (%.2f ms per resample)", args.resamples, boot,
             boot / one, 1e3 * boot / args.resamples)
    log.info("a loop of ood_metrics calls would take about %.0f s (x%.1f the vectorised bootstrap)", loop,
             loop / boot)


if __name__ == "__main__":
    main()
