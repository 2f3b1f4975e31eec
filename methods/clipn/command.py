"""``oodbench train clipn``: the typer command (entry point ``clipn`` of the group ``oodbench.trainers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oodbench.methods.clipn.model import N_PROMPTS
from oodbench.methods.clipn.trainer import TrainConfig, train

_SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


def train_clipn(
    data: Annotated[str, typer.Option(
        help="Training pairs: a CSV/TSV of (image path, caption) (relative paths are resolved against the "
             "file's folder), or WebDataset .tar shards (a file, folder, glob or brace pattern like "
             "shards/{00000..00331}.tar; join several with ::).")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints/, log.jsonl, config.json and the "
                                           "final clipn.safetensors (pass it to --clipn-checkpoint).")]
    = Path("runs/clipn"),
    model: Annotated[str, typer.Option(help="open_clip model name of the frozen backbone.")] = "ViT-B-16",
    pretrained: Annotated[str, typer.Option(
        help="open_clip pretrained tag, a weights file, a bundled name, or 'none'.")] = "laion2b_s34b_b88k",
    variant: Annotated[str, typer.Option(
        help="'learnable' (additive learnable 'no' prompts, the released CLIPN) or 'handcrafted' "
             "(the 'no' tower reads captions in negated templates).")] = "learnable",
    prompts: Annotated[int, typer.Option(help="Number P of learnable 'no' prompts.")] = N_PROMPTS,
    image_column: Annotated[str, typer.Option(help="CSV column holding image paths.")] = "filepath",
    caption_column: Annotated[str, typer.Option(help="CSV column holding captions.")] = "title",
    separator: Annotated[str | None, typer.Option(
        help="CSV separator (a character, or tab / comma / semicolon); default: tab for .tsv, "
             "else sniffed from the header.")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs (they set the schedule length).")] = 10,
    batch_size: Annotated[int, typer.Option(help="Pairs per process and micro-batch.")] = 512,
    accum_steps: Annotated[int, typer.Option(help="Micro-batches per optimiser step.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 3e-4,
    weight_decay: Annotated[float, typer.Option(
        help="AdamW weight decay (not on norms, biases, 1-d).")] = 0.2,
    beta1: Annotated[float, typer.Option(help="AdamW beta1.")] = 0.9,
    beta2: Annotated[float, typer.Option(help="AdamW beta2.")] = 0.98,
    eps: Annotated[float, typer.Option(help="AdamW epsilon.")] = 1e-6,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps before the cosine decay.")] = 0,
    precision: Annotated[str, typer.Option(
        help="auto (bf16 or fp16 AMP on GPUs, fp32 on CPUs), fp32, bf16 or fp16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N (under torchrun: the local GPU).")]
    = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes per process.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of data order, augmentation and prompt draws.")] = 0,
    scale: Annotated[float | None, typer.Option(
        help="Logit scale s of the loss; default min(exp(logit_scale), 100) of the backbone.")] = None,
    augment: Annotated[bool, typer.Option(
        help="RandomResizedCrop(scale 0.9-1.0) as the reference; --no-augment: resize + centre crop.")]
    = True,
    quote_templates: Annotated[bool, typer.Option(
        help="Hand-crafted variant: the templates verbatim as the reference read them (literal "
             "quotes, two trailing commas); --no-quote-templates strips both.")]
    = True,
    grad_checkpointing: Annotated[bool, typer.Option(help="Recompute activations of the 'no' tower.")]
    = False,
    save_every: Annotated[int, typer.Option(
        help="Also checkpoint every N optimiser steps (always: every epoch and at the end).")] = 0,
    keep_last: Annotated[int, typer.Option(help="Step checkpoints to keep (0 = all).")] = 3,
    max_steps: Annotated[int | None, typer.Option(
        help="Stop after this many optimiser steps (the schedule keeps its full length).")] = None,
    log_every: Annotated[int, typer.Option(help="Log (log.jsonl, progress bar) every N steps.")] = 10,
    resume: Annotated[bool, typer.Option(
        help="Continue the run in --out from its latest checkpoint (exactly: weights, optimiser, "
             "scaler, schedule, RNG and data position); starts fresh when there is none.")] = False,
) -> None:
    """Train CLIPN's "no" text encoder on image-caption pairs (frozen CLIP; torchrun for several GPUs)."""
    cfg = TrainConfig(
        data=data, out=out, model=model, pretrained=pretrained, variant=variant, n_prompts=prompts,
        image_column=image_column, caption_column=caption_column,
        separator=_SEPARATORS.get(separator, separator) if separator else None,
        epochs=epochs, batch_size=batch_size, accum_steps=accum_steps, lr=lr, weight_decay=weight_decay,
        beta1=beta1, beta2=beta2, eps=eps, warmup=warmup, precision=precision, device=device,
        workers=workers, seed=seed, scale=scale, augment=augment, quote_templates=quote_templates,
        grad_checkpointing=grad_checkpointing, save_every=save_every, keep_last=keep_last,
        max_steps=max_steps, log_every=log_every, resume=resume)
    result = train(cfg)
    typer.echo(str(result.weights))
