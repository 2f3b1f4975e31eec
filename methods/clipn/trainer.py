"""Training CLIPN's "no" text tower (the recipe of xmed-lab/CLIPN ``src/run.sh``, with fixes).

Recipe defaults: AdamW (lr 3e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.2 except on tensors with
fewer than 2 dimensions and names containing "bn", "ln", "bias" or "logit_scale"), per-step cosine
schedule from lr to 0 with optional linear warm-up, 10 epochs, 512 pairs per process, AMP on the GPU
(bf16 where supported, else fp16 with a GradScaler), fp32 on the CPU, scale ``s = min(exp(logit_scale), 100)``
of the frozen backbone. The reference used 4 GPUs x 512 = 2048 pairs per step on CC3M.

Scale-out: launched with ``torchrun`` the same command runs under DDP (NCCL on GPUs, Gloo on CPUs); the
features are all-gathered so every rank computes the loss over the global batch (see ``losses.py``).
Rank 0 writes the run folder; on several nodes ``--out`` must be on a shared file system (``--resume``
reads it on every rank).
Gradient accumulation averages the losses of ``accum_steps`` micro-batches; each micro-batch's
contrastive negatives are that micro-batch's pairs only.

Determinism: the data order, augmentation and prompt draws are functions of (seed, epoch, index)
(``data.py``), the schedule a function of the step, and a checkpoint holds model, optimiser, GradScaler,
RNG states and the step, so an interrupted run resumed with ``--resume`` ends where an uninterrupted one
does (bit for bit on the CPU, where deterministic kernels are switched on for the run). The schedule
length is ``epochs x steps_per_epoch``; ``--max-steps`` only stops early, it does not shorten the schedule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from oodbench.distributed import setup_distributed
from oodbench.errors import OodbenchError, TrainingError
from oodbench.methods.clipn.checkpoint import (
    WEIGHTS_NAME,
    checkpoint_meta,
    latest_checkpoint,
    resume_point,
    run_facts,
    write_checkpoint,
)
from oodbench.methods.clipn.data import (
    CaptionCollate,
    ImageRecipe,
    PairDataset,
    StepBatchSampler,
    StepPlan,
    open_pairs,
)
from oodbench.methods.clipn.losses import MAX_SCALE, clipn_loss
from oodbench.methods.clipn.model import CLIPN, N_PROMPTS, VARIANTS, load_prompt_pairs
from oodbench.methods.clipn.runtime import (
    capture_rng,
    deterministic_kernels,
    resolve_precision,
    restore_rng,
)

log = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
#: Facts of the training data that identify it without naming where it lies (written into the weights).
DATA_FACTS = ("kind", "n", "size", "shards")
#: Settings that fix what a run computes; a resumed run must keep them (the others may change).
RUN_DEFINING = (
    "image_column", "caption_column", "separator", "model", "pretrained", "variant", "n_prompts",
    "epochs", "batch_size", "accum_steps", "lr", "weight_decay", "beta1", "beta2", "eps", "warmup",
    "seed", "scale", "augment", "quote_templates",
)


@dataclass
class TrainConfig:
    """Everything ``oodbench train clipn`` takes (CLI flags map one to one)."""

    data: str
    out: Path = Path("runs/clipn")
    model: str = "ViT-B-16"
    pretrained: str = "laion2b_s34b_b88k"
    variant: str = "learnable"
    n_prompts: int = N_PROMPTS
    image_column: str = "filepath"
    caption_column: str = "title"
    separator: str | None = None
    epochs: int = 10
    batch_size: int = 512
    accum_steps: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup: int = 0
    precision: str = "auto"
    device: str = "auto"
    workers: int = 4
    seed: int = 0
    scale: float | None = None
    augment: bool = True
    quote_templates: bool = True
    grad_checkpointing: bool = False
    save_every: int = 0
    keep_last: int = 3
    max_steps: int | None = None
    log_every: int = 10
    resume: bool = False
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}

    def check(self) -> None:
        """Every setting inside its domain, or an :class:`OodbenchError` naming the option (before any work)."""
        if self.variant not in VARIANTS:
            raise OodbenchError(
                f"Unknown CLIPN variant {self.variant!r}. Choose one of: {', '.join(VARIANTS)}.")
        rules: list[tuple[str, Any, Callable[[Any], bool], str]] = [
            ("epochs", self.epochs, lambda v: v >= 1, "at least 1"),
            ("batch_size", self.batch_size, lambda v: v >= 1, "at least 1"),
            ("accum_steps", self.accum_steps, lambda v: v >= 1, "at least 1"),
            ("log_every", self.log_every, lambda v: v >= 1, "at least 1"),
            ("prompts", self.n_prompts, lambda v: v >= 1 or self.variant == "handcrafted", "at least 1"),
            ("lr", self.lr, lambda v: math.isfinite(v) and v > 0, "a positive finite number"),
            ("weight_decay", self.weight_decay, lambda v: math.isfinite(v) and v >= 0, "finite and >= 0"),
            ("beta1", self.beta1, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("beta2", self.beta2, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("eps", self.eps, lambda v: math.isfinite(v) and v > 0, "a positive finite number"),
            ("warmup", self.warmup, lambda v: v >= 0, "at least 0"),
            ("workers", self.workers, lambda v: v >= 0, "at least 0"),
            ("save_every", self.save_every, lambda v: v >= 0, "at least 0"),
            ("keep_last", self.keep_last, lambda v: v >= 0, "at least 0"),
            ("scale", self.scale, lambda v: v is None or (math.isfinite(v) and v > 0), "a positive finite number"),
            ("max_steps", self.max_steps, lambda v: v is None or v >= 1, "at least 1"),
        ]
        for name, value, ok, domain in rules:
            if not ok(value):
                raise OodbenchError(f"--{name.replace('_', '-')} is {value}, but it must be {domain}. "
                                    "Run `oodbench train clipn --help` for what each option means.")


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves: its final step, the weights file, the last logged losses."""

    step: int
    total_steps: int
    weights: Path
    last: dict[str, float]


# --------------------------------------------------------------------------------------------- pure pieces
def cosine_lr(step: int, base_lr: float, total_steps: int, warmup: int = 0) -> float:
    """Learning rate at 0-based optimiser ``step``: linear warm-up to ``base_lr`` over ``warmup`` steps
    (``base_lr * (step + 1) / warmup``), then ``0.5 * (1 + cos(pi * e / (total - warmup))) * base_lr``
    with ``e = step - warmup`` (open_clip's ``cosine_lr``, used by CLIPN with warm-up 0)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(total_steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span)) * base_lr


def no_decay(name: str, param: torch.Tensor) -> bool:
    """The reference's weight-decay exclusion: ndim < 2, or "bn", "ln", "bias", "logit_scale" in the name."""
    return param.ndim < 2 or any(s in name for s in ("bn", "ln", "bias", "logit_scale"))


def param_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decayed / not decayed, trainable parameters only, in a stable order."""
    decay, keep = [], []
    for name, p in named:
        if p.requires_grad:
            (keep if no_decay(name, p) else decay).append(p)
    return [{"params": keep, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


# --------------------------------------------------------------------------------------------- plumbing
def check_resumable(state: dict[str, Any], cfg: TrainConfig, world_size: int, data: dict[str, Any]) -> None:
    """A resumed run must keep the settings in :data:`RUN_DEFINING`, the world size and the data itself."""
    saved, now = state["config"], cfg.to_json()
    diff = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in RUN_DEFINING if saved.get(k) != now.get(k)]
    if int(state["world_size"]) != world_size:
        diff.append(f"world size: {state['world_size']} -> {world_size}")
    if state["data"] != data:
        diff.append(f"data: {state['data']} -> {data}")
    if diff:
        raise TrainingError(
            f"--resume in {cfg.out} would continue a run with other settings ({'; '.join(diff)}). The data "
            "position and schedule depend on them: resume with the original settings, or start a new run "
            "with another --out.")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (left by the interrupted attempt being resumed)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, on_step: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train (or resume) a CLIPN "no" tower as configured; returns where it stopped.

    ``on_step(step, losses)`` is called after every optimiser step (tests use it to interrupt a run).
    """
    from oodbench.backbone import Backbone, BackboneSpec
    from oodbench.progress import progress_bar

    cfg.check()
    env = setup_distributed(cfg.device)
    try:
        precision = resolve_precision(cfg.precision, env.device)
        if env.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        out = Path(cfg.out).expanduser()

        backbone = Backbone.load(BackboneSpec(cfg.model, cfg.pretrained, device=str(env.device)))
        clipn = CLIPN.for_variant(backbone.model, cfg.variant, cfg.n_prompts)
        clipn.no.to(env.device)
        if cfg.grad_checkpointing:
            clipn.no.transformer_no.grad_checkpointing = True
        scale = cfg.scale if cfg.scale is not None else min(backbone.logit_scale, MAX_SCALE)

        source = open_pairs(cfg.data, cfg.image_column, cfg.caption_column, cfg.separator)
        data_fingerprint = source.fingerprint()
        plan = StepPlan(len(source), cfg.batch_size, env.world_size, env.rank, cfg.accum_steps, cfg.seed)
        if plan.steps_per_epoch < 1:
            raise TrainingError(
                f"{cfg.data} holds {len(source)} pairs, fewer than one optimiser step of "
                f"{plan.global_batch * cfg.accum_steps} (batch size {cfg.batch_size} x {env.world_size} "
                f"process(es) x {cfg.accum_steps} accumulation steps). Lower --batch-size.")
        total = cfg.epochs * plan.steps_per_epoch
        stop = min(total, cfg.max_steps) if cfg.max_steps else total

        optimizer = torch.optim.AdamW(param_groups(clipn.no.named_parameters(), cfg.weight_decay), lr=cfg.lr,
                                      betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
        scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        torch.manual_seed(cfg.seed + env.rank)
        random.seed(cfg.seed + env.rank)

        start = 0
        if latest_checkpoint(out) is not None and not cfg.resume:
            raise TrainingError(f"{out} already holds checkpoints of a run. Pass --resume to continue it, or "
                                "choose another --out.")
        found = resume_point(out) if cfg.resume else None
        if found is not None:
            state = found.state
            check_resumable(state, cfg, env.world_size, data_fingerprint)
            clipn.no.load_checked(found.no_state, str(found.folder))
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            restore_rng(state["rng"])
            start = int(state["step"])
            log.info("resuming %s at step %d of %d", found.folder, start, total)
        elif cfg.resume:
            log.info("--resume: no checkpoint in %s yet, starting a new run", out)

        if env.main:
            out.mkdir(parents=True, exist_ok=True)
            (out / CONFIG_NAME).write_text(json.dumps(
                {**cfg.to_json(), "world_size": env.world_size, "precision_used": precision,
                 "scale_used": scale, "steps_per_epoch": plan.steps_per_epoch, "total_steps": total,
                 "pairs": len(source), "backbone": backbone.identity}, indent=1, default=str))
            _truncate_log(out / LOG_NAME, start)
        env.barrier()

        yes_t, no_t = load_prompt_pairs(verbatim=cfg.quote_templates)
        dataset = PairDataset(source, ImageRecipe.of_model(backbone.model, cfg.augment), cfg.seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=StepBatchSampler(plan, start, stop), num_workers=cfg.workers,
            collate_fn=CaptionCollate(backbone.tokenizer, clipn.no.n_prompts, yes_t, no_t),
            pin_memory=env.device.type == "cuda", persistent_workers=False)
        no_model: nn.Module = clipn.no
        if env.world_size > 1:
            no_model = nn.parallel.DistributedDataParallel(
                clipn.no, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        # The weights header holds only what the weights depend on (no paths, dates or versions), so that
        # identical trainings give identical files; the rest of the run's facts go into run.json.
        cfg_json = cfg.to_json()
        run_meta = {"config": {k: cfg_json[k] for k in RUN_DEFINING}, "scale": scale,
                    "steps_per_epoch": plan.steps_per_epoch, "total_steps": total,
                    "data": {k: v for k, v in data_fingerprint.items() if k in DATA_FACTS}}

        def save(step: int, losses: dict[str, float]) -> None:
            if env.main:
                # Rank 0's RNG state is kept (and restored on every rank): the data path draws from
                # (seed, epoch, index)-seeded streams, not from these.
                state = {"step": step, "optimizer": optimizer.state_dict(),
                         "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                         "rng": capture_rng(), "config": cfg.to_json(), "world_size": env.world_size,
                         "data": data_fingerprint}
                meta = checkpoint_meta(clipn, backbone.identity, step=step, epoch=step / plan.steps_per_epoch,
                                       losses=losses, **run_meta)
                facts = run_facts(config=cfg_json, data=data_fingerprint, world_size=env.world_size,
                                  precision_used=precision, device=str(env.device))
                write_checkpoint(out, step, clipn, meta, state, keep_last=cfg.keep_last, facts=facts)
            env.barrier()

        clipn.train()
        sums = dict.fromkeys(("loss", "loss_yes", "loss_no", "loss_tso"), 0.0)
        step_sums = dict(sums)  # this optimiser step's losses only: what a checkpoint records
        step, count, last = start, 0, {}
        t0, samples = time.perf_counter(), 0
        with progress_bar(not (cfg.progress and env.main), _info_column()) as bar, \
                deterministic_kernels(env.device.type == "cpu"):
            task = bar.add_task("training CLIPN", total=stop, completed=start, info="")
            for micro, batch in enumerate(loader):
                a = micro % cfg.accum_steps
                if a == 0:
                    for group in optimizer.param_groups:
                        group["lr"] = cosine_lr(step, cfg.lr, total, cfg.warmup)
                sync = contextlib.nullcontext()
                if env.world_size > 1 and a < cfg.accum_steps - 1:
                    sync = no_model.no_sync()  # type: ignore[operator]
                with sync:
                    with torch.autocast(env.device.type, dtype=autocast_dtype,
                                        enabled=autocast_dtype is not None):
                        images = batch["images"].to(env.device, non_blocking=True)
                        f = clipn.encode_image(images)
                        g = clipn.encode_text(batch["tokens"].to(env.device))
                        choice = batch.get("choice")
                        g_no = no_model(batch["tokens_no"].to(env.device),
                                        choice.to(env.device) if choice is not None else None)
                    loss = clipn_loss(f, g, g_no, scale, gather=env.world_size > 1)
                    values = loss.as_floats()
                    if not math.isfinite(values["loss"]):
                        done = latest_checkpoint(out)
                        raise TrainingError(
                            f"The CLIPN loss became {values['loss']} at step {step + 1} (yes "
                            f"{values['loss_yes']:.4g}, no {values['loss_no']:.4g}, "
                            f"tso {values['loss_tso']:.4g}). "
                            f"Nothing was saved for this step; the last good checkpoint is "
                            f"{done if done else '(none yet)'}. Try a lower --lr, --precision fp32 or bf16, "
                            "and continue with --resume.")
                    scaler.scale(loss.total / cfg.accum_steps).backward()
                for k, v in values.items():
                    sums[k] += v
                    step_sums[k] += v
                count += 1
                samples += len(images) * env.world_size
                if a < cfg.accum_steps - 1:
                    continue
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last = {k: v / count for k, v in sums.items()}
                step_losses = {k: v / cfg.accum_steps for k, v in step_sums.items()}
                step_sums = dict.fromkeys(step_sums, 0.0)
                if step % cfg.log_every == 0 or step == stop:
                    rate = samples / max(time.perf_counter() - t0, 1e-9)
                    if env.main:
                        record = {"step": step, "epoch": round(step / plan.steps_per_epoch, 4),
                                  "lr": optimizer.param_groups[0]["lr"], **last,
                                  "samples_per_s": round(rate, 2), "time": time.time()}
                        with (out / LOG_NAME).open("a") as fh:
                            fh.write(json.dumps(record) + "\n")
                    bar.update(task, info=f"loss {last['loss']:.4f} (yes {last['loss_yes']:.3f} "
                                          f"no {last['loss_no']:.3f} tso {last['loss_tso']:.3f}) "
                                          f"{rate:.1f} img/s")
                    sums, count, t0, samples = dict.fromkeys(sums, 0.0), 0, time.perf_counter(), 0
                bar.update(task, completed=step)
                if (cfg.save_every and step % cfg.save_every == 0) or step % plan.steps_per_epoch == 0 \
                        or step == stop:
                    save(step, step_losses)
                if on_step is not None:
                    on_step(step, last)
        log.info("CLIPN training stopped at step %d of %d; weights: %s", step, total, out / WEIGHTS_NAME)
        return TrainResult(step, total, out / WEIGHTS_NAME, last)
    finally:
        if env.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _info_column() -> Any:
    from rich.progress import TextColumn

    return TextColumn("{task.fields[info]}")
