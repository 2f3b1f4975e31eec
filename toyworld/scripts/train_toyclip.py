"""Train toyworld's tiny CLIP (open_clip config ``toyclip``) contrastively on generated image-caption pairs.

    .venv/bin/python toyworld/scripts/train_toyclip.py --seed 0 \
        --output toyworld/assets/toyclip.safetensors

What it does, and why (see /work/shared/research/toyworld_probe.md and toyworld/README.md):

- a fixed pool of rendered scenes (stream ``"train"``) over *all* object classes (ID and near-OOD, as a
  web-scale CLIP has seen every concept) plus object-free texture scenes;
- every time a scene is drawn it gets a fresh caption from the grammar, and no caption occurs twice in
  a batch (identical captions are false negatives for the contrastive loss);
- open_clip's ``ClipLoss`` with its learnable temperature, AdamW, linear warm-up then cosine decay;
- only the rows of the 49,408-token embedding that the world's words use are trained (a compact copy,
  written back at the end): the other rows keep their seeded random initialisation, and the optimiser
  does not touch 6 M parameters per step;
- the saved file is a plain open_clip state dict (token embedding in fp16 to keep the package small)
  that :func:`oodbench.backbone.load_weights_file` loads strictly.

Deterministic for a given seed, thread count and torch build (CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oodbench.backbone.weights import register_model_configs
from oodbench.progress import setup_logging
from oodbench.text import TextTower, encode_tokens
from oodbench.toyworld.captions import all_captions, unique_batch_captions
from oodbench.toyworld.quickeval import EvalImages, eval_images, summarise
from oodbench.toyworld.render import render_scene
from oodbench.toyworld.scene import GENERATOR_VERSION, Scene, sample_mixed_scene, scene_rng
from oodbench.toyworld.world import World, load_world

log = logging.getLogger("train_toyclip")

TRAIN_STREAM = "train"
EVAL_PROMPT = "a photo of a {}"


class CompactEmbedding(nn.Module):
    """Stands in for a token embedding during training: only the rows of ``used_ids`` are parameters."""

    def __init__(self, full: nn.Embedding, used_ids: torch.Tensor) -> None:
        super().__init__()
        lookup = torch.full((full.num_embeddings,), -1, dtype=torch.long)
        lookup[used_ids] = torch.arange(len(used_ids))
        self.register_buffer("lookup", lookup, persistent=False)
        self.register_buffer("used_ids", used_ids.clone(), persistent=False)
        self.weight = nn.Parameter(full.weight.detach()[used_ids].clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        compact = self.lookup[ids]
        if bool((compact < 0).any()):
            raise ValueError("a caption uses a token outside the world's vocabulary")
        return F.embedding(compact, self.weight)

    def write_back(self, full: nn.Embedding) -> None:
        with torch.no_grad():
            full.weight[self.used_ids] = self.weight


def world_token_ids(tokenizer: Callable[..., torch.Tensor], world: World) -> torch.Tensor:
    """Every token id a caption or a benchmark prompt of this world can contain (plus padding)."""
    words = {*world.object_names, *world.colours, *world.sizes, *world.texture_words,
             *world.position_phrases.values()}
    templates = [f.template for f in (*world.object_captions, *world.texture_captions)]
    texts = sorted(words) + [t.replace("{", "").replace("}", "") for t in templates] + ["texture background"]
    ids = tokenizer(texts).flatten().unique()
    return ids.sort().values


def build_pool(world: World, seed: int, size: int, texture_fraction: float) -> tuple[np.ndarray, list[Scene]]:
    """``size`` rendered training scenes ([N, 3, H, W] uint8) over every object class and texture."""
    objects = world.object_names
    scenes = [sample_mixed_scene(world, scene_rng(seed, TRAIN_STREAM, i), objects, texture_fraction)
              for i in range(size)]
    pool = np.empty((size, 3, world.image_size, world.image_size), dtype=np.uint8)
    t0 = time.time()
    for i, scene in enumerate(scenes):
        pool[i] = np.asarray(render_scene(world, scene)).transpose(2, 0, 1)
        if (i + 1) % 10000 == 0:
            log.info("rendered %d / %d training scenes (%.0f s)", i + 1, size, time.time() - t0)
    return pool, scenes


def normalise(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float, normalised exactly as open_clip's preprocess does."""
    return (torch.from_numpy(images).float().div_(255) - mean) / std


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's rule: no weight decay on gains, biases, norms and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        excluded = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if excluded else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def quick_eval(model: nn.Module, tower: TextTower, tokenizer: Callable[..., torch.Tensor], world: World,
               ev: EvalImages, mean: torch.Tensor, std: torch.Tensor) -> dict[str, float]:
    model.eval()
    feats = []
    for s in range(0, len(ev.images), 512):
        batch = normalise(ev.images[s:s + 512].transpose(0, 3, 1, 2).copy(), mean, std)
        feats.append(model.encode_image(batch, normalize=True))
    text = encode_tokens(tower, tokenizer([EVAL_PROMPT.format(c) for c in world.id_classes]))
    model.train()
    return summarise(torch.cat(feats), text, ev)


def save(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """The state dict as safetensors: the token embedding in fp16, everything else fp32."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    state["token_embedding.weight"] = state["token_embedding.weight"].half()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--pool-size", type=int, default=40000)
    p.add_argument("--texture-fraction", type=float, default=0.3)
    p.add_argument("--max-logit-scale", type=float, default=16.0,
                   help="cap on the learnable logit scale exp(t); a low cap keeps pushing negatives apart")
    p.add_argument("--model", default="toyclip", help="open_clip model config (oodbench/model_configs)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (0: torch's default); results depend on it; 1 is fastest on a "
                        "busy CPU")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--output", type=Path, default=Path("toyworld/assets/toyclip.safetensors"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.loss import ClipLoss

    register_model_configs()
    world = load_world()
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.manual_seed(args.seed)
    model = open_clip.create_model(args.model, pretrained=None)
    tokenizer = open_clip.get_tokenizer(args.model)
    full_embedding = model.token_embedding
    compact = CompactEmbedding(full_embedding, world_token_ids(tokenizer, world))
    model.token_embedding = compact
    tower = TextTower.of(model)
    log.info("model %s: %.2f M trainable parameters (%d of %d token rows)", args.model,
             sum(p.numel() for p in model.parameters()) / 1e6, len(compact.used_ids),
             full_embedding.num_embeddings)

    t_start = time.time()
    pool, scenes = build_pool(world, args.seed, args.pool_size, args.texture_fraction)
    ev = eval_images(world, args.seed, n_id_per_class=50, n_near=500, n_far=500)
    log.info("pool of %d scenes ready in %.0f s", len(scenes), time.time() - t_start)

    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = ClipLoss()
    rng = np.random.default_rng([args.seed, 1])
    model.train()
    t_train = time.time()
    running = 0.0
    metrics: dict[str, float] = {}
    for step in range(args.steps):
        lr = lr_at(step, args.steps, args.warmup, args.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = rng.choice(len(scenes), size=args.batch_size, replace=False)
        captions = unique_batch_captions(world, [scenes[i] for i in idx], rng)
        keep = [j for j, c in enumerate(captions) if c is not None]
        images = normalise(pool[idx[keep]], mean, std)
        tokens = tokenizer([captions[j] for j in keep])
        image_features = model.encode_image(images, normalize=True)
        text_features = encode_tokens(tower, tokens)
        loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(args.max_logit_scale))
        running += loss.item()
        if (step + 1) % args.log_every == 0:
            elapsed = time.time() - t_train
            log.info("step %d/%d loss %.3f lr %.2e scale %.1f | %.2f s/step, %.1f min left", step + 1,
                     args.steps, running / args.log_every, lr, float(model.logit_scale.exp()),
                     elapsed / (step + 1), elapsed / (step + 1) * (args.steps - step - 1) / 60)
            running = 0.0
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            metrics = quick_eval(model, tower, tokenizer, world, ev, mean, std)
            rounded = {k: round(v, 4) for k, v in metrics.items()}
            log.info("step %d quick eval: %s", step + 1, json.dumps(rounded))

    compact.write_back(full_embedding)
    model.token_embedding = full_embedding
    wall = time.time() - t_start
    metadata = {
        "model": args.model,
        "seed": str(args.seed),
        "steps": str(args.steps),
        "args": json.dumps({k: str(v) for k, v in vars(args).items()}),
        "generator_version": str(GENERATOR_VERSION),
        "world_sha256": world.sha256,
        "wall_seconds": f"{wall:.0f}",
        "quick_eval": json.dumps(metrics),
        "torch": torch.__version__,
        "example_caption": all_captions(world, scenes[0])[-1],
    }
    save(model, args.output, metadata)
    size_mb = args.output.stat().st_size / 1e6
    log.info("saved %s (%.1f MB) after %.1f min: %s", args.output, size_mb, wall / 60, json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
