"""toyworld's tiny CLIP and its CLIPN "no" tower, shipped in the package.

- ``--model toyclip --pretrained toyworld``: ``oodbench/assets/toyclip.safetensors``, trained by
  ``benchmarks/toyworld/train_toyclip.py``;
- CLIPN checkpoint ``toyworld`` (``--param clipn-ctw.checkpoint=toyworld``, set by the toyworld suite):
  ``oodbench/assets/toyclip-clipn.safetensors``, trained by ``oodbench train clipn`` on toyworld pairs.

``benchmarks/toyworld/README.md`` gives the commands, seeds and numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from oodbench.backbone import BUNDLED_WEIGHTS
from oodbench.errors import CheckpointError

log = logging.getLogger(__name__)

MODEL_NAME = "toyclip"
BUNDLED_NAME = "toyworld"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS_FILE = ASSETS / "toyclip.safetensors"
CLIPN_FILE = ASSETS / "toyclip-clipn.safetensors"


def _require(path: Path, how: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"The bundled toyworld file {path} is missing from this installation. "
                              f"Reinstall oodbench, or {how}.")
    return path


def toyclip_weights() -> tuple[str, Path]:
    """(open_clip model name, path) of the bundled tiny CLIP."""
    return MODEL_NAME, _require(WEIGHTS_FILE, f"train it with benchmarks/toyworld/train_toyclip.py --output "
                                              f"{WEIGHTS_FILE}")


def toyclip_clipn() -> Path:
    """Path of the bundled CLIPN checkpoint for ``toyclip`` + ``toyworld`` weights."""
    return _require(CLIPN_FILE, "train it as benchmarks/toyworld/README.md describes")


def register() -> None:
    """Register the tiny CLIP's weights and (when methods.clipn is importable) its CLIPN checkpoint."""
    if BUNDLED_NAME not in BUNDLED_WEIGHTS:
        BUNDLED_WEIGHTS.register(BUNDLED_NAME, toyclip_weights)
    try:
        from methods.clipn.checkpoint import BUNDLED_CLIPN
    except ImportError:  # the methods package is optional for the generator and the backbone
        log.debug("methods.clipn not importable; toyworld's CLIPN checkpoint not registered")
        return
    if BUNDLED_NAME not in BUNDLED_CLIPN:
        BUNDLED_CLIPN.register(BUNDLED_NAME, toyclip_clipn)


register()
