"""Reading a weights file into an open_clip model, strictly; oodbench's own open_clip model configs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from oodbench.errors import CheckpointError, OodbenchError

if TYPE_CHECKING:
    from torch import nn

#: oodbench's own open_clip configs (tiny test models); plug-ins add theirs to MODEL_CONFIG_DIRS.
MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"

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


def load_weights_file(model: nn.Module, path: Path) -> None:
    """Load a weights file strictly into ``model``; a mismatch is a :class:`CheckpointError`."""
    from open_clip.factory import load_checkpoint

    try:
        load_checkpoint(model, str(path), strict=True)
    except RuntimeError as exc:
        text = str(exc)
        summary = "; ".join(line.strip() for line in text.splitlines()[1:6] if line.strip())[:600]
        raise CheckpointError(
            f"The checkpoint {path} does not fit model {model.__class__.__name__} as configured: "
            f"{summary or text[:600]}. Check that --model names the architecture these weights were "
            "trained with.") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        if isinstance(exc, OodbenchError):
            raise
        raise CheckpointError(f"Could not read the checkpoint {path}: {type(exc).__name__}: {exc}. "
                              "Is it a complete torch / safetensors weights file?") from None
