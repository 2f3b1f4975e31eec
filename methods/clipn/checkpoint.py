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
The file is read with ``torch.load(weights_only=True)``: no code is unpickled.

**Training state** (``state.pt`` beside each checkpoint's weights): optimiser, GradScaler, step, RNG
states and the run's config, saved with plain tensors / containers only and read with
``weights_only=True``. A checkpoint is a folder ``checkpoints/step-NNNNNNNN/`` written under a temporary
name and renamed into place; ``checkpoints/LATEST`` names the newest complete one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodbench.bundled import bundled
from oodbench.errors import CheckpointError
from oodbench.files import file_mode, make_temp_dir
from oodbench.methods.clipn.model import CLIPN, key_report

log = logging.getLogger(__name__)

FORMAT = "oodbench-clipn"
FORMAT_VERSION = 1
META_KEY = "oodbench_clipn"
WEIGHTS_NAME = "clipn.safetensors"
STATE_NAME = "state.pt"
LATEST_NAME = "LATEST"
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
    with path.open("rb") as fh:
        head = fh.read(9)  # safetensors: u64 little-endian header length, then the JSON header
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 27):
        return _read_safetensors(path)
    return _read_official(path)


def _read_safetensors(path: Path) -> ClipnCheckpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta_text = (fh.metadata() or {}).get(META_KEY)
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # noqa: BLE001 - any parse failure is an unreadable file
        raise CheckpointError(f"Could not read {path} as a safetensors file: {exc}.") from None
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
    try:
        try:  # memory-mapped: a released file is ~1 GB, mostly optimiser state that is never read
            blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # files in torch's legacy (non-zip) format cannot be mapped
                raise
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickled code, truncated files, other formats
        raise CheckpointError(
            f"Could not read {path} as a CLIPN checkpoint ({type(exc).__name__}: {str(exc)[:300]}). oodbench "
            "reads its own clipn.safetensors and the released CLIPN torch files, with weights_only=True "
            "(files that need code to be unpickled are refused).") from None
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
def save_weights(path: Path, clipn: CLIPN, meta: Mapping[str, Any]) -> None:
    """Write the trainable part of ``clipn`` and ``meta`` to ``path`` as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in clipn.no.state_dict().items()}
    full_meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "variant": clipn.variant,
                 "n_prompts": clipn.no.n_prompts, **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={META_KEY: json.dumps(full_meta, sort_keys=True, default=str)})
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; the weights get ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def checkpoint_meta(clipn: CLIPN, identity: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    from oodbench import __version__

    return {"backbone": identity_summary(identity), "backbone_fingerprint": backbone_fingerprint(clipn.clip),
            "oodbench_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def write_checkpoint(root: Path, step: int, clipn: CLIPN, meta: Mapping[str, Any],
                     state: Mapping[str, Any], keep_last: int = 0) -> Path:
    """Write ``root/checkpoints/step-N/{clipn.safetensors,state.pt}`` atomically and point LATEST at it.

    Also refreshes ``root/clipn.safetensors`` (the file to pass to ``--clipn-checkpoint``) and, with
    ``keep_last > 0``, deletes all but the newest ``keep_last`` step folders.
    """
    ckpts = root / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    final = ckpts / step_dir_name(step)
    tmp = make_temp_dir(ckpts, prefix=f".tmp-{final.name}-")
    try:
        save_weights(tmp / WEIGHTS_NAME, clipn, meta)
        torch.save(dict(state), tmp / STATE_NAME)
        if final.exists():  # a folder of an earlier, interrupted attempt at the same step
            trash = ckpts / f".trash-{final.name}-{os.getpid()}"
            final.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_text_atomic(ckpts / LATEST_NAME, final.name + "\n")
    _copy_atomic(final / WEIGHTS_NAME, root / WEIGHTS_NAME)
    if keep_last > 0:
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


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
    try:
        return torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"Could not read the training state {folder / STATE_NAME}: {exc}.") from None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)



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
