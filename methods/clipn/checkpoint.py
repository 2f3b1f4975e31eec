"""CLIPN checkpoint I/O: oodbench's compact files, the released (official) files, and training state.

**oodbench's format** (``clipn.safetensors``): only what is trainable, i.e. the "no" tower and
``prompt_no`` under the reference's key names, plus JSON metadata in the safetensors header (variant,
prompt count, the backbone's identity and a fingerprint of its frozen weights, training step and
config). Loading it onto a backbone whose frozen weights have another fingerprint is a
:class:`CheckpointError`: the "no" tower is only meaningful next to the towers it was trained with.

**The released CLIPN checkpoints** (xmed-lab/CLIPN, ``epoch_10.pt``): a ``torch.save`` dict with
``state_dict`` (every key prefixed ``module.``), ``epoch``, ``name``, ``optimizer``, ``scaler``. Renames
applied, and nothing else: strip ``module.``; keys whose first part ends in ``_no`` (``transformer_no``,
``token_embedding_no``, ``positional_embedding_no``, ``ln_final_no``, ``text_projection_no``,
``prompt_no``) form the "no" tower; all other keys are the full backbone (image tower, "yes" text tower,
``logit_scale``). Both parts are checked strictly (missing / unexpected keys listed). The file carries the
full backbone, but the benchmark's image features come from the backbone named by ``--model`` /
``--pretrained``, so the file's image and "yes" towers must *equal* that backbone (``logit_scale`` is
ignored: the reference fixes the scale at 100 at inference); otherwise loading fails and names the
first differing tensors. The released ViT-B-16 files need ``--model ViT-B-16 --pretrained
laion2b_s34b_b88k``. ``prompt_no`` may be [P, context, width] or the mean [context, width] (LAFT's form).
Every file is read through :mod:`oodbench.safeload` (``torch.load(weights_only=True)`` forced, never a
fallback): no code is unpickled.

**Training state** (``state.pt`` beside each checkpoint's weights): optimiser, GradScaler, step, RNG
states and the run's config, saved with plain tensors / containers only and read the same way. A
checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` holding ``clipn.safetensors``, ``state.pt``,
``run.json`` (the facts of the run that wrote it: date, versions, paths) and ``checksums.json`` (sha256 of
the other three), written and fsynced under a temporary name and renamed into place;
``checkpoints/LATEST`` names the newest complete one. The weights file is deterministic: its header holds
only what the tensors depend on (variant, backbone, run-defining settings, step, that step's losses), so
two identical trainings, or one resumed after a kill, give byte-identical files with the same sha256.
``--resume`` starts from the newest checkpoint whose checksums and files are intact; a damaged one is
skipped with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodbench.bundled import bundled
from oodbench.errors import CheckpointError, OodbenchError
from oodbench.files import (
    atomic_copy,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    make_temp_dir,
    sweep_stale_temps,
    write_error,
)
from oodbench.methods.clipn.model import CLIPN, key_report
from oodbench.safeload import file_kind, read_safetensors, torch_load

log = logging.getLogger(__name__)

FORMAT = "oodbench-clipn"
FORMAT_VERSION = 1
META_KEY = "oodbench_clipn"
WEIGHTS_NAME = "clipn.safetensors"
STATE_NAME = "state.pt"
RUN_NAME = "run.json"
CHECKSUMS_NAME = "checksums.json"
LATEST_NAME = "LATEST"
TEMP_PREFIXES = (".tmp-", ".trash-")
#: Identity fields worth showing when a checkpoint does not fit (precision and preprocessing do not matter).
IDENTITY_FIELDS = ("model", "pretrained", "checkpoint", "checkpoint_sha256", "init_seed", "quick_gelu")

# --------------------------------------------------------------------------------------------- fingerprint
def backbone_fingerprint(model: nn.Module, sample: int = 1 << 16) -> str:
    """sha256 over every frozen tensor's name, shape and (at most ``sample``, evenly strided) values.

    Cheap (milliseconds for ViT-B-16), independent of device, and different for any two differently
    trained backbones. Tensors of a :class:`CLIPN`'s "no" part are not included: pass the open_clip model.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        stride = max(1, math.ceil(flat.numel() / sample))
        values = flat[::stride].to("cpu", torch.float32).contiguous()
        h.update(f"{name}|{tuple(tensor.shape)}|".encode())
        h.update(values.numpy().tobytes())
    return h.hexdigest()


def identity_summary(identity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: identity[k] for k in IDENTITY_FIELDS if k in identity}


# --------------------------------------------------------------------------------------------- reading
@dataclass
class ClipnCheckpoint:
    """A CLIPN checkpoint as read from disk, before it is put onto a backbone."""

    path: Path
    kind: str  # "oodbench" or "official"
    no_state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    backbone_state: dict[str, torch.Tensor] | None = None  # official files only

    @property
    def n_prompts(self) -> int:
        prompt = self.no_state.get("prompt_no")
        return 0 if prompt is None else int(prompt.shape[0])

    @property
    def variant(self) -> str:
        return "learnable" if self.n_prompts else "handcrafted"


def read_checkpoint(path: Path) -> ClipnCheckpoint:
    """Read oodbench's safetensors file or a released CLIPN torch file (detected by content)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"The CLIPN checkpoint {path} does not exist. Pass --clipn-checkpoint FILE "
                              "(a file written by `oodbench train clipn`, or a released CLIPN epoch_10.pt).")
    if file_kind(path) == "safetensors":
        return _read_safetensors(path)
    return _read_official(path)


def _read_safetensors(path: Path) -> ClipnCheckpoint:
    state, header = read_safetensors(path, what="CLIPN checkpoint")
    meta_text = header.get(META_KEY)
    if meta_text is None:
        raise CheckpointError(f"{path} is a safetensors file but not a CLIPN checkpoint written by oodbench "
                              f"(no {META_KEY!r} metadata).")
    meta = json.loads(meta_text)
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has CLIPN format {meta.get('format')!r} version {meta.get('format_version')}; this "
            f"oodbench reads {FORMAT} <= {FORMAT_VERSION}.")
    return ClipnCheckpoint(path, "oodbench", state, meta)


def _read_official(path: Path) -> ClipnCheckpoint:
    # memory-mapped: a released file is ~1 GB, mostly optimiser state that is never read
    blob = torch_load(path, what="CLIPN checkpoint (oodbench's clipn.safetensors or a released CLIPN .pt)",
                      mmap=True)
    state = blob.get("state_dict") if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        keys = list(blob)[:10] if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path} is a torch file but not a released CLIPN checkpoint: no 'state_dict' "
                              f"(found {keys}).")
    no_state, backbone_state = split_official_state(state)
    meta = {"epoch": blob.get("epoch"), "name": blob.get("name")}
    return ClipnCheckpoint(path, "official", no_state, meta, backbone_state)


def split_official_state(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The documented renames: strip ``module.``; ``*_no`` keys -> "no" tower, the rest -> backbone.

    A [context, width] ``prompt_no`` (already averaged, as LAFT stores it) becomes [1, context, width].
    """
    no_state: dict[str, torch.Tensor] = {}
    backbone_state: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name.split(".", 1)[0].endswith("_no"):
            no_state[name] = value
        else:
            backbone_state[name] = value
    prompt = no_state.get("prompt_no")
    if prompt is not None and prompt.ndim == 2:
        no_state["prompt_no"] = prompt.unsqueeze(0)
    return no_state, backbone_state


# --------------------------------------------------------------------------------------------- loading
def load_clipn(
    path: Path, model: nn.Module, identity: Mapping[str, Any] | None = None,
) -> tuple[CLIPN, ClipnCheckpoint]:
    """Build a :class:`CLIPN` on the open_clip ``model`` from the checkpoint at ``path``, strictly checked.

    ``identity`` (the backbone's) is only used to word the error when the checkpoint belongs elsewhere.
    """
    ckpt = read_checkpoint(path)
    clipn = CLIPN(model, n_prompts=ckpt.n_prompts)
    if ckpt.kind == "official":
        check_official_keys(ckpt, model, clipn)
        check_official_backbone(ckpt, model)
    else:
        want = ckpt.meta.get("backbone_fingerprint")
        have = backbone_fingerprint(model)
        if want != have:
            raise CheckpointError(
                f"The CLIPN checkpoint {path} was trained on another backbone "
                f"({json.dumps(ckpt.meta.get('backbone', {}), sort_keys=True)}) than the one loaded now "
                f"({json.dumps(identity_summary(identity or {}), sort_keys=True)}): the frozen weights' "
                "fingerprints differ. Run with the --model / --pretrained it was trained from.")
    clipn.no.to(next(model.parameters()).device)
    clipn.no.load_checked(ckpt.no_state, str(path))
    clipn.eval()
    return clipn, ckpt


def check_official_keys(ckpt: ClipnCheckpoint, model: nn.Module, clipn: CLIPN) -> None:
    """Strict key check of a released file after the renames: one error lists every missing / unexpected key.

    Expected: the backbone's state-dict keys and the "no" tower's (``logit_scale`` optional).
    """
    assert ckpt.backbone_state is not None
    want = (set(model.state_dict()) | set(clipn.no.state_dict())) - {"logit_scale"}
    have = (set(ckpt.backbone_state) | set(ckpt.no_state)) - {"logit_scale"}
    missing, unexpected = sorted(want - have), sorted(have - want)
    if missing or unexpected:
        raise CheckpointError(
            f"{ckpt.path} does not fit CLIPN on this backbone after the documented renames (strip "
            f"'module.'; '*_no' keys form the 'no' tower). {key_report(missing, unexpected)} The released "
            "CLIPN ViT-B-16 files need --model ViT-B-16 --pretrained laion2b_s34b_b88k.")


def check_official_backbone(ckpt: ClipnCheckpoint, model: nn.Module, rtol: float = 1e-3) -> None:
    """The released file's image / "yes" towers must equal the backbone's, within ``rtol``.

    Call after :func:`check_official_keys`. ``logit_scale`` is ignored. The tolerance (relative to each
    tensor's largest magnitude) lets a file stored in half precision pass; a differently trained
    backbone differs by O(1).
    """
    assert ckpt.backbone_state is not None
    own = {k: v for k, v in model.state_dict().items() if k != "logit_scale"}
    theirs = ckpt.backbone_state
    differing = []
    for k in sorted(own):
        a, b = own[k].detach().float().cpu(), theirs[k].float()
        if a.shape != b.shape:
            differing.append(f"{k} (shape {tuple(b.shape)} vs {tuple(a.shape)})")
            continue
        err = float((a - b).abs().max()) if a.numel() else 0.0
        if err > rtol * float(a.abs().max() if a.numel() else 0.0) + 1e-6:
            differing.append(f"{k} (max difference {err:.3g})")
    if differing:
        raise CheckpointError(
            f"The image / 'yes' text towers stored in {ckpt.path} differ from the loaded backbone's in "
            f"{len(differing)} tensor(s), e.g. {', '.join(differing[:5])}. CLIPN keeps these towers frozen, "
            "so the file must be used with the backbone it was trained from (the released ViT-B-16 files: "
            "--model ViT-B-16 --pretrained laion2b_s34b_b88k).")


# --------------------------------------------------------------------------------------------- writing
def weights_bytes(clipn: CLIPN, meta: Mapping[str, Any]) -> bytes:
    """The safetensors bytes of ``clipn``'s trainable part with ``meta``: a function of both, nothing else."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in clipn.no.state_dict().items()}
    full_meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "variant": clipn.variant,
                 "n_prompts": clipn.no.n_prompts, **meta}
    return save(tensors, metadata={META_KEY: json.dumps(full_meta, sort_keys=True, default=str)})


def save_weights(path: Path, clipn: CLIPN, meta: Mapping[str, Any]) -> None:
    """Write the trainable part of ``clipn`` and ``meta`` to ``path`` as safetensors, atomically (fsynced)."""
    atomic_write_bytes(path, weights_bytes(clipn, meta))


def checkpoint_meta(clipn: CLIPN, identity: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What a weights file's header holds: the backbone it belongs to and ``extra`` (deterministic facts only;
    dates, versions and paths go into ``run.json``, see :func:`run_facts`)."""
    return {"backbone": identity_summary(identity), "backbone_fingerprint": backbone_fingerprint(clipn.clip),
            **extra}


def run_facts(**extra: Any) -> dict[str, Any]:
    """The facts of a run that a weights file must not depend on: date, versions, and ``extra`` (paths...)."""
    import platform

    from oodbench.version import __version__

    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "oodbench_version": __version__,
            "torch": torch.__version__, "python": platform.python_version(), **extra}


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checkpoint(root: Path, step: int, clipn: CLIPN, meta: Mapping[str, Any],
                     state: Mapping[str, Any], keep_last: int = 0, facts: Mapping[str, Any] | None = None) -> Path:
    """Write ``root/checkpoints/step-N/`` atomically and point LATEST at it (see the module docstring).

    Also refreshes ``root/clipn.safetensors`` (the file to pass to ``--clipn-checkpoint``) and, with
    ``keep_last > 0``, deletes all but the newest ``keep_last`` step folders. A failed write (disk full)
    leaves the previous checkpoints as they were and is an :class:`OodbenchError` saying how to go on.
    """
    ckpts = root / "checkpoints"
    final = ckpts / step_dir_name(step)
    try:
        ckpts.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(ckpts, TEMP_PREFIXES)
        tmp = make_temp_dir(ckpts, prefix=f".tmp-{final.name}-")
    except OSError as exc:
        raise _checkpoint_write_error(root, final, exc) from None
    try:
        save_weights(tmp / WEIGHTS_NAME, clipn, meta)
        with (tmp / STATE_NAME).open("wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        atomic_write_text(tmp / RUN_NAME, json.dumps(dict(facts or run_facts()), indent=1, default=str))
        sums = {name: _sha256(tmp / name) for name in (WEIGHTS_NAME, STATE_NAME, RUN_NAME)}
        atomic_write_text(tmp / CHECKSUMS_NAME, json.dumps(sums, indent=1, sort_keys=True))
        fsync_dir(tmp)
        if final.exists():  # a folder of an earlier, interrupted or damaged attempt at the same step
            trash = make_temp_dir(ckpts, prefix=f".trash-{final.name}-")
            final.rename(trash / final.name)
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(final)
        fsync_dir(ckpts)
        atomic_write_text(ckpts / LATEST_NAME, final.name + "\n")
        atomic_copy(final / WEIGHTS_NAME, root / WEIGHTS_NAME)
    except OSError as exc:
        raise _checkpoint_write_error(root, final, exc) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if keep_last > 0:
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _checkpoint_write_error(root: Path, final: Path, exc: OSError) -> OodbenchError:
    done = latest_checkpoint(root)
    then = (f"with --resume to continue from the last complete checkpoint, {done}" if done and done != final
            else "with --resume" if done else "")
    return write_error("the CLIPN checkpoint", final, exc, then=then)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete step folders under ``root/checkpoints``, oldest first."""
    ckpts = root / "checkpoints"
    if not ckpts.is_dir():
        return []
    found = [p for p in ckpts.glob("step-*") if (p / WEIGHTS_NAME).is_file() and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    """The folder LATEST names (if complete), else the newest complete step folder, else None."""
    pointer = root / "checkpoints" / LATEST_NAME
    if pointer.is_file():
        cand = root / "checkpoints" / pointer.read_text().strip()
        if (cand / WEIGHTS_NAME).is_file() and (cand / STATE_NAME).is_file():
            return cand
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_state(folder: Path) -> dict[str, Any]:
    state = torch_load(folder / STATE_NAME, what="CLIPN training state")
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"The training state {folder / STATE_NAME} is not one written by oodbench "
                              "(no 'step').")
    return state


def verify_checkpoint(folder: Path) -> None:
    """Check a step folder against its ``checksums.json``; a :class:`CheckpointError` says what is wrong.

    Folders written before checksums existed pass when their files are readable (checked by the reader).
    """
    record = folder / CHECKSUMS_NAME
    if not record.is_file():
        return
    try:
        sums = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{record} is unreadable ({exc})") from None
    for name, want in sums.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        have = _sha256(path)
        if have != want:
            raise CheckpointError(f"{path} has sha256 {have[:12]}..., its checksum record says {want[:12]}...")


@dataclass
class ResumePoint:
    """An intact checkpoint to continue from: its folder, training state and "no"-tower weights."""

    folder: Path
    state: dict[str, Any]
    no_state: dict[str, torch.Tensor]


def resume_point(root: Path) -> ResumePoint | None:
    """The newest intact checkpoint under ``root`` (LATEST first), skipping damaged ones with a warning.

    Returns None when there is no checkpoint; raises a :class:`CheckpointError` when there are some but
    none is intact.
    """
    candidates = list_checkpoints(root)[::-1]
    latest = latest_checkpoint(root)
    if latest is not None and latest in candidates:
        candidates.remove(latest)
        candidates.insert(0, latest)
    if not candidates:
        return None
    problems = []
    for folder in candidates:
        try:
            verify_checkpoint(folder)
            state = read_state(folder)
            no_state = read_checkpoint(folder / WEIGHTS_NAME).no_state
        except CheckpointError as exc:
            problems.append(f"{folder.name}: {exc}")
            log.warning("checkpoint %s is damaged (%s); trying the one before it", folder, exc)
            continue
        if problems:
            log.warning("resuming from %s instead of the damaged newer checkpoint(s): %s", folder.name,
                        "; ".join(problems))
        return ResumePoint(folder, state, no_state)
    raise CheckpointError(f"Every checkpoint under {root / 'checkpoints'} is damaged ({'; '.join(problems)}). "
                          "Start a new run with another --out (or delete the checkpoints folder).")


def checkpoint_label(value: str | Path | None, path: Path) -> str:
    """How provenance and cache metadata name a checkpoint: its bundled name, else its file name (with its
    sha256 beside it, never the local absolute path, which differs between machines)."""
    return str(value) if value is not None and str(value) in bundled("clipn") else path.name


def resolve_checkpoint(value: str | Path | None) -> Path:
    """The file named by ``--clipn-checkpoint``: a path, or a bundled name (``oodbench.bundled.bundled("clipn")``)."""
    shipped = bundled("clipn")
    names = ", ".join(shipped.names()) or "none yet"
    if value is None or str(value).strip() == "":
        raise CheckpointError(
            "CLIPN (clipn-ctw / clipn-atd) needs a trained 'no' text encoder, and none was given. Pass "
            "--clipn-checkpoint FILE: a clipn.safetensors written by `oodbench train clipn --data pairs.csv "
            "--model M --pretrained P` for this backbone, or a released CLIPN epoch_10.pt (ViT-B-16, "
            f"laion2b_s34b_b88k); or a bundled name ({names}).")
    if str(value) in shipped:
        return shipped.get(str(value)).path()
    path = Path(value).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"--clipn-checkpoint {str(value)!r} is neither an existing file nor a bundled CLIPN checkpoint "
            f"({names}). Train one with `oodbench train clipn` or pass the path of a released epoch_10.pt.")
    return path
