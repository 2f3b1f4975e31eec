"""Time each newer method's scoring at ImageNet scale on random features, as ratios against MCM's scoring.

    python benchmarks/perf/bench_methods.py           # 50,000 ID + 10,000 OOD, 1,000 classes, 512-d
    python benchmarks/perf/bench_methods.py --patch-images 60000 --device cuda   # GL-MCM on every image
    python benchmarks/perf/bench_methods.py --only adaneg,tanl,clipscope,oodd   # the test-time methods

What is timed (one run each, after a warm-up on 1,000 images; random unit vectors stand in for CLIP's
features, the cost does not depend on their values):

- MCM (the yardstick): max softmax of cos / 1 over the 1,000 classes, 60,000 images;
- energy, max-logit, GEN (top-100): the same products, other reductions;
- CSP: NegLabel's grouped score over 8,493 negatives in 100 groups (the reference pool's size), and its
  selection over 56,620 candidates (once per fit, not per image);
- EOE: one softmax over the 1,000 classes + 250 outlier labels (about what a released far_500 file holds
  after cleaning);
- GL-MCM: the global term on every image, and the local term over ``--patch-images`` images of 196 patches
  (ViT-B/16), fp16 as cached, extrapolated linearly to 60,000 images (it is N x P x C x D multiply-adds,
  6e12 in all, so its cost is linear in N). The patches of 60,000 images would take 12 GB;
- the test-time methods, each on one stream of the 60,000 images (the runner scores one stream per OOD set
  and repeat: ImageNet's four OOD sets x 3 repeats are 12 such streams, each with the 50,000 ID images):
  AdaNeg (10,000 negatives, 5 groups, batch 256; task-adaptive, and ``adaneg (sample-adaptive)``), TANL
  (corpus of 69,554 labels, M = 1,000, batch 256, the paper's settings), CLIPScope (5,000 far + 5,000 near
  labels, counts updated after every image), OODD (its NegLabel base over 10,000 negatives in 100 groups,
  then the dictionary of 2,048 in batches of 64).

Ratios are wall-clock times over MCM's. On a shared CPU the wall clock is noisy; the CPU seconds of the
process are printed beside it.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from oodbench.methods.adaneg import adaneg_stream_scores
from oodbench.methods.baselines import energy_score, gen_score, maxlogit_score
from oodbench.methods.clipscope import clipscope_stream_scores
from oodbench.methods.csp import csp_selection_values, lowest_per_part
from oodbench.methods.eoe import eoe_score
from oodbench.methods.gl_mcm import local_mcm
from oodbench.methods.mcm import mcm_score
from oodbench.methods.neglabel import neglabel_log_odds, neglabel_score
from oodbench.methods.oodd import oodd_stream_scores
from oodbench.methods.tanl import tanl_stream_scores

log = logging.getLogger("bench_methods")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--id-images", type=int, default=50_000)
    ap.add_argument("--ood-images", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--csp-negatives", type=int, default=8_493)
    ap.add_argument("--csp-candidates", type=int, default=56_620)
    ap.add_argument("--eoe-labels", type=int, default=250)
    ap.add_argument("--patches", type=int, default=196)
    ap.add_argument("--patch-images", type=int, default=1_000, help="images whose local term is timed")
    ap.add_argument("--negatives", type=int, default=10_000, help="AdaNeg's negatives, OODD's NegLabel base")
    ap.add_argument("--corpus", type=int, default=69_554, help="TANL's corpus")
    ap.add_argument("--clipscope-labels", type=int, default=5_000, help="CLIPScope's far (and near) labels")
    ap.add_argument("--only", default="", help="comma-separated names to time (besides MCM); default all")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return F.normalize(torch.randn(*shape, generator=gen), dim=-1)

    n = args.id_images + args.ood_images
    images, text = rand(n, args.dim).to(dev), rand(args.classes, args.dim).to(dev)
    negatives, outliers = rand(args.csp_negatives, args.dim).to(dev), rand(args.eoe_labels, args.dim).to(dev)
    patches = rand(args.patch_images, args.patches, args.dim).half()  # on the CPU, as the cache's memory map
    log.info("device %s, %d torch threads; %d images x %d classes x %d-d", dev, torch.get_num_threads(), n,
             args.classes, args.dim)

    negs = rand(args.negatives, args.dim).to(dev)
    jobs: dict[str, Callable[[torch.Tensor], object]] = {
        "mcm": lambda x: mcm_score(x, text, 1.0),
        "energy": lambda x: energy_score(x, text, 0.01),
        "maxlogit": lambda x: maxlogit_score(x, text),
        "gen": lambda x: gen_score(x, text),
        "csp (score)": lambda x: neglabel_log_odds(x, text, negatives, 0.01, 100, 0),
        "eoe": lambda x: eoe_score(x, text, outliers),
        "gl-mcm (global term)": lambda x: mcm_score(x, text, 1.0),
    }
    stream_jobs: dict[str, Callable[[torch.Tensor], object]] = {
        "adaneg": lambda x: adaneg_stream_scores(x, text, negs),
        "adaneg (sample-adaptive)": lambda x: adaneg_stream_scores(x, text, negs, sample_adaptive=True),
        "tanl": lambda x: tanl_stream_scores(x, text, corpus, noise),
        "clipscope": lambda x: clipscope_stream_scores(x, text, far, near),
        "oodd": lambda x: oodd_stream_scores(x, neglabel_score(x, text, negs, 0.01, 100, 0)),
    }
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    chosen = {n: f for n, f in {**jobs, **stream_jobs}.items()
              if n == "mcm" or not only or n.split(" ")[0] in only}
    if any(n in chosen for n in stream_jobs):
        corpus, noise = rand(args.corpus, args.dim).to(dev), rand(15, args.dim).to(dev)
        far = rand(args.clipscope_labels, args.dim).to(dev)
        near = rand(args.clipscope_labels, args.dim).to(dev)
    for fn in chosen.values():  # warm-up: allocator, BLAS threads, kernels
        fn(images[:1000])
    times = {}
    for name, fn in chosen.items():
        times[name] = timed(lambda fn=fn: fn(images))
        log.info("%-26s %8.2f s", name, times[name][0])
    if not only or "gl-mcm" in only:
        local_mcm(patches[:8], text, device=dev)
        wall, cpu = timed(lambda: local_mcm(patches, text, device=dev))
        scale = n / args.patch_images
        times["gl-mcm (local term)"] = (wall * scale, cpu * scale)
        times["gl-mcm (both terms)"] = tuple(a + b for a, b in zip(times["gl-mcm (local term)"],
                                                                      times["gl-mcm (global term)"]))
        macs = args.patch_images * args.patches * args.classes * args.dim
        log.info("GL-MCM local term: %.2f s for %d images x %d patches (%.1f GMAC/s), extrapolated x%.0f",
                 wall, args.patch_images, args.patches, macs / wall / 1e9, scale)
    if not only or "csp" in only:
        cands = rand(args.csp_candidates, args.dim).to(dev)
        is_phrase = torch.arange(args.csp_candidates) >= int(0.82 * args.csp_candidates)
        times["csp (selection, per fit)"] = timed(
            lambda: lowest_per_part(csp_selection_values(cands, text), is_phrase, 0.15))

    base = times["mcm"][0]
    log.info("%-26s %10s %10s %8s", "scoring 60,000 images", "wall s", "CPU s", "x MCM")
    for name, (wall, cpu) in times.items():
        log.info("%-26s %10.2f %10.2f %8.1f", name, wall, cpu, wall / base)


if __name__ == "__main__":
    main()
