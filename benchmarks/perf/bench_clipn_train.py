"""Time one CLIPN training step, split into its parts, on synthetic batches (no image decoding).

    python benchmarks/perf/bench_clipn_train.py                        # tiny model, CPU, batch 32
    python benchmarks/perf/bench_clipn_train.py --model ViT-B-16 --batch-size 256 --device cuda
    python benchmarks/perf/bench_clipn_train.py --end-to-end            # + the real trainer on generated PNGs

Without ``--model`` it picks ViT-B-16 at batch 256 (bf16 autocast) when a GPU is present, else the tiny test
model. Weights are random (``--pretrained none``): the cost does not depend on their values. Parts:

- ``frozen``: the image tower and the "yes" text tower, forward only (no gradient);
- ``no tower``: the "no" tower forward with per-sample prompts, the ITBO + TSO loss, and backward;
- ``optimizer``: AdamW's step over the trainable parameters;
- ``step``: all three, as ``oodbench train clipn`` runs them.

Captions are 8-20 words long (CC3M's are about 10), so the "no" tower runs ~25 of 77 positions.
``--end-to-end`` runs ``oodbench.methods.clipn.trainer.train`` on generated image-caption pairs and reports the
images per second it logs (decode, augmentation and tokenization included).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

os.environ.setdefault("OODBENCH_NO_PROGRESS", "1")

from oodbench.backbone import Backbone, BackboneSpec  # noqa: E402
from oodbench.methods.clipn.losses import clipn_loss  # noqa: E402
from oodbench.methods.clipn.model import CLIPN  # noqa: E402
from oodbench.methods.clipn.trainer import param_groups  # noqa: E402

log = logging.getLogger("bench_clipn_train")
WORDS = ("a photo of the red blue small large dog cat car tree house on with in near street beach "
         "old new").split()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def captions(n: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) for _ in range(n)]


def bench_steps(args: argparse.Namespace, device: torch.device) -> None:
    backbone = Backbone.load(BackboneSpec(args.model, "none", device=str(device)))
    clipn = CLIPN(backbone.model).train()
    clipn.no.to(device)
    opt = torch.optim.AdamW(param_groups(clipn.no.named_parameters(), 0.2), lr=3e-4, betas=(0.9, 0.98),
                            eps=1e-6)
    size = backbone.model.visual.preprocess_cfg["size"][0]
    rng = random.Random(0)
    images = torch.randn(args.batch_size, 3, size, size, device=device)
    tokens = backbone.tokenizer(captions(args.batch_size, rng)).to(device)
    choice = torch.randint(0, 17, (args.batch_size,), device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    n_train = sum(p.numel() for p in clipn.no.parameters())
    log.info("%s on %s (%s, %d threads), batch %d, %d trainable parameters (%.1f MB fp32)",
             args.model, device, args.precision, torch.get_num_threads(), args.batch_size, n_train,
             n_train * 4 / 2**20)

    def autocast():  # type: ignore[no-untyped-def]
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    state: dict[str, torch.Tensor] = {}

    def frozen() -> None:
        with autocast():
            state["f"] = clipn.encode_image(images)
            state["g"] = clipn.encode_text(tokens)

    def no_tower() -> None:
        with autocast():
            g_no = clipn.encode_text_no(tokens, choice)
        clipn_loss(state["f"], state["g"], g_no, 100.0, gather=False).total.backward()

    def optimizer() -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    parts: dict[str, list[float]] = {"frozen": [], "no tower": [], "optimizer": [], "step": []}
    for i in range(args.warmup + args.steps):
        t = [timed(frozen, device), timed(no_tower, device), timed(optimizer, device)]
        if i >= args.warmup:
            for name, v in zip(("frozen", "no tower", "optimizer"), t):
                parts[name].append(v)
            parts["step"].append(sum(t))
    for name, values in parts.items():
        med = statistics.median(values)
        log.info("%-10s median %8.1f ms  (min %.1f, max %.1f)%s", name, 1e3 * med, 1e3 * min(values),
                 1e3 * max(values), f"  -> {args.batch_size / med:.1f} pairs/s" if name == "step" else "")
    if device.type == "cuda":
        log.info("peak GPU memory %.2f GiB", torch.cuda.max_memory_allocated() / 2**30)


def bench_end_to_end(args: argparse.Namespace, device: torch.device) -> None:
    import json

    from PIL import Image

    from oodbench.methods.clipn.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = random.Random(0)
        n = args.batch_size * (args.steps + args.warmup)
        (root / "img").mkdir()
        lines = ["filepath\ttitle"]
        for i, caption in enumerate(captions(n, rng)):
            colour = tuple(rng.randrange(256) for _ in range(3))
            Image.new("RGB", (256, 256), colour).save(root / "img" / f"{i}.jpg")
            lines.append(f"img/{i}.jpg\t{caption}")
        (root / "pairs.tsv").write_text("\n".join(lines) + "\n")
        train(TrainConfig(data=str(root / "pairs.tsv"), out=root / "run", model=args.model, pretrained="none",
                          epochs=1, batch_size=args.batch_size, workers=args.workers, device=str(device),
                          precision=args.precision, log_every=1, progress=False))
        lines = (root / "run" / "log.jsonl").read_text().splitlines()
        rates = [json.loads(x)["samples_per_s"] for x in lines]
        log.info("end to end (%d workers, 256x256 JPEGs): median %.1f pairs/s over steps %d..%d",
                 args.workers, statistics.median(rates[args.warmup:]), args.warmup + 1, len(rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="open_clip model (default: ViT-B-16 on a GPU, else tiny)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 256 on a GPU, else 32")
    ap.add_argument("--precision", default=None, help="fp32 / bf16 / fp16 (default: bf16 on a GPU)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--end-to-end", action="store_true", help="also time the trainer on generated JPEGs")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(message)s")  # quiet open_clip's "random weights"
    log.setLevel(logging.INFO)
    if args.threads:
        torch.set_num_threads(args.threads)
    from oodbench.devices import resolve_device

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.model = args.model or ("ViT-B-16" if gpu else "oodbench-tiny")
    args.batch_size = args.batch_size or (256 if gpu else 32)
    args.precision = args.precision or ("bf16" if gpu else "fp32")
    bench_steps(args, device)
    if args.end_to_end:
        bench_end_to_end(args, device)


if __name__ == "__main__":
    main()
