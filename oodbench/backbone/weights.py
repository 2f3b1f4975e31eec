"""Reading a weights file into an open_clip model, safely and strictly; oodbench's own open_clip model configs.

The file is read by :mod:`oodbench.safeload` (safetensors, ``torch.load(weights_only=True)`` or the tensors of
a TorchScript archive; never code), then the key conversions open_clip's ``load_checkpoint`` applies are
applied here (``module.`` prefixes, OpenAI's extra entries, third-party layouts, the custom-text layout,
position-embedding resizing), and the result is loaded with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.errors import CheckpointError

if TYPE_CHECKING:
    from torch import nn

#: oodbench's own open_clip configs (tiny test models); plug-ins add theirs to MODEL_CONFIG_DIRS.
MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
#: Entries of OpenAI's TorchScript state dicts that are not weights (open_clip drops them too).
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")

_added: set[Path] = set()


def register_model_configs() -> None:
    """Make oodbench's and the plug-ins' open_clip configs known to open_clip (once per folder)."""
    import open_clip

    from oodbench.bundled import MODEL_CONFIG_DIRS

    for folder in [MODEL_CONFIG_DIR, *(p for _, p in MODEL_CONFIG_DIRS.items())]:
        folder = Path(folder)
        if folder not in _added and folder.is_dir():
            open_clip.add_model_config(folder)
            _added.add(folder)


def open_clip_state_dict(model: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` in ``model``'s key layout: the conversions of open_clip's ``load_checkpoint``, nothing loaded.

    Strips ``module.``; drops OpenAI's non-weight entries and names ``model`` keeps as non-persistent buffers
    (a TorchScript archive stores those too, e.g. ``attn_mask``); converts third-party (MobileCLIP) and
    old text-tower layouts; reshapes ``logit_scale`` / ``logit_bias``; resizes position embeddings.
    """
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    sd = dict(state)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    own = model.state_dict()
    transient = {name for name, _ in model.named_buffers()} - set(own)
    for key in (*OPENAI_EXTRA_KEYS, *transient):
        sd.pop(key, None)
    sd = convert_state_dict(model, sd)
    if "positional_embedding" in sd and not hasattr(model, "positional_embedding"):
        sd = convert_to_custom_text_state_dict(sd)
    for name in ("logit_scale", "logit_bias"):
        have = getattr(model, name, None)
        if name in sd and have is not None and have.ndim != sd[name].ndim:
            sd[name] = sd[name].reshape(have.shape)
    position_ids = "text.transformer.embeddings.position_ids"
    if position_ids in sd and position_ids not in own:
        del sd[position_ids]
    resize_pos_embed(sd, model)
    resize_text_pos_embed(sd, model)
    return sd


def load_weights_file(model: nn.Module, path: Path) -> None:
    """Load a weights file strictly into ``model``; unreadable or unsafe files and mismatches are
    :class:`CheckpointError` s."""
    from oodbench.safeload import file_kind, read_state_dict

    path = Path(path)
    if file_kind(path) == "numpy":  # big_vision (SigLIP) weights: numpy arrays, read with allow_pickle=False
        from open_clip.convert import load_big_vision_weights

        try:
            load_big_vision_weights(model, str(path))
        except Exception as exc:  # noqa: BLE001 - any mismatch is the same user error
            raise CheckpointError(f"Could not load the numpy weights {path} into {model.__class__.__name__}: "
                                  f"{type(exc).__name__}: {exc}.") from None
        return
    state = read_state_dict(path, what="weights file")
    try:  # open_clip's conversions assert on shapes they cannot resize; load_state_dict raises RuntimeError
        model.load_state_dict(open_clip_state_dict(model, state), strict=True)
    except (RuntimeError, AssertionError, ValueError, KeyError, IndexError) as exc:
        text = str(exc) or type(exc).__name__
        summary = "; ".join(line.strip() for line in text.splitlines()[1:6] if line.strip())[:600]
        raise CheckpointError(
            f"The checkpoint {path} does not fit model {model.__class__.__name__} as configured: "
            f"{summary or text[:600]}. Check that --model names the architecture these weights were "
            "trained with.") from None
