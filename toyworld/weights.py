"""toyworld's tiny CLIP and its CLIPN "no" tower, shipped in ``assets/`` beside this module.

- ``--model toyclip --pretrained toyworld``: ``assets/toyclip.safetensors``, trained by
  ``scripts/train_toyclip.py``;
- CLIPN checkpoint ``toyworld`` (``--param clipn-ctw.checkpoint=toyworld``, set by the toyworld suite):
  ``assets/toyclip-clipn.safetensors``, trained by ``oodbench train clipn`` on toyworld pairs.

Both are registered by :mod:`oodbench.toyworld.plugin` in :func:`oodbench.bundled.bundled`;
``README.md`` beside this module gives the commands, seeds and numbers.
"""

from __future__ import annotations

from pathlib import Path

from oodbench.bundled import BundledFile
from oodbench.errors import CheckpointError

MODEL_NAME = "toyclip"
BUNDLED_NAME = "toyworld"
HOME = Path(__file__).resolve().parent
ASSETS = HOME / "assets"
MODEL_CONFIGS = HOME / "model_configs"
WEIGHTS_FILE = ASSETS / "toyclip.safetensors"
CLIPN_FILE = ASSETS / "toyclip-clipn.safetensors"


def _require(path: Path, how: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"The bundled toyworld file {path} is missing from this installation. "
                              f"Reinstall oodbench, or {how}.")
    return path


def toyclip_weights() -> Path:
    """Path of the bundled tiny CLIP (``--model toyclip --pretrained toyworld``)."""
    return _require(WEIGHTS_FILE, f"train it with toyworld/scripts/train_toyclip.py --output {WEIGHTS_FILE}")


def toyclip_clipn() -> Path:
    """Path of the bundled CLIPN checkpoint for ``toyclip`` + ``toyworld`` weights."""
    return _require(CLIPN_FILE, "train it as toyworld/README.md describes")


TOYCLIP = BundledFile(BUNDLED_NAME, MODEL_NAME, toyclip_weights, "toyworld's tiny CLIP")
TOYCLIP_CLIPN = BundledFile(BUNDLED_NAME, MODEL_NAME, toyclip_clipn, "CLIPN 'no' tower for toyworld's tiny CLIP")
